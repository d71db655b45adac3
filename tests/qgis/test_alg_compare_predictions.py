"""compare_predictions through processing.run: 7-colour map per pixel, both maps' scores, the shipped style."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from support import write_raster


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


def test_comparison_map_and_scores_of_both(landslide_provider, tmp_path):
    from landslide_mapper.core.metrics import Confusion, scores

    rng = np.random.default_rng(5)
    truth = (rng.random((30, 40)) > 0.8).astype(np.uint8)
    single = ((truth == 1) & (rng.random((30, 40)) > 0.3) | (rng.random((30, 40)) > 0.9)).astype(np.uint8)
    ensemble = np.clip(truth * 0.7 + rng.random((30, 40)) * 0.4, 0, 1).astype(np.float32)
    ensemble[0, :] = np.nan
    t = write_raster(tmp_path / "truth.tif", truth, ["label"])
    a = write_raster(tmp_path / "single.tif", single, ["mask"])
    b = write_raster(tmp_path / "ensemble.tif", ensemble, ["landslide_probability"], nodata=np.nan)
    out = run("compare_predictions", {"PREDICTION_A": a, "PREDICTION_B": b, "THRESHOLD_B": 0.6, "NAME_B": "ensemble",
                                      "TRUTH": t, "OUTPUT_COMPARISON": str(tmp_path / "cmp.tif"),
                                      "OUTPUT_REPORT": str(tmp_path / "cmp.json")})
    with rasterio.open(out["OUTPUT_COMPARISON"]) as src:
        code = src.read(1)
    pa, pb, tt = single == 1, ensemble >= np.float32(0.6), truth == 1
    expected = 8 - (4 * tt + 2 * pa + pb)
    expected[0] = 0
    assert (code == expected).all()
    valid = np.ones_like(tt)
    valid[0] = False
    for side, predicted in (("A", pa), ("B", pb)):
        m = scores(Confusion.from_arrays(predicted, tt, valid))
        for key in ("PRECISION", "RECALL", "F1", "MCC", "IOU"):
            assert out[f"{key}_{side}"] == pytest.approx(m[key.lower()]), (side, key)
    report = json.loads(Path(out["OUTPUT_REPORT"]).read_text())
    assert set(report["metrics"]) == {"single", "ensemble"}  # A named after its layer
    assert sum(report["pixels_by_class"].values()) == valid.sum()
    assert Path(out["OUTPUT_HTML"]).exists() and Path(out["OUTPUT_PERFORMANCE_DIAGRAM"]).stat().st_size > 10_000


def test_shipped_comparison_style_has_the_seven_classes_of_the_map(repo_root, tmp_path):
    from qgis.core import QgsRasterLayer
    from qgis.PyQt.QtGui import QColor

    from landslide_mapper.core.metrics import BOTH_TN, COMPARISON_CLASSES

    path = write_raster(tmp_path / "c.tif", np.arange(9, dtype=np.uint8).reshape(3, 3), ["comparison"], nodata=0)
    layer = QgsRasterLayer(path, "comparison")
    message, ok = layer.loadNamedStyle(str(repo_root / "ui" / "styles" / "comparison.qml"))
    assert ok, message
    palette = {c.value: (c.color.name(), c.label) for c in layer.renderer().classes()}
    expected = {m.value: (QColor(m.color).name(), m.label.format(a="A", b="B"))
                for m in COMPARISON_CLASSES if m.value != BOTH_TN}
    assert palette == expected  # both-right (8) and nodata (0) are not drawn
