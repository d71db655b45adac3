"""Session set-up shared by every test: the `landslide_mapper` import name, headless Qt, QGIS's Processing plugin.

The repository root is the plugin package, but the checkout folder may have any name, so tests import it through
the link `.build/import/landslide_mapper -> ../..` (also made by `make setup`), put first on sys.path here.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMPORT_DIR = ROOT / ".build" / "import"
PACKAGE_LINK = IMPORT_DIR / "landslide_mapper"
QGIS_PYTHON_PLUGINS = Path("/usr/share/qgis/python/plugins")  # QGIS's own `processing` package lives here


def ensure_import_link() -> Path:
    """Create `.build/import/landslide_mapper -> ../..` if missing and return the folder that holds it."""
    IMPORT_DIR.mkdir(parents=True, exist_ok=True)
    if not PACKAGE_LINK.is_symlink() or PACKAGE_LINK.resolve() != ROOT:
        tmp = IMPORT_DIR / f".landslide_mapper.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path("..", ".."), target_is_directory=True)
        tmp.replace(PACKAGE_LINK)  # atomic: parallel sessions never see a half-made link
    return IMPORT_DIR


os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != IMPORT_DIR.resolve()]
sys.path.insert(0, str(ensure_import_link()))
if QGIS_PYTHON_PLUGINS.is_dir() and str(QGIS_PYTHON_PLUGINS) not in sys.path:
    sys.path.append(str(QGIS_PYTHON_PLUGINS))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository (= plugin) root folder."""
    return ROOT


@pytest.fixture
def landslide_provider(qgis_processing):
    """The `landslide_mapper` Processing provider, registered for one test, so `processing.run` can call it.

    Registered per test and removed afterwards, because the plugin-load test adds and removes its own instance.
    """
    from qgis.core import QgsApplication

    from landslide_mapper.processing_provider.provider import LandslideMapperProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("landslide_mapper")
    if existing is not None:
        yield existing
        return
    provider = LandslideMapperProvider()
    assert registry.addProvider(provider), "could not register the landslide_mapper provider"
    yield provider
    if registry.providerById("landslide_mapper") is provider:
        registry.removeProvider(provider)


# -- qgis_process: the plugin as a headless user runs it --------------------------------------------------------
QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")  # /usr/bin/qgis_process is a wrapper script; call the binary


def venv_site_packages() -> str:
    """site-packages of the Python running the tests (the .venv: torch, smp), for qgis_process's embedded Python."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def qgis_process_env(profile: Path, python_path: list[str] | None = None) -> dict[str, str]:
    """Environment for qgis_process.bin with `profile` as its settings root (QGIS_CUSTOM_CONFIG_PATH).

    pytest-qgis sets QGIS_CUSTOM_CONFIG_PATH and QGIS_OPTIONS_PATH for the test process itself; both are replaced
    here. PYTHONPATH holds only the venv's site-packages (not .build/import), so the plugin is imported from the
    profile, as in a user's QGIS.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in {"QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH", "PYTHONPATH", "PYTHONHOME"}}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(profile)
    paths = [venv_site_packages()] if python_path is None else list(python_path)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def plugin_folder(profile: Path) -> Path:
    """Where QGIS looks for the plugin in the `default` profile under the settings root `profile`."""
    return Path(profile) / "profiles" / "default" / "python" / "plugins" / "landslide_mapper"


def run_qgis_process(args, profile: Path, *, timeout: float = 600, python_path: list[str] | None = None,
                     check: bool = False):
    """Run `qgis_process.bin <args>` with the settings root `profile`; returns the CompletedProcess (text).

    Example: run_qgis_process(["--json", "run", "landslide_mapper:evaluate", "--", "PREDICTION=p.tif", ...], profile)
    then json.loads(result.stdout)["results"]. `python_path=[]` runs without the venv (no torch).
    """
    import subprocess

    if not QGIS_PROCESS.exists():
        pytest.skip(f"{QGIS_PROCESS} is not installed (Debian package qgis)")
    result = subprocess.run([str(QGIS_PROCESS), *map(str, args)], env=qgis_process_env(profile, python_path),
                            capture_output=True, text=True, timeout=timeout, cwd=str(profile))
    if check and result.returncode != 0:
        raise AssertionError(f"qgis_process {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def install_plugin_into_profile(profile: Path, source: Path | None = None) -> Path:
    """Link the plugin (default: the checkout, via .build/import/landslide_mapper) into `profile` and enable it."""
    target = plugin_folder(profile)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None or not target.exists():
        target.symlink_to((source or PACKAGE_LINK).resolve(), target_is_directory=True)
    result = run_qgis_process(["plugins", "enable", "landslide_mapper"], profile)
    if result.returncode != 0 and "already enabled" not in result.stdout + result.stderr:
        raise AssertionError(f"qgis_process plugins enable failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return target


@pytest.fixture(scope="session")
def qgis_process_profile(tmp_path_factory) -> Path:
    """A fresh QGIS settings root with this checkout installed as the `landslide_mapper` plugin, enabled."""
    profile = tmp_path_factory.mktemp("qgis_profile")
    install_plugin_into_profile(profile)
    return profile


@pytest.fixture(scope="session")
def start_qgis_process():
    """`start_qgis_process(args, profile, **popen)`: qgis_process.bin started, not awaited (stdout+stderr piped),
    for tests that interrupt a run or limit its process."""
    import subprocess

    if not QGIS_PROCESS.exists():
        pytest.skip(f"{QGIS_PROCESS} is not installed (Debian package qgis)")

    def start(args, profile: Path, **popen):
        return subprocess.Popen([str(QGIS_PROCESS), *map(str, args)], env=qgis_process_env(profile),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(profile),
                                **popen)
    return start


@pytest.fixture(scope="session", name="run_qgis_process")
def run_qgis_process_fixture():
    """The `run_qgis_process(args, profile, ...)` helper, for tests that should not import conftest."""
    return run_qgis_process


@pytest.fixture(scope="module")
def single_torch_thread():
    """Tiny networks train faster on one thread (and leave the other core to the rest of the machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
