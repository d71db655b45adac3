"""Model dock driven like a user: open the demo package, auto-map bands, run predict in a task, cancel a run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsLayerTreeGroup, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QMimeData, QPoint, Qt, QUrl
from qgis.PyQt.QtGui import QDropEvent

STACK_BANDS = ["pre_VV", "post_VV", "dNDVI"]  # setting2: the demo stack's bands and the demo package's inputs


@pytest.fixture
def dock(qgis_iface, landslide_provider, project, isolated_settings, qtbot):
    from landslide_mapper.ui.model_dock import ModelDock

    widget = ModelDock(qgis_iface)
    qtbot.addWidget(widget)
    yield widget
    if widget.chain is not None and widget.chain.running:
        widget.cancel()


def _add_raster(project, path, name):
    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid(), path
    project.addMapLayer(layer)
    return layer


def test_card_shows_architecture_bands_with_meaning_and_threshold(dock, demo_package):
    assert dock.load_package(demo_package)
    html = dock.card.toPlainText()
    assert "demo.lmpkg" in html and "Unet / encoder resnet18" in html
    assert "pre_VV" in html and "Sentinel-1 VV backscatter (dB), before the event" in html
    assert "NDVI change, post − pre" in html
    assert "0.50 (chosen on validation data)" in html and "pixel size 10 × 10" in html
    assert dock.threshold_box.value() == pytest.approx(0.5)
    assert dock.package_box.currentData() == demo_package  # remembered in the recent list


def test_stack_bands_are_mapped_automatically_by_description(dock, project, demo_scene, demo_package):
    _, stack_path = demo_scene
    stack = _add_raster(project, stack_path, "stack")
    _add_raster(project, demo_scene[0].post_s2, "post_s2")  # a distraction without the bands
    dock.load_package(demo_package)
    assert dock.bands.choice() == {name: (stack, i) for i, name in enumerate(STACK_BANDS, start=1)}
    assert dock.bands.message.text() == "All input bands are mapped."
    assert dock.run_button.isEnabled()
    params = dock.parameters(Path("/tmp/unused"))
    assert params["INPUT"] == stack.source() and "BAND_MAPPING" not in params


def test_missing_band_is_reported_in_red_and_blocks_the_run(dock, project, demo_scene, demo_package, qtbot):
    event, _ = demo_scene
    _add_raster(project, event.pre_s1, "pre_s1")
    _add_raster(project, event.post_s1, "post_s1")
    dock.load_package(demo_package)
    assert dock.bands.missing() == ["dNDVI"]
    assert "Missing input band(s): dNDVI" in dock.bands.message.text()
    assert "b00020" in dock.bands.message.styleSheet()  # red
    assert not dock.run_button.isEnabled()
    assert dock.run() is False and "dNDVI" in dock.status.text()
    _add_raster(project, demo_scene[1], "stack loaded later")  # mapped again by name as soon as it arrives
    qtbot.waitUntil(lambda: dock.bands.is_complete() and dock.run_button.isEnabled(), timeout=2000)


def test_auto_map_takes_pre_and_post_bands_from_layer_names():
    from landslide_mapper.ui.band_mapping import RasterBands, auto_map

    rasters = [RasterBands("a", "post_s1", ["VV", "VH"]), RasterBands("b", "pre_s1", ["VV", "VH"]),
               RasterBands("c", "change", ["dNDVI"]), RasterBands("d", "other stack", ["pre_VV", "dVV"])]
    assert auto_map(STACK_BANDS + ["slope"], rasters) == {
        "pre_VV": ("d", 1),  # a band named exactly so beats the layer-name rule
        "post_VV": ("a", 1),
        "dNDVI": ("c", 1),
        "slope": None,
    }


def test_drop_a_package_file_on_the_dock_loads_it(dock, demo_package):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(demo_package)])
    event = QDropEvent(QPoint(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    dock.dropEvent(event)
    assert dock.package_path == demo_package and "demo.lmpkg" in dock.card.toPlainText()


def test_run_predicts_in_a_task_and_adds_a_styled_group(dock, project, demo_scene, demo_package, wait_for_chain):
    _, stack_path = demo_scene
    _add_raster(project, stack_path, "stack")
    dock.load_package(demo_package)
    assert dock.run()
    assert dock.cancel_button.isEnabled() and not dock.run_button.isEnabled()
    chain = wait_for_chain(dock.chain)
    assert chain.ok, chain.error
    assert dock.progress.value() == 100 and dock.run_button.isEnabled()

    group = project.layerTreeRoot().findGroup(dock.run_name)
    assert isinstance(group, QgsLayerTreeGroup) and dock.run_name.startswith("Landslide map demo (")
    layers = {node.layer().name(): node.layer() for node in group.findLayers()}
    assert list(layers) == ["Landslide polygons", "Landslide mask", "Landslide probability"]
    probability, mask, polygons = (layers["Landslide probability"], layers["Landslide mask"],
                                   layers["Landslide polygons"])
    assert probability.renderer().type() == "singlebandpseudocolor"
    assert mask.renderer().type() == "paletted"
    assert isinstance(polygons, QgsVectorLayer) and polygons.renderer().symbol().symbolLayer(0).brushStyle() \
        == Qt.NoBrush
    with rasterio.open(probability.source()) as src, rasterio.open(stack_path) as stack:
        values = src.read(1)
        assert src.transform == stack.transform and src.shape == stack.shape
    valid = np.isfinite(values)
    assert valid.any() and np.allclose(values[valid], 1 / (1 + np.exp(-1.0)), atol=1e-4)  # the flat demo model
    assert "landslide polygon" in dock.status.text()


def test_bands_from_several_layers_and_a_drawn_extent(dock, project, demo_scene, demo_package, wait_for_chain):
    from qgis.core import QgsRectangle

    event, stack_path = demo_scene
    pre = _add_raster(project, event.pre_s1, "pre_s1")
    post = _add_raster(project, event.post_s1, "post_s1")
    stack = _add_raster(project, stack_path, "dNDVI only here")
    dock.load_package(demo_package)
    dock.bands.set_choice("pre_VV", pre, 1)
    dock.bands.set_choice("post_VV", post, 1)
    dock.bands.set_choice("dNDVI", stack, 3)
    extent = stack.extent()
    sub = QgsRectangle(extent.xMinimum(), extent.yMinimum(), extent.xMinimum() + 640, extent.yMinimum() + 320)
    dock.extent.setChecked(True)
    dock.extent.setOutputExtentFromUser(sub, stack.crs())
    assert dock.run()
    params = dock.chain.steps[0].parameters
    assert params["INPUT"] == pre.source() and params["OTHER_INPUTS"] == [post.source(), stack.source()]
    assert params["BAND_MAPPING"] == "pre_VV=1:1,post_VV=2:1,dNDVI=3:3"
    chain = wait_for_chain(dock.chain)
    assert chain.ok, chain.error
    with rasterio.open(chain.results["predict"]["OUTPUT_PROBABILITY"]) as src:
        assert src.shape == (32, 64)  # 640 × 320 m of 10 m pixels


def test_cancel_stops_the_run_and_adds_nothing(dock, project, demo_scene, demo_package, wait_for_chain):
    _, stack_path = demo_scene
    _add_raster(project, stack_path, "stack")
    dock.load_package(demo_package)
    groups_before = len(project.layerTreeRoot().findGroups())
    assert dock.run()
    dock.cancel()
    chain = wait_for_chain(dock.chain)
    assert not chain.ok and chain.error == "Canceled."
    assert "Canceled" in dock.status.text()
    assert len(project.layerTreeRoot().findGroups()) == groups_before
    assert not list(Path(dock.run_folder).glob("*.tif")) and not list(Path(dock.run_folder).glob("*.gpkg"))
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_bands_without_the_models_names_are_guessed_by_order_and_wait_for_confirmation(
        dock, project, demo_scene, demo_package, tmp_path, qtbot):
    """A raster with exactly the model's band count but other names (an ArcGIS export's B1…Bn): the dock proposes
    bands 1…n in order, marked as a guess, and runs only once the person confirms the order."""
    with rasterio.open(demo_scene[1]) as src:
        data, profile = src.read(), src.profile
    with rasterio.open(tmp_path / "unnamed.tif", "w", **profile) as dst:
        dst.write(data)
        for b in range(1, dst.count + 1):
            dst.set_band_description(b, f"B{b}")
    unnamed = _add_raster(project, tmp_path / "unnamed.tif", "unnamed")
    _add_raster(project, demo_scene[0].post_s2, "post_s2")  # 4 bands: not a candidate for 3 inputs
    dock.load_package(demo_package)
    assert dock.bands.choice() == {name: (unnamed, i) for i, name in enumerate(STACK_BANDS, start=1)}
    text = dock.bands.message.text()
    assert text.startswith("Guessed:") and "'unnamed'" in text and "pre_VV ← band 1" in text
    assert "9a6700" in dock.bands.message.styleSheet()  # amber, not the green of a mapping by name
    assert dock.bands.confirm.isVisibleTo(dock.bands) and not dock.bands.is_complete()
    assert not dock.run_button.isEnabled()
    dock.bands.confirm.setChecked(True)
    assert dock.bands.is_complete() and dock.run_button.isEnabled() and "confirmed" in dock.bands.message.text()
    params = dock.parameters(Path("/tmp/unused"))
    assert params["INPUT"] == unnamed.source()
    assert params["BAND_MAPPING"] == "pre_VV=1:1,post_VV=1:2,dNDVI=1:3"  # what predict's refusal would propose
    dock.bands.set_choice("dNDVI", unnamed, 3)  # an edit by hand makes it the person's mapping
    assert not dock.bands.confirm.isVisibleTo(dock.bands) and dock.bands.is_complete()


def test_positional_guess_only_when_nothing_matches_by_name():
    from landslide_mapper.ui.band_mapping import RasterBands, auto_map, positional_guess

    rasters = [RasterBands("named", "x", ["a", "b", "c"]), RasterBands("bare", "y", ["", "", ""]),
               RasterBands("four", "z", ["", "", "", ""])]
    inputs = ["B04", "B03", "B02"]
    assert positional_guess(inputs, rasters, auto_map(inputs, rasters)) == {
        "B04": ("bare", 1), "B03": ("bare", 2), "B02": ("bare", 3)}  # an undescribed raster first
    assert positional_guess(inputs, rasters[:1], auto_map(inputs, rasters[:1])) == {
        "B04": ("named", 1), "B03": ("named", 2), "B02": ("named", 3)}
    assert positional_guess(inputs, rasters[2:], auto_map(inputs, rasters[2:])) is None  # no raster of 3 bands
    partly = [RasterBands("p", "p", ["B04", "", ""])]
    assert positional_guess(inputs, partly, auto_map(inputs, partly)) is None  # a name matched: no guessing
