import csv
import json

import numpy as np
import pytest
import rasterio
from osgeo import ogr, osr

from landslide_mapper.core.chips import BandStatistics, Sampling, SplitOptions, export_chips, load_chips
from landslide_mapper.common.errors import InputError

BANDS = ["pre_VV", "post_VV", "dNDVI"]


@pytest.fixture
def scene(tmp_path, raster_writer):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, 256, 320)).astype(np.float32)
    data[2, :, :] += 100.0  # a band with a known offset
    data[:, 200:256, 0:64] = np.nan  # nodata corner
    labels = np.zeros((256, 320), np.uint8)
    for r, c in [(20, 30), (100, 200), (180, 120), (60, 280), (230, 250), (140, 40)]:
        labels[r:r + 12, c:c + 8] = 1
    stack = raster_writer(tmp_path / "stack.tif", data, BANDS, nodata=np.nan)
    lab = raster_writer(tmp_path / "labels.tif", labels, ["label"])
    return stack, lab, labels, tmp_path


def _index(folder):
    with open(folder / "index.csv") as f:
        return list(csv.DictReader(f))


def test_blocked_split_never_shares_a_pixel_between_train_and_validation(scene):
    stack, lab, _, tmp = scene
    export_chips(
        stack,
        lab,
        tmp / "chips",
        tile_size=32,
        sampling=Sampling(stride=16),
        splits=SplitOptions(block=64, validation_fraction=0.3),
    )
    rows = _index(tmp / "chips")
    cover = {"train": np.zeros((256, 320), bool), "validation": np.zeros((256, 320), bool)}
    for r in rows:
        cover[r["split"]][int(r["row"]):int(r["row"]) + 32, int(r["col"]):int(r["col"]) + 32] = True
    assert cover["train"].any() and cover["validation"].any()
    assert not (cover["train"] & cover["validation"]).any()


def test_stats_exclude_nodata_and_match_training_pixels(scene):
    stack, lab, _, tmp = scene
    export_chips(
        stack,
        lab,
        tmp / "chips",
        tile_size=32,
        sampling=Sampling(stride=32),
        splits=SplitOptions(validation_fraction=0.0),
    )
    stats = {s["name"]: s for s in json.loads((tmp / "chips" / "stats.json").read_text())["bands"]}
    assert stats["dNDVI"]["mean"] == pytest.approx(100.0, abs=0.05)
    assert stats["dNDVI"]["std"] == pytest.approx(1.0, abs=0.05)
    assert np.isfinite(stats["pre_VV"]["mean"])
    assert stats["dNDVI"]["p2"] < 100 < stats["dNDVI"]["p98"]


def test_chips_carry_labels_georeferencing_and_ignore_nodata(scene):
    stack, lab, labels, tmp = scene
    export_chips(
        stack,
        lab,
        tmp / "chips",
        tile_size=32,
        sampling=Sampling(stride=32, min_valid_fraction=0.0),
        splits=SplitOptions(validation_fraction=0.2),
    )
    rows = _index(tmp / "chips")
    with rasterio.open(stack) as s:
        for r in rows:
            with rasterio.open(tmp / "chips" / "labels" / f"{r['id']}.tif") as c:
                chip = c.read(1)
                assert c.transform == s.window_transform(((int(r["row"]), int(r["row"]) + 32),
                                                          (int(r["col"]), int(r["col"]) + 32)))
            expect = labels[int(r["row"]):int(r["row"]) + 32, int(r["col"]):int(r["col"]) + 32]
            known = chip != 255
            assert (chip[known] == expect[known]).all()
            if int(r["row"]) >= 224 and int(r["col"]) < 64:
                assert (chip == 255).all()  # nodata corner is ignored, not background
    chipset = load_chips(tmp / "chips")
    assert chipset.images.shape == (len(rows), 3, 32, 32)


def _write_polygons(path, rings, field="class", epsg=32632):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn(field, ogr.OFTInteger))
    for ring in rings:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField(field, 1)
        f.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))"))
        lyr.CreateFeature(f)
    ds = None
    return str(path)


def test_polygon_labels_equal_the_raster_labels(scene):
    stack, lab, labels, tmp = scene
    rings = []
    for r, c in [(20, 30), (100, 200), (180, 120), (60, 280), (230, 250), (140, 40)]:
        x0, y0 = 400000 + c * 10, 6800000 - r * 10
        rings.append([(x0, y0), (x0 + 80, y0), (x0 + 80, y0 - 120), (x0, y0 - 120), (x0, y0)])
    vec = _write_polygons(tmp / "labels.gpkg", rings)
    a = export_chips(stack, lab, tmp / "a", tile_size=32, sampling=Sampling(stride=32))
    b = export_chips(stack, vec, tmp / "b", tile_size=32, sampling=Sampling(stride=32))
    assert a.counts == b.counts


def test_bad_inputs_have_clear_errors_and_leave_nothing(scene):
    stack, lab, _, tmp = scene
    vec = _write_polygons(tmp / "l.gpkg", [[(400000, 6800000), (400100, 6800000), (400100, 6799900),
                                            (400000, 6800000)]], field="kind")
    with pytest.raises(InputError, match="no field 'class'.*kind"):
        export_chips(stack, vec, tmp / "o1", tile_size=32)
    far = _write_polygons(tmp / "far.gpkg", [[(900000, 6000000), (900100, 6000000), (900100, 5999900),
                                              (900000, 6000000)]])
    with pytest.raises(InputError, match="falls inside the raster"):
        export_chips(stack, far, tmp / "o2", tile_size=32)
    with pytest.raises(InputError, match="larger than the area"):
        export_chips(stack, lab, tmp / "o3", tile_size=512)
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match="not empty"):
        export_chips(stack, lab, tmp / "mine", tile_size=32)
    assert (tmp / "mine" / "notes.txt").read_text() == "precious"
    assert not any((tmp / n).exists() for n in ("o1", "o2", "o3"))


def test_statistics_of_a_batch_equal_those_of_its_chips_one_by_one():
    """Writers add chips in batches; the result must not depend on how chips were batched (or threaded)."""
    rng = np.random.default_rng(4)
    images = rng.normal(1000, 300, size=(6, 2, 16, 16)).astype(np.float32)
    valid = np.ones((6, 16, 16), bool)
    valid[2, :5] = False  # one chip with nodata takes the per-chip path
    images[2, :, :5] = np.nan
    one_by_one, batched = BandStatistics(["a", "b"]), BandStatistics(["a", "b"])
    train = [0, 2, 3, 5]
    for k, i in enumerate(train):
        one_by_one.add(10 + k, images[i], valid[i])
    batched.add_many([10 + k for k in range(len(train))], images, valid, train)
    assert batched.result() == one_by_one.result()
    pixels = np.concatenate([images[i][:, valid[i]] for i in train], axis=1).astype(np.float64)
    assert [s["mean"] for s in batched.result()] == pytest.approx(pixels.mean(axis=1), rel=1e-8)
    assert [s["count"] for s in batched.result()] == [pixels.shape[1]] * 2
