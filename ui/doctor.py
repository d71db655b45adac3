"""Doctor: what the plugin needs, what this QGIS has, and the exact command that installs what is missing.

Nothing here needs PyTorch: packages are found without importing them (the dialog opens at once), and PyTorch is
imported inside a try on a background thread for CUDA and GPU facts, so the dialog explains a missing or broken
installation instead of a traceback, and never freezes QGIS.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.metadata
import importlib.util
import os
import platform
import sys
import threading
from dataclasses import dataclass
from html import escape
from pathlib import Path

from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
)

from .common import help_button, icon

# import name → (pip requirement, what it is for); order = report order
PACKAGES = {
    "numpy": ("numpy<2", "arrays (QGIS and GDAL are built against numpy 1.x: keep it below 2)"),
    "rasterio": ("rasterio", "windowed raster reading and writing"),
    "torch": ("torch", "PyTorch: training and prediction"),
    "segmentation_models_pytorch": ("segmentation-models-pytorch", "U-Net and relatives"),
    "safetensors": ("safetensors", "model weights without pickle"),
    "matplotlib": ("matplotlib", "report figures (performance diagram, quick-looks)"),
}
DEEP_LEARNING = ("torch", "segmentation_models_pytorch", "safetensors")
GIB = 1024 ** 3


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def llvm_loaded(maps: str | None = None) -> bool:
    """Whether a system LLVM is loaded in this process (Linux: Mesa's OpenGL drivers under QGIS's window)."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return False
    return "libLLVM" in maps


class TritonGuard(importlib.abc.MetaPathFinder):
    """Makes `import triton` fail cleanly where it would crash QGIS.

    Triton comes with the CUDA builds of PyTorch on Linux and bundles its own LLVM; loaded into a process that
    already holds a system LLVM (Mesa's OpenGL drivers under QGIS's window) it crashes the whole of QGIS, and
    torchvision (so segmentation-models-pytorch) imports it. The plugin never needs it (it serves torch.compile)
    and PyTorch runs without it. Checked when triton is imported, because OpenGL may be loaded after the plugin.
    """

    def find_spec(self, name, path=None, target=None):  # noqa: D102 (importlib API)
        if name.split(".")[0] == "triton" and llvm_loaded():
            raise ModuleNotFoundError(f"No module named {name!r}: kept out of QGIS, where it would crash next to "
                                      f"the OpenGL drivers' LLVM", name=name)
        return None


def keep_triton_out(install: bool = True) -> None:
    """Install (once) or remove the TritonGuard in front of Python's importers."""
    guards = [f for f in sys.meta_path if type(f).__name__ == "TritonGuard"]
    if install and not guards:
        sys.meta_path.insert(0, TritonGuard())
    elif not install:
        for guard in guards:
            sys.meta_path.remove(guard)


def triton_kept_out() -> bool:
    return "triton" not in sys.modules and llvm_loaded() and any(
        type(f).__name__ == "TritonGuard" for f in sys.meta_path)


def _version(module) -> str:
    return str(getattr(module, "__version__", "") or "installed")


def _import(name: str, importer):
    """(module, None) or (None, reason) — a broken install (e.g. a CUDA library missing) is a reason too."""
    try:
        return importer(name), None
    except ImportError as exc:
        return None, f"not installed ({exc})" if "No module named" not in str(exc) else "not installed"
    except Exception as exc:  # noqa: BLE001 — any failure to import is what the doctor reports
        return None, f"installed but fails to import: {type(exc).__name__}: {exc}"


def _memory_gib() -> tuple[float | None, float | None]:
    """(total, available) system memory in GiB, or None where the platform does not say."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return (int(info["MemTotal"].split()[0]) * 1024 / GIB, int(info["MemAvailable"].split()[0]) * 1024 / GIB)
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, None
        except (ValueError, OSError, AttributeError):
            return None, None


def qgis_python(system: str | None = None, prefix: str | None = None) -> str:
    """The Python interpreter of this QGIS (inside QGIS `sys.executable` is the QGIS program itself)."""
    system = system or sys.platform
    prefix = prefix or sys.base_prefix
    if system.startswith("win"):
        return "python"  # as typed inside the OSGeo4W Shell
    if prefix == "/usr":
        return "/usr/bin/python3"  # Debian/Ubuntu QGIS packages use the system Python
    return str(Path(prefix) / "bin" / "python3")


def install_command(missing: list[str], system: str | None = None, prefix: str | None = None) -> str:
    """The one command that installs the missing packages into QGIS's own Python."""
    system = system or sys.platform
    python = qgis_python(system, prefix)
    requirements = [PACKAGES[m][0] for m in missing]
    if "numpy<2" not in requirements:
        requirements.insert(0, "numpy<2")  # never let pip replace the numpy QGIS and GDAL are built against
    args = " ".join(f'"{r}"' if "<" in r else r for r in requirements)
    if python == "/usr/bin/python3":
        # Debian marks the system Python as externally managed (PEP 668); --user keeps the packages out of /usr.
        return f"{python} -m pip install --user --break-system-packages {args}"
    return f"{python} -m pip install {args}"


def install_advice(missing: list[str], system: str | None = None) -> str:
    """Where to type the install command, for this platform."""
    system = system or sys.platform
    if system.startswith("win"):
        return ("Close QGIS, open the OSGeo4W Shell (Start menu ▸ QGIS ▸ OSGeo4W Shell) as administrator, run "
                "the command below, then start QGIS again.")
    if system == "darwin":
        return "Close QGIS, run the command below in a Terminal, then start QGIS again."
    return ("Close QGIS, run the command below in a terminal (the Python that QGIS uses), then start QGIS again. "
            "Without an NVIDIA GPU, add --extra-index-url https://download.pytorch.org/whl/cpu for a much smaller "
            "CPU-only PyTorch.")


def find_package(name: str) -> str | None:
    """The installed version of a package, found without importing it (importing torch takes seconds to half a
    minute on a cold start); None when it is not installed."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):
        return None
    distribution = PACKAGES.get(name, (name, ""))[0].split("<")[0].split(">")[0].split("=")[0]
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "installed"


CHECKING = "checking…"


def collect_fast(finder=find_package) -> list[Check]:
    """What can be told at once, without importing anything heavy: QGIS, Python, packages and memory; the facts
    that need PyTorch imported (it works, CUDA, GPU) are placeholders until `collect_heavy` has run."""
    checks = []
    try:
        from qgis.core import Qgis

        checks.append(Check("QGIS", True, f"{Qgis.QGIS_VERSION}"))
    except ImportError:  # pragma: no cover — the plugin always runs inside QGIS
        checks.append(Check("QGIS", False, "not found"))
    checks.append(Check("Python", True, f"{platform.python_version()} ({qgis_python()})"))
    for name, (_, purpose) in PACKAGES.items():
        version = finder(name)
        checks.append(Check(name, version is not None,
                            f"{version} — {purpose}" if version is not None else f"not installed — {purpose}",
                            required=name != "matplotlib"))
    if triton_kept_out():
        checks.append(Check("triton", True, "installed with PyTorch but kept out of QGIS: it crashes next to the "
                                            "OpenGL drivers' LLVM; the plugin does not need it", required=False))
    if finder("torch") is not None:
        checks.append(Check("CUDA", True, CHECKING, required=False))
    total, available = _memory_gib()
    if total is not None:
        checks.append(Check("Memory", True, f"{total:.1f} GiB" + (f", {available:.1f} GiB available"
                                                                     if available is not None else "")))
    return checks


def collect_heavy(fast: list[Check], importer=importlib.import_module) -> list[Check]:
    """`fast` completed by importing the deep-learning packages it found: broken installs, CUDA, GPU, threads.
    Slow (seconds); the Doctor runs it in the background."""
    checks = [Check(c.name, c.ok, c.detail, c.required) for c in fast if c.detail != CHECKING]
    torch = None
    for check in checks:
        if check.name in DEEP_LEARNING and check.ok:
            module, why = _import(check.name, importer)
            if module is None:
                check.ok, check.detail = False, f"{why} — {PACKAGES[check.name][1]}"
                continue
            check.detail = f"{_version(module)} — {PACKAGES[check.name][1]}"  # with its build, e.g. +cu130
            if check.name == "torch":
                torch = module
    at = next((i for i, c in enumerate(checks) if c.name == "Memory"), len(checks))
    extra = []
    if torch is not None:
        try:
            cuda = torch.cuda.is_available()
            if cuda:
                free, total = torch.cuda.mem_get_info(0)
                name = torch.cuda.get_device_name(0)
                extra.append(Check("CUDA", True, f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)"))
                extra.append(Check("GPU", True, f"{name}: {total / GIB:.1f} GiB, {free / GIB:.1f} GiB free"))
            else:
                built = getattr(torch.version, "cuda", None)
                extra.append(Check("CUDA", False, "no CUDA GPU visible to PyTorch: the CPU is used (slower, "
                                                  "fine for small areas)" + ("" if built else
                                                                             "; this PyTorch is a CPU-only build"),
                                   required=False))
            extra.append(Check("CPU threads", True, f"PyTorch uses {torch.get_num_threads()} of {os.cpu_count()}"))
        except Exception as exc:  # noqa: BLE001
            extra.append(Check("CUDA", False, f"could not query: {exc}", required=False))
    return checks[:at] + extra + checks[at:]


def collect(importer=importlib.import_module, finder=find_package) -> list[Check]:
    """Versions and health of everything the plugin relies on, GPU and memory included (all at once: slow)."""
    return collect_heavy(collect_fast(finder), importer)


def missing_packages(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if not c.ok and c.name in PACKAGES]


def report_text(checks: list[Check]) -> str:
    """Plain-text report (for copying into a bug report)."""
    lines = [f"{'OK ' if c.ok else ('-- ' if not c.required else 'XX ')}{c.name}: {c.detail}" for c in checks]
    missing = missing_packages(checks)
    if missing:
        lines += ["", "Missing: " + ", ".join(missing), install_advice(missing), install_command(missing)]
    return "\n".join(lines)


def report_html(checks: list[Check]) -> str:
    rows = []
    for c in checks:
        mark, colour = ("✔", "#1a7f37") if c.ok else (("✖", "#b00020") if c.required else ("•", "#9a6700"))
        rows.append(f"<tr><td style='color:{colour};font-weight:bold'>{mark}</td><td><b>{escape(c.name)}</b></td>"
                    f"<td>{escape(c.detail)}</td></tr>")
    missing = missing_packages(checks)
    if not missing:
        summary = "<p style='color:#1a7f37'><b>Everything the plugin needs is installed.</b></p>"
    else:
        dl = [m for m in missing if m in DEEP_LEARNING]
        summary = (f"<p style='color:#b00020'><b>Missing: {escape(', '.join(missing))}.</b> "
                   + ("Mapping and training need PyTorch; the rest of the plugin works without it. " if dl else "")
                   + f"{escape(install_advice(missing))}</p>")
    return f"{summary}<table cellpadding='3'>{''.join(rows)}</table>"


class _Background(QObject):
    """Runs `collect_heavy` on a worker thread and hands its checks back to the GUI thread."""

    done = pyqtSignal(object, int)  # checks, generation

    def start(self, fast: list[Check], importer, generation: int) -> None:
        def work():
            try:
                checks = collect_heavy(fast, importer)
            except Exception as exc:  # noqa: BLE001 — a report, never a traceback
                checks = fast + [Check("PyTorch", False, f"could not be checked: {type(exc).__name__}: {exc}",
                                       required=False)]
            self.done.emit([c for c in checks if c.detail != CHECKING], generation)

        threading.Thread(target=work, name="landslide-mapper-doctor", daemon=True).start()


class DoctorDialog(QDialog):
    """Versions, GPU and memory, what is missing, and the install command with a Copy button.

    Opens at once: packages are found without importing them, and the facts that need PyTorch imported (CUDA,
    GPU memory, a broken install) arrive from a background thread, shown as "checking…" until then.
    """

    OBJECT_NAME = "LandslideMapperDoctor"

    def __init__(self, parent=None, importer=importlib.import_module, finder=find_package):
        super().__init__(parent)
        self.setObjectName(self.OBJECT_NAME)
        self.setWindowTitle("Landslide Mapper doctor")
        self.setWindowIcon(icon("doctor"))
        self.importer = importer
        self.finder = finder
        layout = QVBoxLayout(self)
        header = QHBoxLayout()
        header.addWidget(QLabel("What this QGIS has for Landslide Mapper:", self), 1)
        header.addWidget(help_button("Doctor", self))
        layout.addLayout(header)
        self.browser = QTextBrowser(self)
        self.browser.setMinimumSize(560, 300)
        layout.addWidget(self.browser)
        self.command_label = QLabel("Install command:", self)
        self.command = QLineEdit(self)
        self.command.setReadOnly(True)
        copy_command = QPushButton("Copy command", self)
        copy_command.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.command.text()))
        row = QHBoxLayout()
        row.addWidget(self.command, 1)
        row.addWidget(copy_command)
        layout.addWidget(self.command_label)
        layout.addLayout(row)
        self.command_row = [self.command_label, self.command, copy_command]
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        copy_report = buttons.addButton("Copy report", QDialogButtonBox.ActionRole)
        copy_report.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text()))
        recheck = buttons.addButton("Check again", QDialogButtonBox.ActionRole)
        recheck.clicked.connect(self.refresh)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.checks: list[Check] = []
        self.complete = False  # True once the background facts are in
        self._generation = 0
        self._background = _Background(self)
        self._background.done.connect(self._on_background_done)
        self.refresh()

    def refresh(self) -> None:
        """The fast facts now, the heavy ones from a background thread."""
        self._generation += 1
        self.checks = collect_fast(self.finder)
        self.complete = not any(c.detail == CHECKING for c in self.checks) and not any(
            c.ok and c.name in DEEP_LEARNING for c in self.checks)
        self._show()
        if not self.complete:
            self._background.start(self.checks, self.importer, self._generation)

    def _on_background_done(self, checks, generation: int) -> None:
        if generation != self._generation:  # an older check, overtaken by "Check again"
            return
        self.checks = checks
        self.complete = True
        self._show()

    def _show(self) -> None:
        self.browser.setHtml(report_html(self.checks))
        missing = missing_packages(self.checks)
        self.command.setText(install_command(missing) if missing else "")
        for widget in self.command_row:
            widget.setVisible(bool(missing))

    def text(self) -> str:
        return report_text(self.checks)
