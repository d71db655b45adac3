"""Pixel scores against hand-computed confusion matrices, degenerate cases, and the threshold sweep."""
import math

import numpy as np
import pytest
import rasterio

from landslide_mapper.core.metrics import (
    Confusion,
    ProbabilityHistogram,
    best_threshold,
    evaluate_prediction,
    exact_threshold,
    scores,
    threshold_sweep,
)


def test_every_score_matches_a_hand_computed_matrix():
    # TP 40, FP 10, FN 20, TN 930 (n = 1000)
    m = scores(Confusion(tp=40, fp=10, fn=20, tn=930))
    assert m["precision"] == pytest.approx(40 / 50)
    assert m["recall"] == pytest.approx(40 / 60)
    assert m["f1"] == pytest.approx(80 / 110)
    assert m["iou"] == pytest.approx(40 / 70)
    assert m["bias"] == pytest.approx(50 / 60)
    assert m["accuracy"] == pytest.approx(0.97)
    assert m["mcc"] == pytest.approx((40 * 930 - 10 * 20) / math.sqrt(50 * 60 * 940 * 950))
    chance = (50 * 60 + 950 * 940) / 1000**2  # (predicted+ · truth+ + predicted− · truth−) / n²
    assert m["kappa"] == pytest.approx((0.97 - chance) / (1 - chance))
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (40, 10, 20, 930)


def test_second_matrix_with_more_false_alarms_than_hits():
    # TP 5, FP 15, FN 5, TN 75: precision 0.25, recall 0.5, MCC = (375 − 75)/sqrt(20·10·90·80) = 300/1200
    m = scores(Confusion(tp=5, fp=15, fn=5, tn=75))
    assert (m["precision"], m["recall"]) == (0.25, 0.5)
    assert m["f1"] == pytest.approx(10 / 30)
    assert m["mcc"] == pytest.approx(0.25)
    assert m["bias"] == pytest.approx(2.0)
    assert m["kappa"] == pytest.approx((0.8 - 0.74) / (1 - 0.74))  # chance = (20·10 + 80·90)/100²


def test_perfect_and_inverted_maps():
    perfect = scores(Confusion(tp=10, tn=90))
    assert perfect["f1"] == perfect["mcc"] == perfect["kappa"] == perfect["iou"] == 1.0
    inverted = scores(Confusion(fp=90, fn=10))
    assert inverted["mcc"] == pytest.approx(-1.0) and inverted["f1"] == 0.0 and inverted["accuracy"] == 0.0


@pytest.mark.parametrize("counts, defined", [
    (dict(tn=100), {"accuracy": 1.0}),  # no landslide anywhere, none mapped
    (dict(fp=3, tn=97), {"precision": 0.0, "f1": 0.0, "iou": 0.0, "accuracy": 0.97, "kappa": 0.0}),  # no truth
    (dict(fn=4, tn=96), {"recall": 0.0, "f1": 0.0, "iou": 0.0, "bias": 0.0, "accuracy": 0.96, "kappa": 0.0}),
    (dict(tp=100), {"precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0, "bias": 1.0, "accuracy": 1.0}),
    (dict(), {}),  # nothing at all
])
def test_degenerate_matrices_give_none_instead_of_dividing_by_zero(counts, defined):
    m = scores(Confusion(**counts))
    for key in ("precision", "recall", "f1", "mcc", "iou", "bias", "accuracy", "kappa"):
        if key in defined:
            assert m[key] == pytest.approx(defined[key]), key
        else:
            assert m[key] is None, key


def test_confusion_from_arrays_and_from_counts_agree():
    rng = np.random.default_rng(3)
    p, t, v = (rng.random((30, 40)) > q for q in (0.6, 0.7, 0.1))
    c = Confusion.from_arrays(p, t, v)
    assert c.tp == int((p & t & v).sum()) and c.fp == int((p & ~t & v).sum())
    assert c.fn == int((~p & t & v).sum()) and c.tn == int((~p & ~t & v).sum())
    assert c == Confusion.from_counts(c.tp, int((p & v).sum()), int((t & v).sum()), int(v.sum()))


def test_sweep_rows_are_the_confusion_at_each_threshold():
    pos = np.array([1, 0, 2, 3])  # 4 bins: thresholds 0, 0.25, 0.5, 0.75
    neg = np.array([5, 4, 1, 0])
    rows = threshold_sweep(pos, neg)
    assert [r["threshold"] for r in rows] == [0, 0.25, 0.5, 0.75]
    assert [(r["tp"], r["fp"], r["fn"], r["tn"]) for r in rows] == [(6, 10, 0, 0), (5, 5, 1, 5), (5, 1, 1, 9),
                                                                   (3, 0, 3, 10)]
    assert best_threshold(pos, neg) == (0.5, pytest.approx(10 / 12))


def test_best_threshold_with_no_landslide_does_not_crash():
    t, f1 = best_threshold(np.zeros(10, int), np.full(10, 5))
    assert f1 == 0.0 and 0 <= t < 1


def test_exact_threshold_rounds_up_so_floats_compare_as_real_numbers():
    t = exact_threshold("float32", 0.29)
    assert float(t) >= 0.29 and float(np.nextafter(t, np.float32(0))) < 0.29
    assert exact_threshold("float32", 0.5) == np.float32(0.5) and exact_threshold("uint8", 0.5) == 0.5


def test_histogram_sweep_equals_direct_thresholding_even_at_bin_edges():
    rng = np.random.default_rng(0)
    edges = (np.arange(101) / 100).astype(np.float32)  # float32 values of k/100 (0.29 is stored below 0.29)
    p = np.concatenate([rng.random(5000).astype(np.float32), edges, np.nextafter(edges, np.float32(2))])
    truth = rng.random(p.size) > 0.7
    valid = rng.random(p.size) > 0.05
    hist = ProbabilityHistogram()
    hist.add(p, truth & valid, valid)
    rows = threshold_sweep(hist.positive, hist.negative)
    for k, row in enumerate(rows):
        predicted = p >= exact_threshold(p.dtype, k / 100)
        expected = Confusion.from_arrays(predicted, truth, valid)
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (expected.tp, expected.fp, expected.fn, expected.tn), k
        assert row["threshold"] == pytest.approx(k / 100)


def test_sweep_of_evaluate_matches_evaluating_at_that_threshold(tmp_path, raster_writer):
    rng = np.random.default_rng(1)
    prob = rng.random((30, 40)).astype(np.float32)
    prob[0, :10] = np.float32(0.29)
    prob[1, :10] = np.float32(0.57)
    prob[2, :5] = np.nan
    truth = (rng.random((30, 40)) > 0.6).astype(np.uint8)
    p = raster_writer(tmp_path / "p.tif", prob, ["landslide_probability"], nodata=np.nan)
    t = raster_writer(tmp_path / "t.tif", truth, ["label"])
    ev = evaluate_prediction(p, t, objects=None)
    assert len(ev.sweep) == 100
    for k in (0, 29, 50, 57, 99):
        at = evaluate_prediction(p, t, threshold=k / 100, objects=None, sweep=False).metrics
        row = ev.sweep[k]
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (at["tp"], at["fp"], at["fn"], at["tn"]), k
    best = max(ev.sweep, key=lambda r: r["f1"])
    assert ev.best["best_f1"]["f1"] == best["f1"]
    assert ev.best["best_mcc"]["mcc"] == max(r["mcc"] for r in ev.sweep if r["mcc"] is not None)


def test_mask_prediction_has_no_sweep(tmp_path, raster_writer):
    mask = np.zeros((10, 10), np.uint8)
    mask[:3] = 1
    p = raster_writer(tmp_path / "m.tif", mask, ["mask"])
    ev = evaluate_prediction(p, p, objects=None)
    assert ev.sweep is None and ev.metrics["f1"] == 1.0


def test_float_mask_can_be_declared_a_mask(tmp_path, raster_writer):
    mask = np.zeros((10, 10), np.float32)
    mask[:3] = 0.2  # > 0 but below a probability threshold of 0.5
    p = raster_writer(tmp_path / "m.tif", mask, ["mask"])
    t = raster_writer(tmp_path / "t.tif", (mask > 0).astype(np.uint8), ["label"])
    assert evaluate_prediction(p, t, objects=None).metrics["tp"] == 0
    assert evaluate_prediction(p, t, objects=None, is_probability=False).metrics["tp"] == 30


def test_truth_nodata_is_left_out(tmp_path, raster_writer):
    truth = np.zeros((10, 10), np.uint8)
    truth[:, :5] = 1
    truth[8:] = 255  # unlabelled rows
    mask = np.ones((10, 10), np.uint8)
    t = raster_writer(tmp_path / "t.tif", truth, ["label"], nodata=255)
    p = raster_writer(tmp_path / "p.tif", mask, ["mask"])
    ev = evaluate_prediction(p, t, tmp_path / "c.tif", objects=None)
    assert (ev.metrics["tp"], ev.metrics["fp"], ev.metrics["fn"], ev.metrics["tn"]) == (40, 40, 0, 0)
    with rasterio.open(ev.confusion_path) as c:
        assert (c.read(1)[8:] == 0).all()
