"""Multi-class mapping through every algorithm via processing.run, as a user's script would: simulated geology →
terrain → s2_terrain stack → chips (ArcGIS Classified Tiles) → multi-class training → package_info → predict (class
probabilities, class map with categories and colours, class polygons) → evaluate (per-class scores)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from osgeo import gdal, ogr


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


def test_multiclass_chain_through_every_algorithm(landslide_provider, tmp_path):
    scene = run("simulate_geology", {"WIDTH": 192, "HEIGHT": 128, "SEED": 3,
                                     "OUTPUT_FOLDER": str(tmp_path / "scene")})
    classes = json.loads(Path(scene["CLASSES"]).read_text())["classes"]
    terrain = run("terrain", {"INPUT": scene["DEM"], "OUTPUT": str(tmp_path / "terrain.tif")})["OUTPUT"]
    stack = run("change_stack", {"PRE": [scene["OPTICAL"]], "POST": [scene["OPTICAL"]], "TERRAIN": [terrain],
                                 "PRESET": "s2_terrain", "OUTPUT": str(tmp_path / "stack.tif")})["OUTPUT"]
    chips = run("export_chips", {"INPUT": stack, "LABELS": scene["LABELS_RASTER"], "TILE_SIZE": 32, "STRIDE": 32,
                                 "SPLIT_BLOCK": 64, "VALIDATION_FRACTION": 0.25, "FORMAT": "arcgis",
                                 "OUTPUT_FOLDER": str(tmp_path / "chips")})
    emd = json.loads((Path(chips["OUTPUT_FOLDER"]) / "esri_model_definition.emd").read_text())
    assert {c["Name"] for c in emd["Classes"]} <= {c["name"] for c in classes[1:]} and len(emd["Classes"]) >= 3

    trained = run("train", {"CHIPS": chips["OUTPUT_FOLDER"], "TASK": "multiclass", "LOSS": "ce_dice",
                            "EPOCHS": 2, "BATCH_SIZE": 4, "ENCODER_DEPTH": 3, "DECODER_CHANNELS": "16,8,8",
                            "DEVICE": "cpu", "OUTPUT": str(tmp_path / "geology.lmpkg")})
    assert 0 <= trained["F1"] <= 1
    info = run("package_info", {"PACKAGE": trained["OUTPUT"]})
    assert info["TASK"] == "multiclass_segmentation" and "bedrock" in info["CLASSES"]
    assert "Classes (value, name, colour" in info["SUMMARY"]

    pred = run("predict", {"PACKAGE": trained["OUTPUT"], "INPUT": stack, "DEVICE": "cpu",
                           "CLASS_MIN_AREAS": "bedrock=400", "VETO_CLASSES": "landslide",
                           "OUTPUT_PROBABILITY": str(tmp_path / "prob.tif"),
                           "OUTPUT_MASK": str(tmp_path / "classes.tif"),
                           "OUTPUT_POLYGONS": str(tmp_path / "classes.gpkg")})
    table = info["CLASSES"].split(",")
    with rasterio.open(pred["OUTPUT_PROBABILITY"]) as src:
        assert src.count == len(table)
        np.testing.assert_allclose(np.nansum(src.read(), axis=0), 1.0, atol=1e-4)
    with rasterio.open(pred["OUTPUT_MASK"]) as src:
        values = set(np.unique(src.read(1))) - {255}
        colours = src.colormap(1)
    known = {int(t.split("=")[0]) for t in table}
    assert values <= known
    bedrock = next(c for c in classes if c["name"] == "bedrock")
    assert "#{:02x}{:02x}{:02x}".format(*colours[bedrock["value"]][:3]) == bedrock["color"]
    ds = gdal.Open(pred["OUTPUT_MASK"])
    ds.GetFileList()
    names = ds.GetRasterBand(1).GetCategoryNames()
    ds = None
    assert names[bedrock["value"]] == "bedrock"
    layer_ds = ogr.Open(pred["OUTPUT_POLYGONS"])
    layer = layer_ds.GetLayer(0)
    for feat in layer:
        assert feat.GetField("class") in known - {0}
        if feat.GetField("class_name") == "bedrock":
            assert feat.GetField("area_m2") >= 400

    ev = run("evaluate", {"PREDICTION": pred["OUTPUT_MASK"], "TRUTH": scene["LABELS_RASTER"],
                          "CONFUSION_CLASS": "wetland", "OUTPUT_CONFUSION": str(tmp_path / "confusion.tif"),
                          "OUTPUT_REPORT": str(tmp_path / "report.json")})
    report = json.loads(Path(ev["OUTPUT_REPORT"]).read_text())
    assert report["prediction_type"] == "class map" and report["confusion_class"] == "wetland"
    assert ev["MACRO_F1"] == report["metrics"]["macro_f1"] and ev["F1"] == ev["MACRO_F1"]
    assert 0 <= ev["BALANCED_ACCURACY"] <= 1
    assert Path(ev["OUTPUT_MATRIX_PLOT"]).exists() and Path(ev["OUTPUT_CLASSES_CSV"]).exists()
    assert "bedrock" in Path(ev["OUTPUT_HTML"]).read_text()

    import pytest
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="class map of a multi-class model"):
        run("compare_predictions", {"PREDICTION_A": pred["OUTPUT_MASK"], "PREDICTION_B": pred["OUTPUT_MASK"],
                                    "TRUTH": scene["LABELS_RASTER"], "OUTPUT_COMPARISON": str(tmp_path / "cmp.tif")})
