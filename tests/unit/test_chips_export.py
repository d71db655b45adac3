"""export_chips: sampling modes, blocked and region splits, labelled region, class tables, statistics, preview."""
import csv
import json

import numpy as np
import pytest
import rasterio
from osgeo import ogr, osr
from rasterio.transform import from_origin

from landslide_mapper.core.chips import LabelOptions, Sampling, SplitOptions, export_chips, load_chips
from landslide_mapper.common.errors import InputError

BANDS = ["pre_VV", "post_VV", "dNDVI"]
H, W = 256, 320
ORIGIN = (400000, 6800000)  # 10 m pixels, EPSG:32632
BLOBS = [(20, 30), (100, 200), (180, 120), (60, 280), (230, 250), (140, 40), (30, 150), (200, 300)]


@pytest.fixture
def scene(tmp_path, raster_writer):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, H, W)).astype(np.float32)
    data[2] += 100.0
    data[:, 200:256, 0:64] = np.nan  # a nodata corner
    labels = np.zeros((H, W), np.uint8)
    for r, c in BLOBS:
        labels[r:r + 12, c:c + 8] = 1
    stack = raster_writer(tmp_path / "stack.tif", data, BANDS, nodata=np.nan)
    lab = raster_writer(tmp_path / "labels.tif", labels, ["label"])
    return stack, lab, data, labels, tmp_path


def _index(folder):
    with open(folder / "index.csv") as f:
        return list(csv.DictReader(f))


def _ring(r, c, h, w):
    """A pixel rectangle of the scene as a map-coordinate ring."""
    x0, y0 = ORIGIN[0] + c * 10, ORIGIN[1] - r * 10
    return [(x0, y0), (x0 + w * 10, y0), (x0 + w * 10, y0 - h * 10), (x0, y0 - h * 10), (x0, y0)]


def _write_layer(path, features, epsg=32632, layer="labels"):
    """GeoPackage of (ring, {field: value}) features; field types follow the first feature's values."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer(layer, srs, ogr.wkbPolygon)
    for name, value in (features[0][1].items() if features else []):
        lyr.CreateField(ogr.FieldDefn(name, ogr.OFTString if isinstance(value, str) else ogr.OFTInteger))
    for ring, attrs in features:
        f = ogr.Feature(lyr.GetLayerDefn())
        for name, value in attrs.items():
            f.SetField(name, value)
        f.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))"))
        lyr.CreateFeature(f)
    ds = None
    return str(path)


def _cover(rows, size, splits=("train", "validation", "test")):
    cover = {s: np.zeros((H, W), bool) for s in splits}
    for r in rows:
        cover[r["split"]][int(r["row"]):int(r["row"]) + size, int(r["col"]):int(r["col"]) + size] = True
    return cover


def test_grid_sampling_cuts_every_stride_position_except_empty_ones(scene):
    stack, lab, *_, tmp = scene
    export_chips(
        stack,
        lab,
        tmp / "c",
        tile_size=32,
        sampling=Sampling(stride=16, min_valid_fraction=0.0),
        splits=SplitOptions(validation_fraction=0.0),
    )
    got = {(int(r["row"]), int(r["col"])) for r in _index(tmp / "c")}
    rows, cols = range(0, H - 32 + 1, 16), range(0, W - 32 + 1, 16)
    empty = {(r, c) for r in (208, 224) for c in (0, 16, 32)}  # wholly inside the nodata corner: nothing to learn
    assert got == {(r, c) for r in rows for c in cols} - empty


def test_random_sampling_gives_n_distinct_off_grid_chips_reproducibly(scene):
    stack, lab, *_, tmp = scene
    a = export_chips(
        stack,
        lab,
        tmp / "a",
        tile_size=32,
        sampling=Sampling(mode="random", n_chips=40),
        splits=SplitOptions(block=128),
    )
    b = export_chips(
        stack,
        lab,
        tmp / "b",
        tile_size=32,
        sampling=Sampling(mode="random", n_chips=40),
        splits=SplitOptions(block=128),
    )
    rows = _index(tmp / "a")
    positions = {(int(r["row"]), int(r["col"])) for r in rows}
    assert sum(c["chips"] for c in a.counts.values()) == 40 == len(positions)
    assert any(r % 16 or c % 16 for r, c in positions)  # not a grid
    assert rows == _index(tmp / "b") and a.counts == b.counts


def test_positive_biased_sampling_meets_the_share_of_landslide_chips(scene):
    stack, lab, _, labels, tmp = scene
    result = export_chips(
        stack,
        lab,
        tmp / "p",
        tile_size=32,
        sampling=Sampling(mode="positive", n_chips=30, positive_fraction=0.7, min_positive_pixels=20),
        splits=SplitOptions(block=128, validation_fraction=0.25),
    )
    rows = _index(tmp / "p")
    assert len(rows) == 30
    counts = [int(labels[int(r["row"]):int(r["row"]) + 32, int(r["col"]):int(r["col"]) + 32].sum()) for r in rows]
    assert sum(c >= 20 for c in counts) >= 21  # 70 % hold ≥ 20 landslide pixels (of 96 per blob)
    assert sum(c["positive_chips"] for c in result.counts.values()) == sum(c >= 20 for c in counts)
    assert sum(c["positive_pixels"] for c in result.counts.values()) == sum(counts)


def test_blocked_split_in_map_units_with_test_split_shares_no_pixel(scene):
    stack, lab, _, labels, tmp = scene
    result = export_chips(
        stack,
        lab,
        tmp / "c",
        tile_size=32,
        seed=4,
        sampling=Sampling(stride=16),
        splits=SplitOptions(block_size=640.0, validation_fraction=0.25, test_fraction=0.25),
    )
    rows = _index(tmp / "c")
    cover = _cover(rows, 32)
    assert all(cover[s].any() for s in cover)
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not (cover[a] & cover[b]).any()
    manifest = json.loads((tmp / "c" / "chips.json").read_text())
    assert manifest["split"]["block_px"] == [64, 64] and manifest["counts"] == result.counts
    for split in ("train", "validation", "test"):  # reported counts are the chips' own
        mine = [r for r in rows if r["split"] == split]
        pos = sum(int(labels[int(r["row"]):int(r["row"]) + 32, int(r["col"]):int(r["col"]) + 32].sum()) for r in mine)
        assert result.counts[split]["chips"] == len(mine) and result.counts[split]["positive_pixels"] == pos


def test_split_regions_fix_each_chips_split(scene):
    stack, lab, *_, tmp = scene
    regions = _write_layer(tmp / "regions.gpkg", [(_ring(0, 0, H, 160), {"split": "train"}),
                                                  (_ring(0, 160, H, 160), {"split": "validation"})])
    export_chips(
        stack,
        lab,
        tmp / "c",
        tile_size=32,
        sampling=Sampling(stride=16),
        splits=SplitOptions(regions_path=regions),
    )
    rows = _index(tmp / "c")
    assert {r["split"] for r in rows} == {"train", "validation"}
    for r in rows:
        c = int(r["col"])
        assert (r["split"] == "train" and c + 32 <= 160) or (r["split"] == "validation" and c >= 160)


def test_outside_the_labelled_region_is_unknown_not_background(scene):
    stack, lab, *_, tmp = scene
    region = _write_layer(tmp / "aoi.gpkg", [(_ring(0, 0, H, 100), {"name": "mapped"})])
    export_chips(
        stack,
        lab,
        tmp / "c",
        tile_size=32,
        sampling=Sampling(stride=32, min_valid_fraction=0.1),
        splits=SplitOptions(validation_fraction=0.0),
    )
    export_chips(
        stack,
        lab,
        tmp / "r",
        tile_size=32,
        sampling=Sampling(stride=32, min_valid_fraction=0.1),
        splits=SplitOptions(validation_fraction=0.0),
        labels=LabelOptions(region_path=region),
    )
    rows = _index(tmp / "r")
    assert rows and all(int(r["col"]) < 100 for r in rows) and len(rows) < len(_index(tmp / "c"))
    for r in rows:
        with rasterio.open(tmp / "r" / "labels" / f"{r['id']}.tif") as src:
            chip = src.read(1)
        outside = np.arange(int(r["col"]), int(r["col"]) + 32) >= 100
        assert (chip[:, outside] == 255).all() and (chip[:, ~outside] != 255).any()


def test_text_classes_in_another_crs_become_a_class_table(scene):
    stack, lab, _, labels, tmp = scene
    from pyproj import Transformer

    to_wgs = Transformer.from_crs(32632, 4326, always_xy=True)
    kinds = ["debris flow", "rockfall", "scarp", "debris flow", "rockfall", "scarp", "debris flow", "rockfall"]
    feats = [([to_wgs.transform(x, y) for x, y in _ring(r, c, 12, 8)], {"type": k}) for (r, c), k in zip(BLOBS, kinds)]
    vec = _write_layer(tmp / "kinds.gpkg", feats, epsg=4326)
    with pytest.raises(InputError, match="no class 'slump'.*1 'debris flow', 2 'rockfall', 3 'scarp'"):
        export_chips(
            stack,
            vec,
            tmp / "x",
            tile_size=32,
            labels=LabelOptions(class_field="type", landslide_classes="slump"),
        )
    export_chips(
        stack,
        vec,
        tmp / "c",
        tile_size=32,
        sampling=Sampling(stride=32, min_valid_fraction=0.0),
        splits=SplitOptions(validation_fraction=0.0),
        labels=LabelOptions(class_field="type", landslide_classes="debris flow, rockfall"),
    )
    manifest = json.loads((tmp / "c" / "chips.json").read_text())
    assert [(c["value"], c["name"], c["landslide"]) for c in manifest["classes"]] == \
        [(1, "debris flow", True), (2, "rockfall", True), (3, "scarp", False)]
    chipset = load_chips(tmp / "c")
    expect = np.zeros_like(labels)
    for (r, c), k in zip(BLOBS, kinds):
        expect[r:r + 12, c:c + 8] = {"debris flow": 1, "rockfall": 2, "scarp": 3}[k]
    for i, row in enumerate(_index(tmp / "c")):
        r, c = int(row["row"]), int(row["col"])
        with rasterio.open(tmp / "c" / "labels" / f"{row['id']}.tif") as src:
            codes = src.read(1)
        known = codes != 255
        truth = expect[r:r + 32, c:c + 32]
        # reprojected, not relabelled: the degree polygons land on their pixels (edges may move by one pixel)
        assert (codes[known] == truth[known]).mean() > 0.97
        assert ((chipset.labels[i] == 1) == ((codes == 1) | (codes == 2)))[known].all()
    only_scarps = load_chips(tmp / "c", landslide_classes="3")
    assert only_scarps.labels.max() == 255 and set(np.unique(only_scarps.labels)) <= {0, 1, 255}
    assert (only_scarps.labels == 1).sum() < (chipset.labels == 1).sum()


def test_statistics_are_exact_over_training_chips_without_nodata(scene):
    stack, lab, data, _, tmp = scene
    export_chips(
        stack,
        lab,
        tmp / "c",
        tile_size=32,
        sampling=Sampling(stride=16, min_valid_fraction=0.2),
        splits=SplitOptions(block=64, validation_fraction=0.3),
    )
    pixels = []
    for r in _index(tmp / "c"):
        if r["split"] == "train":
            chip = data[:, int(r["row"]):int(r["row"]) + 32, int(r["col"]):int(r["col"]) + 32].reshape(3, -1)
            pixels.append(chip[:, np.isfinite(chip).all(axis=0)])
    pixels = np.concatenate(pixels, axis=1).astype(np.float64)
    stats = json.loads((tmp / "c" / "stats.json").read_text())["bands"]
    for i, s in enumerate(stats):
        assert s["count"] == pixels.shape[1]
        assert s["mean"] == pytest.approx(pixels[i].mean(), abs=1e-5)
        assert s["std"] == pytest.approx(pixels[i].std(), rel=1e-5)
        assert (s["min"], s["max"]) == (pixels[i].min(), pixels[i].max())
        assert np.percentile(pixels[i], 1) < s["p2"] < np.percentile(pixels[i], 3)


def test_preview_png_shows_chips(scene):
    stack, lab, *_, tmp = scene
    result = export_chips(stack, lab, tmp / "c", tile_size=32, sampling=Sampling(stride=32))
    import matplotlib.image

    assert result.preview == tmp / "c" / "preview.png"
    image = matplotlib.image.imread(result.preview)
    assert image.shape[0] > 100 and image.shape[1] > 300 and image[..., :3].std() > 0.05
    unpreviewed = export_chips(stack, lab, tmp / "n", tile_size=32, preview=False, sampling=Sampling(stride=32))
    assert unpreviewed.preview is None


def test_bad_inputs_are_refused_by_name_and_leave_nothing(scene, raster_writer):
    stack, lab, data, _, tmp = scene
    empty = _write_layer(tmp / "empty.gpkg", [])
    with pytest.raises(InputError, match="empty.gpkg' is empty"):
        export_chips(stack, empty, tmp / "o1", tile_size=32)
    background = _write_layer(tmp / "zero.gpkg", [(_ring(10, 10, 5, 5), {"class": 0})])
    with pytest.raises(InputError, match="no feature with a class above 0"):
        export_chips(stack, background, tmp / "o2", tile_size=32)
    blank = raster_writer(tmp / "blank.tif", np.full((3, H, W), np.nan, np.float32), BANDS, nodata=np.nan)
    with pytest.raises(InputError, match="all nodata"):
        export_chips(blank, lab, tmp / "o3", tile_size=32)
    far = _write_layer(tmp / "far.gpkg", [(_ring(5000, 5000, 10, 10), {"name": "x"})])
    with pytest.raises(InputError, match="Labelled-region layer .*far.gpkg' does not overlap"):
        export_chips(stack, lab, tmp / "o4", tile_size=32, labels=LabelOptions(region_path=far))
    shifted = raster_writer(tmp / "shifted.tif", np.ones((H, W), np.uint8), ["label"],
                            transform=from_origin(900000, 6000000, 10, 10))
    with pytest.raises(InputError, match="does not overlap"):
        export_chips(stack, shifted, tmp / "o5", tile_size=32)
    ds = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(str(tmp / "nocrs.shp"))
    lyr = ds.CreateLayer("nocrs", None, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTInteger))
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetField("class", 1)
    f.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{x} {y}" for x, y in _ring(9, 9, 5, 5)) + "))"))
    lyr.CreateFeature(f)
    ds = None
    with pytest.raises(InputError, match="nocrs.shp' has no coordinate reference system"):
        export_chips(stack, str(tmp / "nocrs.shp"), tmp / "o7", tile_size=32)
    with pytest.raises(InputError, match="pixels or in map units, not both"):
        export_chips(stack, lab, tmp / "o6", tile_size=32, splits=SplitOptions(block=64, block_size=640.0))
    assert not any(p.name.startswith(("o", ".o")) for p in tmp.iterdir())


def test_cancel_mid_export_leaves_nothing(scene):
    from landslide_mapper.common.errors import Canceled
    from landslide_mapper.common.progress import NullProgress

    class CancelLater(NullProgress):
        calls = 0

        def is_canceled(self):
            self.calls += 1
            return self.calls > 4  # after the label survey, while chips are being written

    stack, lab, *_, tmp = scene
    with pytest.raises(Canceled):
        export_chips(stack, lab, tmp / "c", tile_size=32, progress=CancelLater(), sampling=Sampling(stride=16))
    assert not any(p.name.startswith((".c", "c")) for p in tmp.iterdir())


def test_a_failed_chip_write_stops_the_export_and_leaves_nothing(scene, monkeypatch):
    from landslide_mapper.core import chips

    original = chips.NativeLayout.write_chip

    def flaky(self, k, *args):
        if k == 5:
            raise OSError(28, "No space left on device")
        return original(self, k, *args)

    monkeypatch.setattr(chips.NativeLayout, "write_chip", flaky)
    stack, lab, *_, tmp = scene
    with pytest.raises(InputError, match=r"Not enough space .* to write '.*c'; nothing was written"):
        export_chips(stack, lab, tmp / "c", tile_size=32, sampling=Sampling(stride=16))
    assert not any(p.name.startswith((".c", "c")) for p in tmp.iterdir())
