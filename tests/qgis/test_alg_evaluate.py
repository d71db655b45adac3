"""evaluate through processing.run: every score as an output, reports next to the JSON, area and object options."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from support import write_polygons, write_raster

X0, Y0 = 400000, 6800000  # top-left of support.write_raster's 10 m grid


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


def ring(row0, col0, row1, col1):
    return [(X0 + 10 * col0, Y0 - 10 * row0), (X0 + 10 * col1, Y0 - 10 * row0), (X0 + 10 * col1, Y0 - 10 * row1),
            (X0 + 10 * col0, Y0 - 10 * row1)]


@pytest.fixture
def scene(tmp_path):
    prob = np.full((40, 60), 0.05, np.float32)
    prob[5:15, 5:15] = 0.9  # landslide 1 fully found
    prob[25:28, 40:50] = 0.6  # a false object
    prob[39, :] = np.nan
    truth = write_polygons(tmp_path / "truth.gpkg", [ring(5, 5, 15, 15), ring(20, 20, 24, 30)])  # 100 + 40 px
    return tmp_path, write_raster(tmp_path / "prob.tif", prob, ["landslide_probability"], nodata=np.nan), truth


def test_every_score_is_an_output_and_matches_the_report(landslide_provider, scene):
    tmp, prob, truth = scene
    out = run("evaluate", {"PREDICTION": prob, "TRUTH": truth, "OUTPUT_CONFUSION": str(tmp / "conf.tif"),
                           "OUTPUT_REPORT": str(tmp / "report" / "check.json")})
    report = json.loads(Path(out["OUTPUT_REPORT"]).read_text())
    m = report["metrics"]
    assert (m["tp"], m["fp"], m["fn"]) == (100, 30, 40) and m["tn"] == 39 * 60 - 170
    for key in ("PRECISION", "RECALL", "F1", "MCC", "IOU", "BIAS", "ACCURACY", "KAPPA", "TP", "FP", "FN", "TN"):
        assert out[key] == pytest.approx(m[key.lower()]), key
    assert out["F1"] == pytest.approx(200 / 270)
    assert (out["LANDSLIDES"], out["DETECTED"], out["MISSED"], out["FALSE_OBJECTS"]) == (2, 1, 1, 1)
    assert out["OBJECT_RECALL"] == pytest.approx(0.5) and out["OBJECT_PRECISION"] == pytest.approx(0.5)
    assert out["BEST_THRESHOLD"] == pytest.approx(report["threshold_sweep"]["best_f1"]["threshold"])
    assert 0.6 < out["BEST_THRESHOLD"] <= 0.9 and out["BEST_F1"] == pytest.approx(200 / 240)  # above the FP's 0.6
    assert math.isnan(out["BOUNDARY_F1"])  # not asked for
    for key in ("OUTPUT_HTML", "OUTPUT_PERFORMANCE_DIAGRAM", "OUTPUT_SWEEP_CSV", "OUTPUT_SWEEP_PLOT"):
        assert Path(out[key]).parent == tmp / "report" and Path(out[key]).stat().st_size > 0, key
    with rasterio.open(out["OUTPUT_CONFUSION"]) as c:
        code = c.read(1)
    assert (code[5:15, 5:15] == 1).all() and (code[25:28, 40:50] == 2).all() and (code[20:24, 20:30] == 3).all()
    assert (code[39] == 0).all() and code[0, 0] == 4


def test_evaluation_area_object_rule_and_mask_type(landslide_provider, scene):
    tmp, prob, truth = scene
    area = write_polygons(tmp / "area.gpkg", [ring(0, 0, 40, 35)], field=None)  # leaves out the false object
    out = run("evaluate", {"PREDICTION": prob, "TRUTH": truth, "TRUTH_FIELD": "class", "EVALUATION_AREA": area,
                           "MIN_OVERLAP": 0.5, "PREDICTION_TYPE": 1,  # mask: every value > 0 is a landslide
                           "OUTPUT_CONFUSION": None, "OUTPUT_REPORT": str(tmp / "r.json")})
    assert out["FP"] == 39 * 35 - 140 and out["FN"] == 0  # p = 0.05 > 0 counts as mapped
    assert math.isnan(out["BEST_THRESHOLD"]) and out["OUTPUT_SWEEP_CSV"] is None
    # As a mask, the whole area is one mapped object: it covers both landslides, but only 140 of its 1,365 pixels
    # are landslide, below the 0.5 rule, so it is a false object.
    assert (out["LANDSLIDES"], out["DETECTED"], out["FALSE_OBJECTS"]) == (2, 2, 1)
    assert not out.get("OUTPUT_CONFUSION")


def test_bad_size_classes_are_a_clear_error(landslide_provider, scene):
    from qgis.core import QgsProcessingException

    tmp, prob, truth = scene
    with pytest.raises(QgsProcessingException, match="Size class"):
        run("evaluate", {"PREDICTION": prob, "TRUTH": truth, "SIZE_CLASSES": "5000, 1000",
                         "OUTPUT_CONFUSION": str(tmp / "c.tif")})
    assert not (tmp / "c.tif").exists()


def test_scores_are_declared_number_outputs_for_models(landslide_provider):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("landslide_mapper:evaluate")
    kinds = {o.name(): o.type() for o in alg.outputDefinitions()}
    for key in ("PRECISION", "RECALL", "F1", "MCC", "IOU", "KAPPA", "BEST_THRESHOLD", "DETECTED", "FALSE_OBJECTS"):
        assert kinds[key] == "outputNumber", key
    assert kinds["OUTPUT_HTML"] == "outputHtml"
