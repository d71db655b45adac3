"""Every algorithm through processing.run, as a user's script would call it, on a small simulated event."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

SIZE = 256


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    from landslide_mapper.core.simulate import simulate_event

    return simulate_event(tmp_path_factory.mktemp("event"), width=SIZE, height=SIZE, seed=7)


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


def test_simulate_event_algorithm_writes_every_layer(landslide_provider, tmp_path):
    out = run("simulate_event", {"WIDTH": 96, "HEIGHT": 80, "SEED": 1, "OUTPUT_FOLDER": str(tmp_path / "sim")})
    for key in ("PRE_S2", "POST_S2", "PRE_S1", "POST_S1", "DEM", "LABELS_RASTER", "LABELS_VECTOR"):
        assert Path(out[key]).exists(), key
    with rasterio.open(out["POST_S1"]) as src:
        assert (src.width, src.height) == (96, 80) and src.descriptions == ("VV", "VH")


def test_full_chain_stack_chips_train_predict_evaluate(landslide_provider, event, tmp_path):
    stack = run("change_stack", {"PRE": [str(event.pre_s1), str(event.pre_s2)],
                                 "POST": [str(event.post_s1), str(event.post_s2)],
                                 "PRESET": 1,  # setting2
                                 "OUTPUT": str(tmp_path / "stack.tif")})["OUTPUT"]
    with rasterio.open(stack) as src:
        assert src.descriptions == ("pre_VV", "post_VV", "dNDVI")
        assert src.shape == (SIZE, SIZE)

    chips = run("export_chips", {"INPUT": stack, "LABELS": str(event.labels_vector), "CLASS_FIELD": "class",
                                 "TILE_SIZE": 64, "STRIDE": 64, "SPLIT_BLOCK": 128, "VALIDATION_FRACTION": 0.25,
                                 "OUTPUT_FOLDER": str(tmp_path / "chips")})
    assert chips["TRAIN_CHIPS"] > 0 and chips["VALIDATION_CHIPS"] > 0
    assert (Path(chips["OUTPUT_FOLDER"]) / "stats.json").exists()

    trained = run("train", {"CHIPS": chips["OUTPUT_FOLDER"], "EPOCHS": 2, "BATCH_SIZE": 4, "ENCODER_DEPTH": 3,
                            "DECODER_CHANNELS": "32,16,8", "OUTPUT": str(tmp_path / "model.lmpkg")})
    assert Path(trained["OUTPUT"]).exists() and 0 <= trained["F1"] <= 1 and 0 < trained["THRESHOLD"] < 1
    assert Path(trained["CURVES"]).exists()

    pred = run("predict", {"PACKAGE": trained["OUTPUT"], "INPUT": stack,
                           "OUTPUT_PROBABILITY": str(tmp_path / "prob.tif"), "OUTPUT_MASK": str(tmp_path / "mask.tif")})
    with rasterio.open(pred["OUTPUT_PROBABILITY"]) as p, rasterio.open(stack) as s:
        prob = p.read(1)
        assert p.transform == s.transform and p.crs == s.crs
    assert np.nanmin(prob) >= 0 and np.nanmax(prob) <= 1

    ev = run("evaluate", {"PREDICTION": pred["OUTPUT_MASK"], "TRUTH": str(event.labels_raster),
                          "OUTPUT_CONFUSION": str(tmp_path / "confusion.tif"),
                          "OUTPUT_REPORT": str(tmp_path / "report.json")})
    report = json.loads(Path(ev["OUTPUT_REPORT"]).read_text())["metrics"]
    for key in ("PRECISION", "RECALL", "F1", "MCC", "IOU"):
        value = report[key.lower()]
        assert (value is None and np.isnan(ev[key])) or ev[key] == pytest.approx(value)
    with rasterio.open(ev["OUTPUT_CONFUSION"]) as c, rasterio.open(pred["OUTPUT_MASK"]) as m, \
            rasterio.open(event.labels_raster) as t:
        code, mask, truth = c.read(1), m.read(1), t.read(1)
    assert ((code == 1) == ((mask == 1) & (truth == 1))).all()
    assert ((code == 3) == ((mask == 0) & (truth == 1))).all()
    assert report["tp"] + report["fn"] == int((truth == 1).sum())


def test_evaluate_with_polygon_truth_equals_raster_truth(landslide_provider, event, tmp_path):
    a = run("evaluate", {"PREDICTION": str(event.labels_raster), "TRUTH": str(event.labels_raster),
                         "OUTPUT_CONFUSION": str(tmp_path / "a.tif")})
    b = run("evaluate", {"PREDICTION": str(event.labels_raster), "TRUTH": str(event.labels_vector),
                         "OUTPUT_CONFUSION": str(tmp_path / "b.tif")})
    assert a["F1"] == pytest.approx(1.0) and b["F1"] == pytest.approx(1.0) and a["MCC"] == pytest.approx(1.0)
