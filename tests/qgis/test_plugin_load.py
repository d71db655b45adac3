"""The plugin as QGIS loads it: classFactory → initGui → provider and menus present → unload → nothing left."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
from support import BLOCK_TORCH
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QEvent
from qgis.PyQt.QtWidgets import QAction, QDockWidget, QToolBar

import landslide_mapper
from landslide_mapper.processing_provider.algorithms import ALGORITHMS
from landslide_mapper.processing_provider.provider import LandslideMapperProvider, shipped_models

PROVIDER_ID = "landslide_mapper"
TOOLBAR = ["Mapping panel", "Evaluation panel", "Training panel", "Open the Processing toolbox",
           "Doctor: check the installation…", "Help"]
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                     "repository", "tracker", "homepage", "category", "icon", "tags", "experimental",
                     "hasProcessingProvider")


def _process_events():
    QgsApplication.processEvents()
    QgsApplication.sendPostedEvents(None, QEvent.DeferredDelete)  # really delete the deleteLater()'d objects


@pytest.fixture
def no_registered_provider(qgis_processing):
    """Start without a landslide_mapper provider (another fixture may have registered one), restore it after."""
    registry = QgsApplication.processingRegistry()
    had_one = registry.providerById(PROVIDER_ID) is not None
    if had_one:
        registry.removeProvider(PROVIDER_ID)
    yield registry
    if had_one and registry.providerById(PROVIDER_ID) is None:
        registry.addProvider(LandslideMapperProvider())


@pytest.fixture
def loaded_plugin(qgis_iface, no_registered_provider):
    qgis_iface.addPluginToRasterMenu.reset_mock()
    qgis_iface.removePluginRasterMenu.reset_mock()
    plugin = landslide_mapper.classFactory(qgis_iface)
    plugin.initGui()
    yield plugin
    plugin.unload()  # idempotent; the test may have unloaded already


def test_package_imports_under_its_plugin_name_from_any_checkout_folder():
    assert landslide_mapper.__name__ == "landslide_mapper"
    assert Path(landslide_mapper.__file__).resolve().parent == Path(__file__).resolve().parents[2]


def test_metadata_has_the_keys_the_plugin_manager_needs(repo_root):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(repo_root / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    missing = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    assert not missing, f"metadata.txt lacks {missing}"
    assert general["name"] == "Landslide Mapper"
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["category"] == "Raster"
    assert general["hasProcessingProvider"] == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", general["version"])
    assert (repo_root / general["icon"]).is_file()


def test_init_gui_registers_provider_with_every_algorithm(loaded_plugin):
    provider = QgsApplication.processingRegistry().providerById(PROVIDER_ID)
    assert provider is not None
    ids = sorted(alg.id() for alg in provider.algorithms())
    models = [f"{PROVIDER_ID}:{m.name()}" for m in shipped_models()]
    assert "landslide_mapper:rapid_landslide_mapping" in models
    assert ids == sorted([f"{PROVIDER_ID}:{cls().name()}" for cls in ALGORITHMS] + models)
    assert len(ids) == len(set(ids)), "duplicate algorithm ids"


def test_init_gui_adds_raster_menu_and_toolbar(loaded_plugin, qgis_iface):
    menu_actions = [call.args[1] for call in qgis_iface.addPluginToRasterMenu.call_args_list]
    assert {call.args[0] for call in qgis_iface.addPluginToRasterMenu.call_args_list} == {"&Landslide Mapper"}
    # panels first, a separator, the algorithms' submenu, a separator, then toolbox, Doctor and help
    texts = ["---" if a.isSeparator() else a.text() for a in menu_actions]
    assert texts == TOOLBAR[:3] + ["---", "Processing algorithms", "---"] + TOOLBAR[3:]
    submenu = menu_actions[4].menu()
    entries = [a for a in submenu.actions() if not a.isSeparator()]
    # one dialog per algorithm and shipped model, under section headings named after the toolbox groups
    assert len(entries) == len(ALGORITHMS) + len(shipped_models())
    assert all(a.text().endswith("…") for a in entries)
    assert {a.text() for a in submenu.actions() if a.isSeparator()} >= {"Workflows"}
    toolbars = qgis_iface.mainWindow().findChildren(QToolBar, "LandslideMapperToolbar")
    assert len(toolbars) == 1
    assert [a.text() for a in toolbars[0].actions()] == TOOLBAR


def test_unload_removes_provider_menu_entries_and_toolbar(loaded_plugin, qgis_iface):
    added = [call.args[1] for call in qgis_iface.addPluginToRasterMenu.call_args_list]
    for key in ("model", "evaluation", "training"):
        loaded_plugin.dock_actions[key].trigger()  # the docks exist and are shown before unloading
    assert len(qgis_iface.mainWindow().findChildren(QDockWidget)) == 3
    loaded_plugin.unload()
    _process_events()

    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is None
    removed = [call.args[1] for call in qgis_iface.removePluginRasterMenu.call_args_list]
    assert removed == added
    assert loaded_plugin.actions == [] and loaded_plugin.toolbar is None
    main_window = qgis_iface.mainWindow()
    assert main_window.findChildren(QToolBar, "LandslideMapperToolbar") == []
    assert [a for a in main_window.findChildren(QAction) if a.objectName().startswith("landslideMapper")] == []
    assert main_window.findChildren(QDockWidget) == [] and loaded_plugin.docks == {}


def test_reload_cycle_leaves_exactly_one_provider(qgis_iface, no_registered_provider):
    for _ in range(2):
        plugin = landslide_mapper.classFactory(qgis_iface)
        plugin.initGui()
        assert no_registered_provider.providerById(PROVIDER_ID) is not None
        plugin.unload()
        _process_events()
        assert no_registered_provider.providerById(PROVIDER_ID) is None


def test_unload_leaves_a_provider_it_did_not_register(qgis_iface, landslide_provider):
    plugin = landslide_mapper.classFactory(qgis_iface)
    plugin.initGui()  # the id is taken: the registry refuses a second provider
    plugin.unload()
    assert QgsApplication.processingRegistry().providerById(PROVIDER_ID) is landslide_provider


def test_help_points_at_the_readme(loaded_plugin):
    from landslide_mapper.plugin import plugin as plugin_module

    assert plugin_module.README.is_file()


def test_open_tools_shows_the_processing_toolbox(loaded_plugin, monkeypatch):
    from unittest.mock import MagicMock

    from qgis import utils

    processing_plugin = MagicMock()
    monkeypatch.setitem(utils.plugins, "processing", processing_plugin)
    loaded_plugin.open_tools()
    processing_plugin.toolbox.setUserVisible.assert_called_once_with(True)


def test_open_tools_without_processing_plugin_says_how_to_enable_it(loaded_plugin, qgis_iface, monkeypatch):
    from qgis import utils
    from qgis.core import Qgis

    monkeypatch.delitem(utils.plugins, "processing", raising=False)
    qgis_iface.messageBar().clear_messages()
    loaded_plugin.open_tools()
    warnings = qgis_iface.messageBar().get_messages(Qgis.Warning)
    assert len(warnings) == 1 and "Processing" in warnings[0]


TORCH_FREE_CHECK = BLOCK_TORCH + r"""
from qgis.core import QgsApplication
app = QgsApplication([], False); app.initQgis()
import landslide_mapper, landslide_mapper.plugin.plugin, landslide_mapper.ui
from landslide_mapper.processing_provider.provider import LandslideMapperProvider
from landslide_mapper.processing_provider.algorithms import ALGORITHMS
provider = LandslideMapperProvider()
assert QgsApplication.processingRegistry().addProvider(provider)
from landslide_mapper.processing_provider.provider import shipped_models
expected = len(ALGORITHMS) + len(shipped_models())
assert len(provider.algorithms()) == expected, (len(provider.algorithms()), expected)
import landslide_mapper.ui.model_dock, landslide_mapper.ui.evaluation_dock, landslide_mapper.ui.training_dock
import landslide_mapper.ui.doctor
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("OK", len(ALGORITHMS))
"""


def test_plugin_and_provider_load_without_torch(repo_root):
    """Users without PyTorch still get the plugin and the toolbox entries; torch is imported when a step runs."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join([str(repo_root / ".build" / "import"), "/usr/share/qgis/python/plugins"]))
    result = subprocess.run([sys.executable, "-P", "-c", TORCH_FREE_CHECK], env=env, capture_output=True,
                            text=True, timeout=120, cwd="/")
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


def test_readme_algorithm_table_marks_exactly_the_shipped_algorithms_available(repo_root):
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| (available|planned) \|", (repo_root / "README.md").read_text(), re.M)
    available = {alg_id for alg_id, status in rows if status == "available"}
    assert available == {cls().name() for cls in ALGORITHMS}, "update the README's algorithm table"


def test_licence_and_real_metadata(repo_root):
    """A GPL-2.0-or-later LICENSE (what the QGIS plugin repository accepts), data licences stated, and metadata
    without placeholder domains: an address that does not exist yet is a clearly marked field to fill."""
    licence = (repo_root / "LICENSE").read_text(encoding="utf-8")
    assert "GPL-2.0-or-later" in licence and "GNU GENERAL PUBLIC LICENSE" in licence and "Version 2" in licence
    assert "Copernicus Sentinel data" in licence and "MIT" in licence
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(repo_root / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    text = (repo_root / "metadata.txt").read_text(encoding="utf-8")
    assert "example.org" not in text and "example.com" not in text
    for key in ("tracker", "repository", "homepage", "email"):
        value = general[key]
        assert value.startswith(("https://", "TO-FILL")), f"{key}={value}"
    assert general["license"] == "GPL-2.0-or-later"
    assert "rapid_landslide_mapping" in general["changelog"]


def test_readme_lists_the_shipped_model_by_its_id_and_the_newcomer_figures(repo_root):
    from landslide_mapper.processing_provider.provider import shipped_models

    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    for model in shipped_models():
        assert " " not in model.name() and f"| `{model.name()}` | model |" in readme
    assert "5.7 GB" in readme and "10 GB free" in readme  # what make setup downloads and needs
    assert "ARCHITECTURE=Unet" in readme
