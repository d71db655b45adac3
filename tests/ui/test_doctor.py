"""Doctor: versions, GPU and memory, what is missing and the install command; the GUI without PyTorch."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from support import BLOCK_TORCH


def _without(*names):
    def importer(name):
        if name.split(".")[0] in names:
            raise ImportError(f"No module named '{name}'")
        return importlib.import_module(name)

    return importer


def _finder_without(*names):
    from landslide_mapper.ui.doctor import find_package

    return lambda name: None if name in names else find_package(name)


def test_doctor_lists_qgis_python_torch_smp_cuda_and_memory_versions(qtbot):
    import segmentation_models_pytorch
    import torch
    from qgis.core import Qgis

    from landslide_mapper.ui.doctor import DoctorDialog

    dialog = DoctorDialog()
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.complete, timeout=120000)
    text = dialog.text()
    assert f"QGIS: {Qgis.QGIS_VERSION}" in text
    assert f"Python: {sys.version.split()[0]}" in text
    assert f"torch: {torch.__version__}" in text
    assert f"segmentation_models_pytorch: {segmentation_models_pytorch.__version__}" in text
    assert "CUDA" in text and "Memory: " in text and "GiB" in text
    if not torch.cuda.is_available():
        assert "no CUDA GPU visible to PyTorch: the CPU is used" in text
    assert "Missing" not in text and not dialog.command.isVisibleTo(dialog)
    assert "Everything the plugin needs is installed" in dialog.browser.toPlainText()


def test_doctor_without_torch_gives_the_install_command_for_qgis_python(qtbot):
    from landslide_mapper.ui.doctor import DoctorDialog

    dialog = DoctorDialog(importer=_without("torch", "segmentation_models_pytorch"),
                          finder=_finder_without("torch", "segmentation_models_pytorch"))
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.complete, timeout=60000)
    assert "XX torch: not installed" in dialog.text()
    assert "Missing: torch, segmentation_models_pytorch" in dialog.browser.toPlainText()
    if sys.base_prefix == "/usr":  # Debian's QGIS uses the system Python
        assert dialog.command.text() == ('/usr/bin/python3 -m pip install --user --break-system-packages "numpy<2" '
                                         'torch segmentation-models-pytorch')
    assert dialog.command.isVisibleTo(dialog)


def test_install_command_on_windows_goes_to_the_osgeo4w_shell():
    from landslide_mapper.ui.doctor import install_advice, install_command

    assert install_command(["torch", "safetensors"], system="win32") == 'python -m pip install "numpy<2" torch ' \
                                                                        'safetensors'
    assert "OSGeo4W Shell" in install_advice(["torch"], system="win32")
    assert install_command(["torch"], system="linux", prefix="/opt/qgis") == \
        '/opt/qgis/bin/python3 -m pip install "numpy<2" torch'


WITHOUT_TORCH = BLOCK_TORCH + r"""
import json, time, zipfile
from qgis.core import Qgis, QgsApplication, QgsProject, QgsRasterLayer
app = QgsApplication([], True); app.initQgis()
from unittest.mock import MagicMock
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtWidgets import QDockWidget, QMainWindow, QToolBar
window = QMainWindow()
iface = MagicMock()  # the QgisInterface calls the plugin makes
iface.mainWindow.return_value = window
iface.mapCanvas.return_value = QgsMapCanvas(window)
iface.addToolBar.side_effect = lambda name: QToolBar(name, window)
import landslide_mapper
plugin = landslide_mapper.classFactory(iface); plugin.initGui()
warnings = [c.args[1] for c in iface.messageBar().pushMessage.call_args_list]
assert any("Doctor" in w and "torch" in w for w in warnings), warnings

package, stack = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(package, "w") as zf:  # a manifest is enough for the card
    zf.writestr("model.json", json.dumps({"schema_version": 1, "task": "binary_segmentation",
        "input_bands": ["pre_VV", "post_VV"],
        "members": [{"architecture": "Unet", "encoder": "resnet18", "weights": "w.safetensors"}],
        "threshold": 0.4, "tile_size": 64, "classes": [],
        "normalization": {"pre_VV": {"mean": -8.0, "std": 1.0}, "post_VV": {"mean": -8.0, "std": 1.0}}}))
    zf.writestr("w.safetensors", b"not read for the card")
QgsProject.instance().addMapLayer(QgsRasterLayer(stack, "stack"))
model = plugin.show_dock("model")
assert model.load_package(package), model.status.text()
assert "VV backscatter" in model.card.toPlainText() and model.bands.is_complete()
assert model.run()
start = time.time()
while not model.chain.done and time.time() - start < 60:
    app.processEvents(); time.sleep(0.01)
assert not model.chain.ok and "Doctor" in model.status.text() and "'torch'" in model.status.text(), model.status.text()
plugin.show_dock("evaluation"); plugin.show_dock("training")
doctor = plugin.open_doctor()
assert "torch" in doctor.command.text() and "pip install" in doctor.command.text(), doctor.command.text()
assert len(window.findChildren(QDockWidget)) == 3
plugin.unload()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("OK")
"""


def test_plugin_docks_and_doctor_work_without_torch_and_explain(repo_root, tmp_path):
    """Without PyTorch the plugin loads, shows docks and a model card, and a run says what to install."""
    from support import write_raster

    np = pytest.importorskip("numpy")
    stack = write_raster(tmp_path / "stack.tif", np.zeros((2, 64, 64), np.float32), ["pre_VV", "post_VV"])
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join([str(repo_root / ".build" / "import"), "/usr/share/qgis/python/plugins"]))
    result = subprocess.run([sys.executable, "-P", "-c", WITHOUT_TORCH, str(tmp_path / "card.lmpkg"), stack],
                            env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]


def test_triton_is_kept_out_only_where_a_system_llvm_is_loaded(monkeypatch):
    from landslide_mapper.ui import doctor

    assert doctor.llvm_loaded("7f0 r-xp /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n")
    assert not doctor.llvm_loaded("7f0 r-xp /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    guard = doctor.TritonGuard()
    monkeypatch.setattr(doctor, "llvm_loaded", lambda maps=None: True)
    with pytest.raises(ModuleNotFoundError, match="kept out of QGIS"):
        guard.find_spec("triton.runtime")
    assert guard.find_spec("torch") is None
    monkeypatch.setattr(doctor, "llvm_loaded", lambda maps=None: False)
    assert guard.find_spec("triton") is None  # no clash: the normal import goes ahead
    before = list(sys.meta_path)
    doctor.keep_triton_out()
    doctor.keep_triton_out()
    assert sum(type(f).__name__ == "TritonGuard" for f in sys.meta_path) == 1
    doctor.keep_triton_out(install=False)
    assert [f for f in sys.meta_path if type(f).__name__ == "TritonGuard"] == [] and sys.meta_path == [
        f for f in before if type(f).__name__ != "TritonGuard"]


def test_a_missing_package_in_a_run_points_to_the_doctor():
    from landslide_mapper.ui.tasks import explain

    text = explain("Traceback …\nModuleNotFoundError: No module named 'torch.nn' (blocked)")
    assert "'torch' is not installed in QGIS's Python" in text and "Doctor" in text
    assert explain("Raster 'x.tif' lacks band dNDVI.") == "Raster 'x.tif' lacks band dNDVI."


DOCTOR_COLD = r"""
import sys, time
from qgis.core import QgsApplication
app = QgsApplication([], True); app.initQgis()
from landslide_mapper.ui.doctor import DoctorDialog
start = time.monotonic()
dialog = DoctorDialog()
opened = time.monotonic() - start
text = dialog.text()
assert "torch: " in text and "checking…" in text, text
assert "torch" not in sys.modules or not sys.modules["torch"].__dict__.get("cuda"), "torch imported on the GUI thread"
while not dialog.complete and time.monotonic() - start < 300:
    app.processEvents(); time.sleep(0.02)
assert dialog.complete and "checking…" not in dialog.text() and "CUDA" in dialog.text(), dialog.text()
print(f"OK opened in {opened:.2f} s")
"""


def test_doctor_opens_at_once_and_fills_in_cuda_from_the_background(repo_root, tmp_path):
    """A cold Doctor finds packages without importing them; PyTorch's facts arrive from a background thread
    ("checking…" until then), so QGIS does not freeze while torch loads."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(repo_root / ".build" / "import"))
    result = subprocess.run([sys.executable, "-P", "-c", DOCTOR_COLD], env=env, capture_output=True, text=True,
                            timeout=400, cwd=str(tmp_path))
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    opened = float(result.stdout.split("opened in ")[1].split()[0])
    assert opened < 5.0, f"the Doctor took {opened} s to open"


def test_a_broken_torch_is_reported_after_the_background_check(qtbot):
    from landslide_mapper.ui.doctor import DoctorDialog

    def broken(name):
        if name == "torch":
            raise OSError("libcudnn.so.9: cannot open shared object file")
        return importlib.import_module(name)

    dialog = DoctorDialog(importer=broken, finder=lambda name: "2.3.0")
    qtbot.addWidget(dialog)
    assert "checking…" in dialog.text()
    qtbot.waitUntil(lambda: dialog.complete, timeout=60000)
    assert "XX torch: installed but fails to import: OSError: libcudnn.so.9" in dialog.text()
    assert "torch" in dialog.command.text()
