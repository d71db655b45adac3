"""The plugin's GUI pieces: docks from the menu, "Style as …" layer actions, stacks styled on load, clean unload."""
from __future__ import annotations

import numpy as np
import pytest
from qgis.core import Qgis, QgsApplication, QgsMapLayerType, QgsRasterLayer
from qgis.PyQt.QtCore import QEvent
from qgis.PyQt.QtWidgets import QDockWidget
from support import write_raster

import landslide_mapper


@pytest.fixture
def plugin(qgis_iface, landslide_provider, project, isolated_settings):
    qgis_iface.addCustomActionForLayerType.reset_mock()
    qgis_iface.removeCustomActionForLayerType.reset_mock()
    loaded = landslide_mapper.classFactory(qgis_iface)
    loaded.initGui()
    yield loaded
    loaded.unload()
    QgsApplication.sendPostedEvents(None, QEvent.DeferredDelete)


@pytest.fixture
def change_rasters(tmp_path):
    ramp = np.linspace(-1, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    stack = write_raster(tmp_path / "stack.tif", np.stack([ramp, ramp, ramp]), ["pre_VV", "post_VV", "dNDVI"])
    sar = write_raster(tmp_path / "sar.tif", np.stack([ramp, ramp]), ["dVV", "dVH"])
    plain = write_raster(tmp_path / "plain.tif", np.stack([ramp, ramp, ramp]))
    return stack, sar, plain


def test_menu_actions_open_each_dock_once(plugin, qgis_iface):
    for key, cls in (("model", "ModelDock"), ("evaluation", "EvaluationDock"), ("training", "TrainingDock")):
        plugin.dock_actions[key].trigger()
        dock = plugin.docks[key]
        assert type(dock).__name__ == cls and not dock.isHidden() and plugin.dock_actions[key].isChecked()
        plugin.dock_actions[key].trigger()  # a second click hides it again
        assert dock.isHidden() and plugin.docks[key] is dock
    assert len(qgis_iface.mainWindow().findChildren(QDockWidget)) == 3


def test_trained_package_opens_in_the_model_dock(plugin, demo_package):
    assert plugin.load_in_model_dock(demo_package)
    assert not plugin.docks["model"].isHidden() and plugin.docks["model"].package_path == demo_package


def test_a_new_mask_is_offered_to_the_evaluation_dock(plugin, project, demo_scene, demo_package, wait_for_chain):
    project.addMapLayer(QgsRasterLayer(demo_scene[1], "stack"))
    evaluation = plugin.show_dock("evaluation")
    model = plugin.show_dock("model")
    model.load_package(demo_package)
    assert model.run()
    assert wait_for_chain(model.chain).ok
    assert evaluation.prediction_box.currentLayer() is model.result_layer("OUTPUT_MASK") is not None


def test_doctor_opens_from_the_menu(plugin):
    doctor = plugin.open_doctor()
    assert not doctor.isHidden() and "QGIS:" in doctor.text()


def test_stacks_added_to_the_project_show_their_change_band(plugin, project, change_rasters):
    stack, sar, plain = (QgsRasterLayer(p, n) for p, n in zip(change_rasters, ("stack", "sar", "plain")))
    project.addMapLayers([stack, sar, plain])
    assert stack.renderer().type() == "singlebandpseudocolor" and stack.renderer().band() == 3  # dNDVI
    ramp = stack.renderer().shader().rasterShaderFunction()
    assert ramp.minimumValue() == pytest.approx(-0.6) and ramp.maximumValue() == pytest.approx(0.6)
    assert sar.renderer().type() == "singlebandpseudocolor" and sar.renderer().band() == 2  # dVH first
    assert sar.renderer().shader().rasterShaderFunction().minimumValue() == pytest.approx(-6)
    assert plain.renderer().type() == "multibandcolor"  # not a stack: left as QGIS shows it


def test_style_as_actions_on_a_raster_layer(plugin, qgis_iface, project, change_rasters):
    calls = qgis_iface.addCustomActionForLayerType.call_args_list
    assert [c.args[2] for c in calls] == [QgsMapLayerType.RasterLayer] * 2
    by_name = {c.args[0].text(): c.args[0] for c in calls}
    plain = QgsRasterLayer(change_rasters[2], "plain")
    project.addMapLayer(plain)
    qgis_iface.setActiveLayer(plain)
    by_name["Style as SAR change (dB)"].trigger()
    assert plain.renderer().type() == "singlebandpseudocolor" and plain.renderer().band() == 1
    assert plain.renderer().shader().rasterShaderFunction().maximumValue() == pytest.approx(6)
    by_name["Style as dNDVI (vegetation change)"].trigger()
    assert plain.renderer().shader().rasterShaderFunction().maximumValue() == pytest.approx(0.6)


def test_unload_removes_docks_layer_actions_and_the_load_hook(qgis_iface, landslide_provider, project,
                                                              change_rasters, isolated_settings):
    qgis_iface.removeCustomActionForLayerType.reset_mock()
    plugin = landslide_mapper.classFactory(qgis_iface)
    plugin.initGui()
    for key in ("model", "evaluation", "training"):
        plugin.show_dock(key)
    plugin.open_doctor()
    layer_actions = list(plugin.layer_actions)
    plugin.unload()
    QgsApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    assert qgis_iface.mainWindow().findChildren(QDockWidget) == []
    assert [c.args[0] for c in qgis_iface.removeCustomActionForLayerType.call_args_list] == layer_actions
    stack = QgsRasterLayer(change_rasters[0], "stack after unload")
    project.addMapLayer(stack)
    assert stack.renderer().type() == "multibandcolor"  # the plugin no longer styles new layers


def test_help_buttons_point_at_readme_sections(repo_root):
    from landslide_mapper.ui.common import help_url

    readme = (repo_root / "README.md").read_text()
    for section in ("Model dock", "Evaluation dock", "Training dock", "Doctor"):
        assert f"\n### {section}\n" in readme
        assert help_url(section).fragment() == section.lower().replace(" ", "-")
    for image in ("model_dock", "evaluation_dock", "training_dock", "doctor", "map_confusion"):
        assert f"(docs/screenshots/{image}.png)" in readme


def test_style_as_dndvi_on_reflectance_warns_what_was_styled_and_why(plugin, qgis_iface, project, tmp_path):
    """A reflectance band (UInt16, 287–4466) styled as dNDVI turns one colour: the message bar says so."""
    reflectance = np.linspace(287, 4466, 16 * 16).reshape(16, 16).astype(np.uint16)
    layer = QgsRasterLayer(write_raster(tmp_path / "b04.tif", reflectance, ["B04"]), "B04")
    project.addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)
    bar = qgis_iface.messageBar()
    bar.clear_messages()
    by_name = {c.args[0].text(): c.args[0] for c in qgis_iface.addCustomActionForLayerType.call_args_list}
    by_name["Style as dNDVI (vegetation change)"].trigger()
    warnings = bar.get_messages(Qgis.Warning)
    assert len(warnings) == 1 and "287" in warnings[0] and "4466" in warnings[0] and "dNDVI" in warnings[0]


def test_style_as_dndvi_on_a_dndvi_band_says_what_it_styled(plugin, qgis_iface, project, change_rasters):
    stack = QgsRasterLayer(change_rasters[0], "stack")
    project.addMapLayer(stack)
    qgis_iface.setActiveLayer(stack)
    bar = qgis_iface.messageBar()
    bar.clear_messages()
    by_name = {c.args[0].text(): c.args[0] for c in qgis_iface.addCustomActionForLayerType.call_args_list}
    by_name["Style as dNDVI (vegetation change)"].trigger()
    assert bar.get_messages(Qgis.Warning) == []
    assert any("band 3 (dNDVI)" in m for m in bar.get_messages(Qgis.Info))


def test_the_legend_follows_the_change_style(plugin, project, tmp_path):
    """Styling a stack already in the layer tree: its legend names the band drawn (dNDVI, band 3), not
    'Band 1: pre_VV (Gray)' of the style before."""
    from qgis.core import QgsLayerTreeModel

    from landslide_mapper.processing_provider.styles import apply_style

    model = QgsLayerTreeModel(project.layerTreeRoot())
    model.setFlag(QgsLayerTreeModel.ShowLegend, True)
    ramp = np.linspace(-1, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    stack = QgsRasterLayer(write_raster(tmp_path / "s.tif", np.stack([ramp, ramp, ramp]), ["pre_VV", "post_VV",
                                                                                         "dNDVI"]), "stack")
    project.addMapLayer(stack)
    node = project.layerTreeRoot().findLayer(stack.id())
    apply_style(stack, None)
    labels = [str(n.data(0)) for n in model.layerLegendNodes(node)]
    assert labels[0] == "Band 3: dNDVI", labels


def test_truth_outlines_are_thin():
    """At full-scene scale thick white outlines hide the confusion colours of small landslides."""
    from landslide_mapper.processing_provider.styles import STYLES

    text = (STYLES / "truth_outline.qml").read_text()
    assert 'name="outline_width" value="0.2"' in text
