"""ui/styles/*.qml load in QGIS with the renderer and colours the map conventions ask for."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from qgis.core import QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor
from rasterio.transform import from_origin

RASTER_STYLES = {
    "confusion": "paletted",
    "comparison": "paletted",
    "mask": "paletted",
    "dndvi": "singlebandpseudocolor",
    "sar_change": "singlebandpseudocolor",
    "probability": "singlebandpseudocolor",
}
VECTOR_STYLES = ("truth_outline", "predicted_polygons")


@pytest.fixture
def styles(repo_root):
    return repo_root / "ui" / "styles"


@pytest.fixture
def float_raster(tmp_path):
    path = tmp_path / "values.tif"
    data = np.linspace(-1, 1, 64, dtype="float32").reshape(1, 8, 8)
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32",
                       crs="EPSG:32632", transform=from_origin(0, 80, 10, 10)) as dst:
        dst.write(data)
    layer = QgsRasterLayer(str(path), "values")
    assert layer.isValid()
    return layer


def _ramp(layer):
    return {item.value: item.color for item in layer.renderer().shader().rasterShaderFunction().colorRampItemList()}


def _palette(layer):
    return {c.value: (c.color, c.label) for c in layer.renderer().classes()}


@pytest.mark.parametrize("name,renderer_type", sorted(RASTER_STYLES.items()))
def test_raster_style_loads_with_expected_renderer(styles, float_raster, name, renderer_type):
    message, ok = float_raster.loadNamedStyle(str(styles / f"{name}.qml"))
    assert ok, message
    assert float_raster.renderer().type() == renderer_type
    assert float_raster.renderer().usesBands() == [1]


@pytest.mark.parametrize("name", VECTOR_STYLES)
def test_vector_style_is_an_unfilled_outline(styles, name):
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", name, "memory")
    message, ok = layer.loadNamedStyle(str(styles / f"{name}.qml"))
    assert ok, message
    assert layer.renderer().type() == "singleSymbol"
    symbol_layer = layer.renderer().symbol().symbolLayer(0)
    assert symbol_layer.brushStyle() == Qt.NoBrush
    # thin: at full-scene scale thicker outlines hide the confusion colours of small landslides
    assert symbol_layer.strokeWidth() == pytest.approx(0.2 if name == "truth_outline" else 0.3)
    expected = QColor("#ffffff") if name == "truth_outline" else QColor("#ffff00")
    assert symbol_layer.strokeColor().name() == expected.name()


def test_confusion_classes_follow_the_map_convention(styles, float_raster):
    float_raster.loadNamedStyle(str(styles / "confusion.qml"))
    palette = _palette(float_raster)
    assert sorted(palette) == [1, 2, 3, 4]  # 0 (nodata/outside) has no class: transparent
    tp, fp, fn, tn = (palette[v][0] for v in (1, 2, 3, 4))
    assert tp.green() > tp.red() and tp.green() > tp.blue()
    assert fp.red() > fp.green() and fp.red() > fp.blue()
    assert fn.blue() > fn.red() and fn.blue() > fn.green()
    assert tn.alpha() < 128
    assert palette[1][1].startswith("True positive") and palette[3][1].startswith("False negative")


def test_comparison_map_has_seven_distinct_agree_disagree_classes(styles, float_raster):
    float_raster.loadNamedStyle(str(styles / "comparison.qml"))
    palette = _palette(float_raster)
    assert sorted(palette) == list(range(1, 8))  # 0 = both right where there is no landslide: transparent
    assert len({c.name() for c, _ in palette.values()}) == 7
    assert palette[1][0].name() == QColor("#1a9641").name()  # both hit: the confusion map's TP green
    assert palette[4][0].name() == QColor("#2c7bb6").name() and palette[5][0].name() == QColor("#e31a1c").name()


def test_mask_colours_landslides_only(styles, float_raster):
    float_raster.loadNamedStyle(str(styles / "mask.qml"))
    assert list(_palette(float_raster)) == [1]


def test_dndvi_ramp_is_diverging_loss_red_to_gain_green(styles, float_raster):
    float_raster.loadNamedStyle(str(styles / "dndvi.qml"))
    ramp = _ramp(float_raster)
    assert min(ramp) == pytest.approx(-0.6) and max(ramp) == pytest.approx(0.6)
    loss, gain = ramp[min(ramp)], ramp[max(ramp)]
    assert loss.red() > loss.green() and gain.green() > gain.red()


def test_sar_change_ramp_purple_decrease_green_increase(styles, float_raster):
    float_raster.loadNamedStyle(str(styles / "sar_change.qml"))
    ramp = _ramp(float_raster)
    assert min(ramp) == pytest.approx(-6) and max(ramp) == pytest.approx(6)
    decrease, increase = ramp[min(ramp)], ramp[max(ramp)]
    assert decrease.red() > decrease.green() and decrease.blue() > decrease.green()  # purple
    assert increase.green() > increase.red() and increase.green() > increase.blue()


def test_probability_below_half_is_not_drawn(styles, float_raster):
    float_raster.loadNamedStyle(str(styles / "probability.qml"))
    function = float_raster.renderer().shader().rasterShaderFunction()
    assert function.clip()
    assert function.minimumValue() == pytest.approx(0.5) and function.maximumValue() == pytest.approx(1.0)
    ok_low, *_ = function.shade(0.3)
    ok_high, *_ = function.shade(0.9)
    assert not ok_low and ok_high


def test_committed_styles_match_the_generator(repo_root):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, str(repo_root / "scripts" / "make_styles.py"), "--check"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
