import json
import math

import numpy as np
import pytest
import rasterio
from osgeo import ogr, osr

from landslide_mapper.common.errors import InputError
from landslide_mapper.core.metrics import Confusion, best_threshold, evaluate_prediction, scores


def test_scores_match_hand_computed_confusion_matrix():
    m = scores(Confusion(tp=40, fp=10, fn=20, tn=930))
    assert m["precision"] == pytest.approx(0.8)
    assert m["recall"] == pytest.approx(40 / 60)
    assert m["f1"] == pytest.approx(2 * 40 / (80 + 30))
    assert m["iou"] == pytest.approx(40 / 70)
    assert m["bias"] == pytest.approx(50 / 60)
    assert m["mcc"] == pytest.approx((40 * 930 - 10 * 20) / math.sqrt(50 * 60 * 940 * 950))
    assert m["accuracy"] == pytest.approx(970 / 1000)


def test_all_negative_case_does_not_divide_by_zero():
    m = scores(Confusion(tn=100))
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None and m["mcc"] is None
    assert m["accuracy"] == 1.0


def test_best_threshold_separates_perfectly_separable_histograms():
    pos = np.zeros(100, int)
    neg = np.zeros(100, int)
    pos[70:] = 5
    neg[:40] = 7
    t, f1 = best_threshold(pos, neg)
    assert 0.4 <= t <= 0.7 and f1 == 1.0


@pytest.fixture
def truth_and_prediction(tmp_path, raster_writer):
    truth = np.zeros((40, 50), np.uint8)
    truth[5:15, 5:25] = 1  # 200 px landslide
    prob = np.full((40, 50), 0.1, np.float32)
    prob[5:15, 5:15] = 0.9  # 100 TP
    prob[30:35, 30:40] = 0.8  # 50 FP
    prob[0, :] = np.nan  # 50 px nodata row
    t = raster_writer(tmp_path / "truth.tif", truth, ["label"])
    p = raster_writer(tmp_path / "prob.tif", prob, ["landslide_probability"], nodata=np.nan)
    return t, p


def test_confusion_map_codes_per_pixel_and_metrics(tmp_path, truth_and_prediction):
    t, p = truth_and_prediction
    ev = evaluate_prediction(p, t, tmp_path / "conf.tif", tmp_path / "report.json", threshold=0.5)
    with rasterio.open(ev.confusion_path) as c:
        code = c.read(1)
    assert (code[0] == 0).all()
    assert (code[5:15, 5:15] == 1).all() and (code[5:15, 15:25] == 3).all()
    assert (code[30:35, 30:40] == 2).all() and code[20, 45] == 4
    assert (ev.metrics["tp"], ev.metrics["fp"], ev.metrics["fn"]) == (100, 50, 100)
    assert ev.metrics["tn"] == 40 * 50 - 50 - 250
    assert json.loads((tmp_path / "report.json").read_text())["metrics"]["f1"] == pytest.approx(200 / 350)


def _polygon_file(path, epsg, rings):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("truth", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTInteger))
    for ring in rings:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("class", 1)
        f.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))"))
        lyr.CreateFeature(f)
    ds = None
    return str(path)


def test_polygons_in_another_crs_give_the_same_result_as_rasterised_truth(tmp_path, truth_and_prediction):
    t, p = truth_and_prediction
    # The truth block rows 5..15, cols 5..25 of a 10 m grid at (400000, 6800000), EPSG:32632, as WGS84 lon/lat.
    utm, wgs = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(32632)
    wgs.ImportFromEPSG(4326)
    for s in (utm, wgs):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    tr = osr.CoordinateTransformation(utm, wgs)
    corners = [(400050, 6799950), (400250, 6799950), (400250, 6799850), (400050, 6799850), (400050, 6799950)]
    # densify edges so the reprojected polygon follows the straight UTM edges
    ring = []
    for (x0, y0), (x1, y1) in zip(corners[:-1], corners[1:]):
        ring += [tr.TransformPoint(x0 + (x1 - x0) * k / 20, y0 + (y1 - y0) * k / 20)[:2] for k in range(20)]
    ring.append(ring[0])
    vec = _polygon_file(tmp_path / "truth.gpkg", 4326, [ring])
    a = evaluate_prediction(p, t, threshold=0.5).metrics
    b = evaluate_prediction(p, vec, threshold=0.5).metrics
    assert (a["tp"], a["fp"], a["fn"], a["tn"]) == (b["tp"], b["fp"], b["fn"], b["tn"])


def test_missing_truth_field_is_a_clear_error(tmp_path, truth_and_prediction):
    _, p = truth_and_prediction
    vec = _polygon_file(tmp_path / "t.gpkg", 32632, [[(400050, 6799950), (400250, 6799950), (400250, 6799850),
                                                      (400050, 6799950)]])
    with pytest.raises(InputError, match="no field 'landslide'.*class"):
        evaluate_prediction(p, vec, tmp_path / "c.tif", truth_field="landslide")
    assert not (tmp_path / "c.tif").exists()


def test_non_overlapping_truth_raster_is_refused(tmp_path, truth_and_prediction, raster_writer):
    _, p = truth_and_prediction
    from rasterio.transform import from_origin

    far = raster_writer(tmp_path / "far.tif", np.ones((10, 10), np.uint8), ["label"],
                        transform=from_origin(900000, 6000000, 10, 10))
    with pytest.raises(InputError, match="does not overlap"):
        evaluate_prediction(p, far, tmp_path / "c.tif")
    assert not (tmp_path / "c.tif").exists()


def test_confusion_quicklook_png_keeps_small_objects_visible(tmp_path, raster_writer):
    from landslide_mapper.core.metrics.plots import _decimate_codes, plot_confusion_map

    codes = np.full((3000, 1500), 4, np.uint8)
    codes[100, 100] = 3  # a single missed pixel
    codes[2000:2002, 700:702] = 2
    path = raster_writer(tmp_path / "c.tif", codes, ["confusion"], nodata=0)
    small = _decimate_codes(path, 600)
    assert small.shape == (600, 300)
    assert (small == 3).sum() == 1 and (small == 2).sum() >= 1
    png = plot_confusion_map(path, tmp_path / "c.png", {"precision": 0.5, "recall": None, "f1": 0.1, "mcc": 0.0,
                                                          "iou": 0.2, "tp": 1, "fp": 2, "fn": 3, "tn": 4})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
