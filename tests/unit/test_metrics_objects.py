"""Object-level metrics: landslides detected/missed by size class and false objects, joined across strip borders."""
import numpy as np
import pytest
from scipy import ndimage

from landslide_mapper.common.errors import InputError
from landslide_mapper.core.metrics import ObjectRule, ObjectTally, evaluate_prediction, pixel_area_m2

RULE = ObjectRule(size_classes_m2=(1000.0, 5000.0))  # 10 m pixels: < 10 px, 10–49 px, ≥ 50 px


def constructed_case():
    """Five landslides and five mapped objects with known sizes and overlaps (40 × 50 grid, 10 m pixels)."""
    truth = np.zeros((40, 50), np.uint8)
    truth[2:4, 2:5] = 1  # T1: 6 px, small; mapped by one pixel
    truth[10:15, 10:14] = 1  # T2: 20 px, medium; missed
    truth[20:36, 5:7] = 1  # T3: a U of 80 px, large: left arm …
    truth[20:36, 15:17] = 1  # … right arm (mapped) …
    truth[34:36, 7:15] = 1  # … joined only by the bottom bar, 14 rows further down
    truth[5, 30] = truth[6, 31] = 1  # T4: 2 px touching diagonally (one object with 8-, two with 4-connectivity)
    truth[10:12, 40:45] = 1  # T5: 10 px, medium; half mapped
    pred = np.zeros_like(truth)
    pred[2, 2] = 1  # P1 on T1
    pred[20:36, 15:17] = 1  # P2 = T3's right arm (32 of 80 px)
    pred[30:33, 30:34] = 1  # P3: 12 px false object
    pred[0, 45] = 1  # P4: 1 px false object
    pred[11:13, 40:45] = 1  # P5: 10 px, 5 on T5
    return truth, pred


@pytest.fixture
def case(tmp_path, raster_writer):
    truth, pred = constructed_case()
    return (raster_writer(tmp_path / "pred.tif", pred, ["mask"]), raster_writer(tmp_path / "truth.tif", truth,
                                                                                  ["label"]))


@pytest.mark.parametrize("block", [1024, 16, 7])  # one strip; strips of 5 rows; strips of a single row
def test_constructed_case_any_overlap(case, block):
    pred, truth = case
    o = evaluate_prediction(pred, truth, objects=RULE, block=block).objects
    assert (o["landslides"], o["detected"], o["missed"]) == (5, 3, 2)
    assert (o["mapped_objects"], o["correct_objects"], o["false_objects"]) == (5, 3, 2)
    assert o["object_recall"] == pytest.approx(0.6) and o["object_precision"] == pytest.approx(0.6)
    assert o["pixel_area_m2"] == pytest.approx(100.0)
    by_class = [(c["landslides"], c["detected"], c["missed"], c["mapped_objects"], c["false_objects"])
                for c in o["size_classes"]]
    # small: T1 found, T4 missed; P1 right, P4 false. medium: T5 found, T2 missed; P2, P5 right, P3 false. large: T3
    assert by_class == [(2, 1, 1, 2, 1), (2, 1, 1, 3, 1), (1, 1, 0, 0, 0)]
    assert [c["size_class"] for c in o["size_classes"]] == ["< 1,000 m²", "1,000–5,000 m²", "≥ 5,000 m²"]


def test_half_overlap_rule(case):
    pred, truth = case
    o = evaluate_prediction(pred, truth, objects=ObjectRule(0.5, size_classes_m2=(1000.0, 5000.0)), block=16).objects
    # T1 1/6 and T3 32/80 are now missed; T5 5/10 counts. P1, P2, P5 lie ≥ half on landslides.
    assert (o["landslides"], o["detected"], o["false_objects"]) == (5, 1, 2)
    assert [c["detected"] for c in o["size_classes"]] == [0, 1, 0]


def test_four_connectivity_splits_the_diagonal_pair(case):
    pred, truth = case
    o = evaluate_prediction(pred, truth, objects=ObjectRule(connectivity=4, size_classes_m2=(1000.0, 5000.0)),
                            block=16).objects
    assert (o["landslides"], o["detected"], o["missed"]) == (6, 3, 3)


def test_objects_under_nodata_are_not_counted(tmp_path, raster_writer):
    truth, pred = constructed_case()
    pred = pred.astype(np.float32)
    pred[:, 25:] = np.nan  # clouds over T4, T5, P3, P4, P5
    p = raster_writer(tmp_path / "p.tif", pred, ["mask"], nodata=np.nan)
    t = raster_writer(tmp_path / "t.tif", truth, ["label"])
    o = evaluate_prediction(p, t, objects=RULE, is_probability=False, block=16).objects
    assert (o["landslides"], o["detected"], o["mapped_objects"], o["false_objects"]) == (3, 2, 2, 0)


def _reference(mask, other, rule, area):
    """Whole-array labelling: what the strip tally must reproduce."""
    structure = ndimage.generate_binary_structure(2, 2 if rule.connectivity == 8 else 1)
    labels, n = ndimage.label(mask, structure)
    size = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    overlap = np.bincount(labels[other], minlength=n + 1)[1:]
    hit = (overlap > 0) & (overlap >= rule.min_overlap * size)
    cls = np.searchsorted(rule.size_classes_m2, size * area, side="right")
    k = len(rule.size_classes_m2) + 1
    return (np.bincount(cls, minlength=k), np.bincount(cls[hit], minlength=k),
            np.bincount(cls, weights=size, minlength=k))


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("rows", [1, 3, 17])
def test_strip_tally_equals_whole_array_labelling_on_random_maps(connectivity, rows):
    rng = np.random.default_rng(rows + connectivity)
    # Smoothed noise: blobs of many shapes and sizes, plenty of them crossing strip borders.
    field = ndimage.uniform_filter(rng.random((90, 70)), 3)
    mask, other = field > 0.5, ndimage.uniform_filter(rng.random((90, 70)), 3) > 0.55
    rule = ObjectRule(min_overlap=0.3, connectivity=connectivity, size_classes_m2=(300.0, 1500.0))
    tally = ObjectTally(rule, 100.0)
    for r in range(0, 90, rows):
        tally.add(mask[r:r + rows], other[r:r + rows], last=r + rows >= 90)
    tally.finish()
    objects, hits, pixels = _reference(mask, other, rule, 100.0)
    assert objects.sum() > 20
    assert tally.objects.tolist() == objects.tolist()
    assert tally.hits.tolist() == hits.tolist()
    assert tally.pixels.tolist() == pixels.astype(int).tolist()


def test_bad_rules_are_refused(case):
    pred, truth = case
    for rule in (ObjectRule(min_overlap=1.5), ObjectRule(connectivity=6), ObjectRule(size_classes_m2=(500.0, 100.0))):
        with pytest.raises(InputError):
            evaluate_prediction(pred, truth, objects=rule)


def test_pixel_area_in_a_geographic_crs_is_in_square_metres(tmp_path, raster_writer):
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    import rasterio

    path = raster_writer(tmp_path / "g.tif", np.zeros((10, 10), np.uint8), ["mask"], crs="EPSG:4326",
                         transform=from_origin(10.0, 60.0005, 0.0001, 0.0001))
    with rasterio.open(path) as src:
        area = pixel_area_m2(src, Window(0, 0, 10, 10))
    # 0.0001° ≈ 11.12 m north-south and 11.12·cos(60°) ≈ 5.56 m east-west at 60° N
    assert area == pytest.approx(11.119 * 5.559, rel=2e-3)
