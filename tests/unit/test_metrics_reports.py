"""Evaluation area, vector truth in another CRS, comparison map per pixel, reports and plots."""
import json

import numpy as np
import pytest
import rasterio
from osgeo import osr
from support import write_polygons

from landslide_mapper.core import metrics
from landslide_mapper.core.metrics import plots
from landslide_mapper.core.metrics import (
    BOTH_FN,
    BOTH_FP,
    BOTH_TN,
    BOTH_TP,
    ONLY_A_FP,
    ONLY_A_TP,
    ONLY_B_FP,
    ONLY_B_TP,
    Confusion,
    compare_predictions,
    evaluate_prediction,
    plot_performance_diagram,
    scores,
)

PNG = b"\x89PNG\r\n\x1a\n"
X0, Y0 = 400000, 6800000  # top-left of support.write_raster's 10 m grid


def utm_ring(row0, col0, row1, col1):
    """The outline of pixel rows row0..row1-1, cols col0..col1-1 of the test grid, in UTM 32N."""
    return [(X0 + 10 * col0, Y0 - 10 * row0), (X0 + 10 * col1, Y0 - 10 * row0), (X0 + 10 * col1, Y0 - 10 * row1),
            (X0 + 10 * col0, Y0 - 10 * row1)]


def to_wgs84(ring, steps=10):
    """Reproject a UTM ring to lon/lat, densified so its edges stay straight in UTM."""
    utm, wgs = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32632)
    wgs.ImportFromEPSG(4326)
    for s in (utm, wgs):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    tr = osr.CoordinateTransformation(utm, wgs)
    closed = list(ring) + [ring[0]]
    out = []
    for (x0, y0), (x1, y1) in zip(closed[:-1], closed[1:]):
        out += [tr.TransformPoint(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps)[:2] for k in range(steps)]
    return out


BLOCKS = [(2, 3, 8, 12), (15, 20, 22, 26), (25, 2, 28, 4)]  # three landslides as pixel boxes


@pytest.fixture
def scene(tmp_path, raster_writer):
    truth = np.zeros((30, 40), np.uint8)
    for r0, c0, r1, c1 in BLOCKS:
        truth[r0:r1, c0:c1] = 1
    prob = np.full((30, 40), 0.1, np.float32)
    prob[2:8, 3:9] = 0.9  # most of landslide 1
    prob[10:13, 30:35] = 0.7  # a false object
    prob[29, :] = np.nan
    return {"truth": truth, "prob": prob,
            "truth_path": raster_writer(tmp_path / "truth.tif", truth, ["label"]),
            "prob_path": raster_writer(tmp_path / "prob.tif", prob, ["landslide_probability"], nodata=np.nan)}


def test_polygons_in_another_crs_give_the_same_pixels_and_objects_as_raster_truth(tmp_path, scene):
    vec = write_polygons(tmp_path / "truth.gpkg", [to_wgs84(utm_ring(*b)) for b in BLOCKS], epsg=4326)
    a = evaluate_prediction(scene["prob_path"], scene["truth_path"])
    b = evaluate_prediction(scene["prob_path"], vec)
    assert a.metrics == b.metrics
    assert a.objects == b.objects and a.objects["landslides"] == 3
    assert a.sweep == b.sweep


def test_evaluation_area_polygon_leaves_out_everything_outside(tmp_path, scene):
    area = write_polygons(tmp_path / "area.gpkg", [to_wgs84(utm_ring(0, 0, 30, 20))], epsg=4326, field=None)
    ev = evaluate_prediction(scene["prob_path"], scene["truth_path"], tmp_path / "c.tif", area_path=area)
    inside = np.zeros((30, 40), bool)
    inside[:29, :20] = True  # row 29 is nodata
    expected = Confusion.from_arrays(scene["prob"] >= 0.5, scene["truth"] == 1, inside)
    assert ev.metrics == scores(expected)
    with rasterio.open(ev.confusion_path) as c:
        code = c.read(1)
    assert (code[:, 20:] == 0).all() and (code[29] == 0).all() and (code[:29, :20] > 0).all()
    assert ev.objects["landslides"] == 2 and ev.objects["false_objects"] == 0  # block 2 and the false object lie out


def test_evaluation_area_that_misses_the_map_is_a_clear_error(tmp_path, scene):
    far = write_polygons(tmp_path / "far.gpkg", [utm_ring(100, 100, 110, 110)], field=None)
    with pytest.raises(Exception, match="Evaluation area .*far.gpkg.* does not overlap prediction .*prob.tif"):
        evaluate_prediction(scene["prob_path"], scene["truth_path"], tmp_path / "c.tif", area_path=far)
    assert not (tmp_path / "c.tif").exists()


def test_report_json_html_and_plots_are_written_next_to_the_report(tmp_path, scene):
    ev = evaluate_prediction(scene["prob_path"], scene["truth_path"], tmp_path / "conf.tif",
                             tmp_path / "out" / "check.json", name="U-Net")
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert names == {"check.json", "check.html", "check_confusion.png", "check_performance.png", "check_sweep.csv",
                     "check_sweep.png"}
    for png in ("check_confusion.png", "check_performance.png", "check_sweep.png"):
        data = (out / png).read_bytes()
        assert data[:8] == PNG and len(data) > 10_000, png
    report = json.loads((out / "check.json").read_text())
    assert report["metrics"]["tp"] == ev.metrics["tp"] == 36
    assert report["objects"]["detected"] == 1 and report["threshold_sweep"]["best_f1"]["f1"] == ev.best["best_f1"]["f1"]
    assert report["files"]["html"] == "check.html"
    page = (out / "check.html").read_text()
    for png in ("check_confusion.png", "check_performance.png", "check_sweep.png"):
        assert f'src="{png}"' in page  # relative: the folder can be moved or zipped
    assert "Landslides as objects" in page and "U-Net" in page
    rows = (out / "check_sweep.csv").read_text().splitlines()
    assert rows[0].startswith("threshold,precision,recall,f1,mcc") and len(rows) == 101
    assert rows[51].split(",")[0] == "0.5"


def test_all_negative_scene_reports_without_dividing_by_zero(tmp_path, raster_writer):
    empty = np.zeros((20, 20), np.float32)
    p = raster_writer(tmp_path / "p.tif", empty, ["landslide_probability"])
    t = raster_writer(tmp_path / "t.tif", empty.astype(np.uint8), ["label"])
    ev = evaluate_prediction(p, t, tmp_path / "c.tif", tmp_path / "r.json", boundary_tolerance=1)
    assert ev.metrics["tn"] == 400 and ev.metrics["f1"] is None and ev.metrics["mcc"] is None
    assert ev.objects["landslides"] == 0 and ev.objects["object_recall"] is None
    assert ev.best["best_f1"] is None and ev.boundary["boundary_f1"] is None
    report = json.loads((tmp_path / "r.json").read_text())  # strict JSON: no NaN
    assert report["metrics"]["precision"] is None
    assert "n/a" in (tmp_path / "r.html").read_text()
    assert (tmp_path / "r_performance.png").stat().st_size > 5_000


def test_boundary_scores_with_tolerance(tmp_path, raster_writer):
    truth = np.zeros((40, 40), np.uint8)
    truth[10:30, 10:30] = 1
    pred = np.zeros_like(truth)
    pred[11:31, 10:30] = 1  # shifted one row down
    t = raster_writer(tmp_path / "t.tif", truth, ["label"])
    p = raster_writer(tmp_path / "p.tif", pred, ["mask"])
    exact = evaluate_prediction(p, t, objects=None, boundary_tolerance=0).boundary
    assert exact is None
    near = evaluate_prediction(p, t, objects=None, boundary_tolerance=1, block=8).boundary
    assert near["boundary_f1"] == 1.0 and near["truth_boundary"] == 76
    strict = evaluate_prediction(p, p, objects=None, boundary_tolerance=1).boundary
    assert strict["boundary_precision"] == 1.0
    # with a 1 px tolerance a 3 px shift is missed along the top and bottom edges
    pred3 = np.zeros_like(truth)
    pred3[13:33, 10:30] = 1
    p3 = raster_writer(tmp_path / "p3.tif", pred3, ["mask"])
    far = evaluate_prediction(p3, t, objects=None, boundary_tolerance=1, block=8).boundary
    # unmatched: top edge 20, bottom edge 16 (its 2 end pixels each side are next to the shifted sides), and the
    # first side pixel below each top corner → 38 of 76
    assert far["boundary_recall"] == pytest.approx(38 / 76)


def test_comparison_map_codes_per_pixel(tmp_path, raster_writer):
    # One column per case: truth, A, B → code.
    cases = [(1, 1, 1, BOTH_TP), (1, 1, 0, ONLY_A_TP), (1, 0, 1, ONLY_B_TP), (1, 0, 0, BOTH_FN),
             (0, 1, 1, BOTH_FP), (0, 1, 0, ONLY_A_FP), (0, 0, 1, ONLY_B_FP), (0, 0, 0, BOTH_TN)]
    truth = np.array([[c[0] for c in cases]] * 3, np.uint8)
    a = np.array([[c[1] for c in cases]] * 3, np.uint8)
    b = np.array([[c[2] for c in cases]] * 3, np.float32) * 0.9
    b[2, 0] = np.nan  # nodata in B only: left out of both
    paths = [raster_writer(tmp_path / f"{n}.tif", d, [n], nodata=np.nan if n == "b" else None)
             for n, d in (("truth", truth), ("a", a), ("b", b))]
    result = compare_predictions(paths[1], paths[2], paths[0], tmp_path / "cmp.tif", tmp_path / "cmp.json",
                                 names=("single", "ensemble"))
    with rasterio.open(tmp_path / "cmp.tif") as src:
        code = src.read(1)
    assert code[:2].tolist() == [[c[3] for c in cases]] * 2
    assert code[2, 0] == 0 and code[2, 1:].tolist() == [c[3] for c in cases[1:]]
    valid = np.ones((3, 8), bool)
    valid[2, 0] = False
    assert result.metrics[0] == scores(Confusion.from_arrays(a == 1, truth == 1, valid))
    assert result.metrics[1] == scores(Confusion.from_arrays(b >= 0.5, truth == 1, valid))
    assert result.counts["Only single detects (ensemble misses)"] == 3
    assert result.counts["Both detect the landslide"] == 2
    report = json.loads((tmp_path / "cmp.json").read_text())
    assert report["metrics"]["ensemble"]["tp"] == result.metrics[1]["tp"]
    assert report["pixels_by_class"]["False alarm of ensemble only"] == 3
    page = (tmp_path / "cmp.html").read_text()
    assert 'src="cmp_comparison.png"' in page and 'src="cmp_performance.png"' in page
    for png in ("cmp_comparison.png", "cmp_performance.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG and (tmp_path / png).stat().st_size > 10_000


def test_performance_diagram_takes_any_number_of_points(tmp_path):
    few = [("single", {"precision": 0.8, "recall": 0.5, "f1": 0.62}), ("ensemble", {"precision": 0.7, "recall": 0.7}),
           ("empty", {"precision": None, "recall": None})]
    png = plot_performance_diagram(few, tmp_path / "few.png")
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 20_000
    rng = np.random.default_rng(0)
    many = [(f"m{i}", {"precision": p, "recall": r, "f1": 2 * p * r / (p + r)})
            for i, (p, r) in enumerate(rng.uniform(0.2, 0.9, (40, 2)))]
    assert plot_performance_diagram(many, tmp_path / "many.png").stat().st_size > 20_000


def test_comparison_quicklook_keeps_disagreements_visible(tmp_path, raster_writer):
    codes = np.full((2000, 1000), BOTH_TN, np.uint8)
    codes[500, 500] = ONLY_B_TP
    path = raster_writer(tmp_path / "c.tif", codes, ["comparison"], nodata=0)
    small = plots._decimate_codes(path, 500, plots._COMPARISON_PRIORITY)
    assert small.shape == (500, 250) and (small == ONLY_B_TP).sum() == 1


def test_cancel_mid_way_leaves_no_map_behind(tmp_path, scene):
    from landslide_mapper.common.errors import Canceled
    from landslide_mapper.common.progress import NullProgress

    class CancelAfterFirstStrip(NullProgress):
        calls = 0

        def is_canceled(self):
            self.calls += 1
            return self.calls > 1

    with pytest.raises(Canceled):
        evaluate_prediction(scene["prob_path"], scene["truth_path"], tmp_path / "c.tif", tmp_path / "r.json",
                            block=8, progress=CancelAfterFirstStrip())
    with pytest.raises(Canceled):
        compare_predictions(scene["prob_path"], scene["prob_path"], scene["truth_path"], tmp_path / "m.tif",
                            block=8, progress=CancelAfterFirstStrip())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prob.tif", "truth.tif"]  # no map, no temp file
