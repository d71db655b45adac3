"""Class maps in the docks: the model card lists a multi-class package's classes, class maps and class polygons are
styled with the package's names and colours (a legend entry per class), the evaluation table has a row per class."""
from __future__ import annotations

import json

import numpy as np
import rasterio
from rasterio.transform import from_origin

CLASSES = [{"value": 0, "name": "background", "color": "#f0e6c800"},
           {"value": 1, "name": "bedrock", "color": "#7f7f7f"},
           {"value": 2, "name": "wetland", "color": "#1f78b4"}]


def test_model_card_lists_the_class_table():
    from landslide_mapper.ui.model_card import model_card_html

    manifest = {"task": "multiclass_segmentation", "classes": CLASSES, "threshold": 0.5, "tile_size": 64,
                "input_bands": ["elevation"], "members": [{"architecture": "Unet"}],
                "validation_metrics": {"macro_f1": 0.81, "precision": 0.8},
                "validation_classes": [{"value": 1, "name": "bedrock", "f1": 0.93, "iou": 0.87}]}
    html = model_card_html(manifest, "geology.lmpkg")
    assert "wetland" in html and "#1f78b4" in html and "0.930" in html and "multi-class" in html
    assert "Threshold" not in html


def test_class_map_and_polygons_are_styled_with_names_and_colours(qgis_iface, tmp_path):
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer

    from landslide_mapper.processing_provider.styles import apply_class_style

    path = tmp_path / "classes.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", nodata=255,
                       crs="EPSG:32633", transform=from_origin(0, 80, 10, 10)) as dst:
        dst.write(np.arange(64, dtype=np.uint8).reshape(1, 8, 8) % 3)
        dst.update_tags(LANDSLIDE_MAPPER_CLASSES=json.dumps(CLASSES))
    layer = QgsRasterLayer(str(path), "classes")
    assert apply_class_style(layer)  # the raster's own class table
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [c.label for c in renderer.classes()] == ["background", "bedrock", "wetland"]
    assert renderer.classes()[2].color.name() == "#1f78b4"
    assert apply_class_style(layer, CLASSES) and layer.renderer().classes()[0].color.alpha() == 0


def test_evaluation_table_has_a_row_per_class(tmp_path):
    from landslide_mapper.ui.evaluation_dock import score_rows

    report = tmp_path / "report.json"
    report.write_text(json.dumps({"metrics": {"classes": [
        {"value": 1, "name": "bedrock", "precision": 0.9, "recall": 0.8, "f1": 0.847, "iou": 0.73},
        {"value": 2, "name": "wetland", "precision": None, "recall": 0.0, "f1": 0.0, "iou": 0.0}]}}))
    rows = score_rows(None, {"OUTPUT_REPORT": str(report), "F1": 0.4})
    labels = {key: (label, value) for key, label, value in rows}
    assert labels["CLASS_1"][1] == 0.847 and "bedrock" in labels["CLASS_1"][0] and "IoU 0.730" in labels["CLASS_1"][0]
    assert labels["CLASS_2"][0].startswith("F1 of wetland (precision n/a")
