"""Multi-class scores against a hand-computed confusion matrix, and a class map evaluated end to end."""
import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_mapper.core.metrics.class_evaluation import CLASS_TABLE_TAG, evaluate_class_map
from landslide_mapper.core.metrics.classes import ClassConfusion, ClassInfo, class_scores, format_class_table
from landslide_mapper.core.metrics.scores import Confusion, scores

CLASSES = [ClassInfo(0, "background", "#000000"), ClassInfo(1, "bedrock", "#ff0000"),
           ClassInfo(2, "wetland", "#0000ff")]
# rows truth, columns predicted
MATRIX = np.array([[50, 3, 2],
                   [4, 20, 1],
                   [6, 0, 14]])


def _pixels(matrix):
    truth, pred = [], []
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            truth += [i] * int(n)
            pred += [j] * int(n)
    return np.array(truth, dtype=np.uint8), np.array(pred, dtype=np.uint8)


def test_per_class_scores_match_the_hand_computed_matrix():
    c = ClassConfusion([0, 1, 2])
    truth, pred = _pixels(MATRIX)
    c.add(truth[:40], pred[:40])
    c.add(truth[40:], pred[40:])  # summed over windows
    assert (c.matrix == MATRIX).all()
    s = class_scores(c, CLASSES)
    bedrock = s["classes"][1]
    assert bedrock["name"] == "bedrock" and bedrock["support"] == 25 and bedrock["predicted"] == 23
    assert bedrock["precision"] == pytest.approx(20 / 23)  # column 1: 3 + 20 + 0
    assert bedrock["recall"] == pytest.approx(20 / 25)  # row 1: 4 + 20 + 1
    assert bedrock["f1"] == pytest.approx(40 / 48)  # 2·20 / (2·20 + 3 + 5)
    assert bedrock["iou"] == pytest.approx(20 / 28)
    wetland = s["classes"][2]
    assert (wetland["precision"], wetland["recall"]) == (pytest.approx(14 / 17), pytest.approx(14 / 20))
    recalls = [50 / 55, 20 / 25, 14 / 20]
    precisions = [50 / 60, 20 / 23, 14 / 17]
    f1s = [100 / 115, 40 / 48, 28 / 37]
    assert s["macro_recall"] == pytest.approx(np.mean(recalls))
    assert s["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    assert s["macro_precision"] == pytest.approx(np.mean(precisions))
    assert s["macro_f1"] == pytest.approx(np.mean(f1s))
    assert s["weighted_f1"] == pytest.approx(np.dot(f1s, [55, 25, 20]) / 100)
    assert s["accuracy"] == pytest.approx(84 / 100)
    chance = (55 * 60 + 25 * 23 + 20 * 17) / 100 ** 2
    assert s["kappa"] == pytest.approx((0.84 - chance) / (1 - chance))
    assert "wetland" in format_class_table(s)


def test_class_absent_from_truth_is_left_out_of_the_averages_and_unknown_values_are_refused():
    c = ClassConfusion([0, 1, 2])
    c.add(np.array([0, 0, 1, 255], np.uint8), np.array([0, 2, 1, 7], np.uint8))  # 255 = unknown: left out
    s = class_scores(c)
    assert s["classes"][2]["support"] == 0 and s["classes"][2]["precision"] == 0.0
    assert s["macro_recall"] == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="prediction holds class value 7"):
        c.add(np.array([1], np.uint8), np.array([7], np.uint8))


def test_binary_balanced_accuracy_is_mean_of_recall_and_specificity():
    m = scores(Confusion(tp=40, fp=10, fn=20, tn=930))
    assert m["balanced_accuracy"] == pytest.approx((40 / 60 + 930 / 940) / 2)
    assert scores(Confusion(tn=10))["balanced_accuracy"] == 1.0


def _write(path, data, tags=None, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="uint8", crs="EPSG:32632", transform=from_origin(0, 100, 10, 10), nodata=nodata) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)


def test_class_map_evaluated_against_class_truth_with_report_and_chosen_class_map(tmp_path):
    truth, pred = _pixels(MATRIX)
    truth = truth.reshape(10, 10)
    pred = pred.reshape(10, 10)
    table = json.dumps([{"value": c.value, "name": c.name, "color": c.color} for c in CLASSES])
    _write(tmp_path / "truth.tif", truth, nodata=255)
    _write(tmp_path / "map.tif", pred, tags={CLASS_TABLE_TAG: table})
    ev = evaluate_class_map(tmp_path / "map.tif", tmp_path / "truth.tif", tmp_path / "conf.tif",
                            tmp_path / "report.json", confusion_class="wetland", block=3)
    assert ev.metrics["confusion_matrix"] == MATRIX.tolist()
    assert ev.chosen["tp"] == 14 and ev.chosen["fn"] == 6 and ev.chosen["fp"] == 3
    with rasterio.open(tmp_path / "conf.tif") as src:
        codes = src.read(1)
    assert np.count_nonzero(codes == 1) == 14 and np.count_nonzero(codes == 3) == 6
    for key in ("html", "matrix_png", "classes_csv", "confusion_png"):
        assert ev.files[key].exists()
    assert "bedrock" in ev.files["html"].read_text()
    assert json.loads((tmp_path / "report.json").read_text())["metrics"]["macro_f1"] == \
        pytest.approx(ev.metrics["macro_f1"])


def test_truth_polygons_with_class_names_are_matched_to_the_class_map_by_name(tmp_path):
    from osgeo import ogr, osr

    pred = np.zeros((10, 10), np.uint8)
    pred[:, 5:] = 2  # wetland on the east half; bedrock nowhere
    table = json.dumps([{"value": c.value, "name": c.name, "color": c.color} for c in CLASSES])
    _write(tmp_path / "map.tif", pred, tags={CLASS_TABLE_TAG: table})
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "truth.gpkg"))
    layer = ds.CreateLayer("truth", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    for name, (x0, x1) in (("Wetland", (50, 100)), ("bedrock", (0, 20))):  # case-insensitive names
        feat = ogr.Feature(layer.GetLayerDefn())
        feat.SetField("class", name)
        feat.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x0} 0,{x1} 0,{x1} 100,{x0} 100,{x0} 0))"))
        layer.CreateFeature(feat)
    ds = None
    ev = evaluate_class_map(tmp_path / "map.tif", tmp_path / "truth.gpkg")
    rows = {r["name"]: r for r in ev.metrics["classes"]}
    assert rows["wetland"]["support"] == 50 and rows["wetland"]["recall"] == 1.0
    assert rows["bedrock"]["support"] == 20 and rows["bedrock"]["recall"] == 0.0
    assert rows["background"]["support"] == 30
