"""ArcGIS Pro "Classified Tiles": our writer, the reader, a round trip, and a genuine ArcGIS export."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from landslide_mapper.core.chips import (BandStatistics, LabelOptions, Sampling, SplitOptions, export_chips,
                                         load_chips)
from landslide_mapper.common.errors import InputError

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "arcgis_classified_tiles_s2"
BANDS = ["pre_VV", "post_VV", "dNDVI"]


@pytest.fixture
def scene(tmp_path, raster_writer):
    rng = np.random.default_rng(2)
    data = rng.normal(size=(3, 192, 256)).astype(np.float32)
    data[:, 150:, :40] = np.nan
    labels = np.zeros((192, 256), np.uint8)
    for r, c in [(20, 30), (100, 200), (160, 120), (60, 150), (10, 220)]:
        labels[r:r + 10, c:c + 9] = 1
        labels[r + 10:r + 14, c:c + 3] = 2  # a second class beside each landslide
    stack = raster_writer(tmp_path / "stack.tif", data, BANDS, nodata=np.nan)
    return stack, raster_writer(tmp_path / "labels.tif", labels, ["label"]), tmp_path


def _same(a, b):
    assert a.bands == b.bands and a.stats == b.stats and list(a.splits) == list(b.splits)
    assert np.array_equal(a.images, b.images, equal_nan=True) and np.array_equal(a.labels, b.labels)


def test_round_trip_through_classified_tiles_reads_back_identical(scene):
    stack, lab, tmp = scene
    kw = dict(tile_size=32, sampling=Sampling(stride=32), splits=SplitOptions(block=64, validation_fraction=0.3),
              labels=LabelOptions(landslide_classes="1"))
    native = export_chips(stack, lab, tmp / "native", **kw)
    arcgis = export_chips(stack, lab, tmp / "arcgis", layout="arcgis", **kw)
    assert native.counts == arcgis.counts
    _same(load_chips(tmp / "native"), load_chips(tmp / "arcgis"))

    folder = tmp / "arcgis"
    n = sum(c["chips"] for c in arcgis.counts.values())
    lines = (folder / "map.txt").read_text().splitlines()
    assert len(lines) == n and lines[0] == "images\\000000000000.tif labels\\000000000000.tif"
    emd = json.loads((folder / "esri_model_definition.emd").read_text())
    assert emd["MetaDataMode"] == "Classified_Tiles" and emd["ImageHeight"] == 32
    assert [(c["Value"], c["Name"]) for c in emd["Classes"]] == [(1, "1"), (2, "2")]
    assert emd["InputRastersProps"]["BandNames"] == BANDS
    assert emd["MinCellSize"]["spatialReference"]["wkid"] == 32632
    assert '"ImageHeight" : 32' in (folder / "esri_model_definition.emd").read_text()  # ArcGIS's JSON layout
    acc = json.loads((folder / "esri_accumulated_stats.json").read_text())
    parts = {1: 0, 2: 0}  # ArcGIS counts features per tile: a blob cut by a tile edge counts in each tile
    for tile in sorted((folder / "labels").glob("*.tif")):
        with rasterio.open(tile) as src:
            codes = src.read(1)
        for value in parts:
            parts[value] += ndimage.label(codes == value)[1]
    assert acc["NumTiles"] == n and acc["FeatureStats"]["NumFeaturesPerClass"] == [parts[1], parts[2]]
    assert (folder / "stats.txt").read_text().startswith(f"images = {n} *3*32*32\n\nClass feature statistics:")
    with rasterio.open(folder / "labels" / "000000000003.tif") as src:
        assert src.dtypes[0] == "uint16" and src.nodata is None
        a, e, x, y = src.transform.a, src.transform.e, src.transform.c, src.transform.f
    world = [float(v) for v in (folder / "labels" / "000000000003.tfw").read_text().split()]
    assert world == pytest.approx([a, 0, 0, e, x + a / 2, y + e / 2])  # world files give pixel centres
    assert "Thematic" in (folder / "labels" / "000000000003.tif.aux.xml").read_text()


def test_an_arcgis_only_folder_gets_band_names_stats_and_a_blocked_split(scene):
    stack, lab, tmp = scene
    export_chips(
        stack,
        lab,
        tmp / "a",
        tile_size=32,
        layout="arcgis",
        sampling=Sampling(stride=16),
        splits=SplitOptions(validation_fraction=0.3),
    )
    for ours in ("chips.json", "stats.json", "index.csv", "preview.png"):
        (tmp / "a" / ours).unlink()
    with pytest.raises(InputError, match=r"2 classes \(1 '1', 2 '2'\); say which are landslides"):
        load_chips(tmp / "a")
    chips = load_chips(tmp / "a", landslide_classes="1", validation_fraction=0.3)
    assert chips.bands == BANDS and {s["name"] for s in chips.stats} == set(BANDS)
    assert {"train", "validation"} <= set(chips.splits)
    with rasterio.open(tmp / "a" / "images" / "000000000000.tif") as src:
        transform = src.transform
    origins = {}
    for i, image in enumerate(sorted((tmp / "a" / "images").glob("*.tif"))):
        with rasterio.open(image) as src:
            origins[i] = ~transform * (src.transform.c, src.transform.f)
    cover = {s: np.zeros((400, 400), bool) for s in ("train", "validation")}
    for i, split in enumerate(chips.splits):
        if split in cover:
            c, r = (int(round(v)) + 100 for v in origins[i])
            cover[split][r:r + 32, c:c + 32] = True
    assert not (cover["train"] & cover["validation"]).any()
    train = chips.images[chips.splits == "train"]
    reference = BandStatistics(BANDS)
    for image in train:
        reference.update(image)
    assert [s["mean"] for s in chips.stats] == pytest.approx([s["mean"] for s in reference.result()])


@pytest.mark.real_data
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real ArcGIS export not present at {REAL}")
def test_real_arcgis_pro_export_reads_with_its_counts_and_statistics():
    before = sorted((p.name, p.stat().st_mtime) for p in REAL.rglob("*"))
    chips = load_chips(REAL, landslide_classes="2")
    assert chips.images.shape == (100, 4, 256, 256) and chips.images.dtype == np.float32
    assert chips.bands == ["B1", "B2", "B3", "B4"]  # the export's band names are empty
    rows = [line.split() for line in (REAL / "stats.txt").read_text().splitlines()[7:] if line.strip()]
    stated = {int(r[1]): int(r[2]) for r in rows}  # class value -> images holding it
    assert stated == {1: 100, 2: 56}
    assert int(((chips.labels == 1).reshape(100, -1).any(axis=1)).sum()) == stated[2]
    class1 = load_chips(REAL, landslide_classes="1")
    # One image's only class-1 feature is smaller than a pixel (FeatureAreaPerClass min 6.8e-9 deg² < one 8.1e-9
    # deg² cell), so 99 of the 100 images stated hold class-1 pixels.
    assert int(((class1.labels == 1).reshape(100, -1).any(axis=1)).sum()) == stated[1] - 1
    emd = json.loads((REAL / "esri_model_definition.emd").read_text())
    accumulated = json.loads((REAL / "esri_accumulated_stats.json").read_text())
    everything = BandStatistics(chips.bands)
    for image in chips.images:
        everything.update(image)  # NaN = the all-zero NoData cells ArcGIS leaves out of its statistics
    for ours, theirs, state in zip(everything.result(), emd["AllTilesStats"], accumulated["BandStatsState"]):
        assert ours["count"] == state["Num"] == 3521334
        assert ours["mean"] == pytest.approx(theirs["Mean"], rel=1e-8)
        n = ours["count"]  # ArcGIS reports the sample standard deviation (n − 1), and M2 = Σ (x − mean)²
        assert ours["std"] * (n / (n - 1)) ** 0.5 == pytest.approx(theirs["StdDev"], rel=1e-9)
        assert ours["std"] ** 2 * n == pytest.approx(state["M2"], rel=1e-8)
        assert (ours["min"], ours["max"]) == (theirs["Min"], theirs["Max"])
    assert sorted((p.name, p.stat().st_mtime) for p in REAL.rglob("*")) == before  # read-only use


def test_broken_classified_tiles_folders_are_refused_by_name(scene):
    stack, lab, tmp = scene
    export_chips(
        stack,
        lab,
        tmp / "a",
        tile_size=32,
        layout="arcgis",
        sampling=Sampling(stride=32),
        splits=SplitOptions(validation_fraction=0.3),
    )
    for name in ("missing", "size", "mode"):
        shutil.copytree(tmp / "a", tmp / name)
    (tmp / "missing" / "labels" / "000000000004.tif").unlink()
    with pytest.raises(InputError, match=r"labels/000000000004.tif' in map.txt, but that tile is missing"):
        load_chips(tmp / "missing", landslide_classes="1")
    with rasterio.open(tmp / "size" / "images" / "000000000002.tif", "w", driver="GTiff", width=31, height=32,
                       count=3, dtype="float32", crs="EPSG:32632",
                       transform=rasterio.Affine(10, 0, 0, 0, -10, 0)) as dst:
        dst.write(np.zeros((3, 32, 31), np.float32))
    with pytest.raises(InputError, match=r"Image tile 'images/000000000002.tif' is 3×32×31; .* 3×32×32"):
        load_chips(tmp / "size", landslide_classes="1")
    (tmp / "mode" / "chips.json").unlink()
    emd = json.loads((tmp / "mode" / "esri_model_definition.emd").read_text())
    emd["MetaDataMode"] = "PASCAL_VOC_rectangles"
    (tmp / "mode" / "esri_model_definition.emd").write_text(json.dumps(emd))
    with pytest.raises(InputError, match="'PASCAL_VOC_rectangles' export; only 'Classified_Tiles'"):
        load_chips(tmp / "mode", landslide_classes="1")
    with pytest.raises(InputError, match="has no class '7'"):
        load_chips(tmp / "a", landslide_classes="7")


@pytest.mark.real_data
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real ArcGIS export not present at {REAL}")
def test_our_classified_tiles_are_laid_out_like_arcgis_pro_writes_them(scene):
    from landslide_mapper.core.chips.tile_writer import world_file_text

    stack, lab, tmp = scene
    export_chips(stack, lab, tmp / "a", tile_size=32, layout="arcgis", sampling=Sampling(stride=32))
    ours, real = tmp / "a", REAL
    for name in ("esri_model_definition.emd", "esri_accumulated_stats.json"):
        mine, theirs = (json.loads((f / name).read_text()) for f in (ours, real))
        assert list(mine) == list(theirs), name  # same keys, same order
    assert list(mine["FeatureStats"]) == list(theirs["FeatureStats"])
    assert (ours / "stats.txt").read_text().splitlines()[6] == (real / "stats.txt").read_text().splitlines()[6]
    assert (ours / "labels" / "000000000000.tif.aux.xml").read_bytes() == \
        (real / "labels" / "000000000000.tif.aux.xml").read_bytes()
    with rasterio.open(real / "images" / "000000000007.tif") as src:  # our world-file writer on their tile
        t = src.transform
    assert world_file_text((t.c, t.f), (t.a, -t.e)) == (real / "images" / "000000000007.tfw").read_text()
    line = (ours / "map.txt").read_text().splitlines()[0]
    assert line.replace("0", "1") == (real / "map.txt").read_text().splitlines()[0].replace("0", "1")


def _set_descriptions(folder: Path, names_for) -> None:
    """Rewrite the band descriptions of every image tile (names_for(k) → names of tile k, or None to clear)."""
    for k, tile in enumerate(sorted((folder / "images").glob("*.tif"))):
        with rasterio.open(tile, "r+") as dst:
            names = names_for(k)
            for b in range(1, dst.count + 1):
                dst.set_band_description(b, names[b - 1] if names else "")


def _emd_band_names(folder: Path, names) -> None:
    path = folder / "esri_model_definition.emd"
    emd = json.loads(path.read_text())
    emd["InputRastersProps"]["BandNames"] = names
    path.write_text(json.dumps(emd))


def _arcgis_only(scene, name: str) -> Path:
    """Our Classified Tiles export stripped of our own side files, as ArcGIS Pro would leave the folder."""
    stack, lab, tmp = scene
    export_chips(
        stack,
        lab,
        tmp / name,
        tile_size=32,
        layout="arcgis",
        sampling=Sampling(stride=32),
        splits=SplitOptions(validation_fraction=0.3),
    )
    for ours in ("chips.json", "stats.json", "index.csv", "preview.png"):
        (tmp / name / ours).unlink()
    return tmp / name


def test_classified_tiles_written_carry_band_descriptions_in_tiles_and_emd(scene):
    folder = _arcgis_only(scene, "a")
    tiles = sorted((folder / "images").glob("*.tif"))
    assert tiles
    for tile in tiles:
        with rasterio.open(tile) as src:
            assert list(src.descriptions) == BANDS, tile.name
    emd = json.loads((folder / "esri_model_definition.emd").read_text())
    assert emd["InputRastersProps"]["BandNames"] == BANDS
    assert load_chips(folder, landslide_classes="1").bands == BANDS


def test_tile_descriptions_win_over_blank_or_other_emd_names(scene):
    folder = _arcgis_only(scene, "a")
    _emd_band_names(folder, ["", "", ""])  # ArcGIS Pro leaves them blank (see the real export)
    _set_descriptions(folder, lambda k: ["B04", "B03", "B02"])
    assert load_chips(folder, landslide_classes="1").bands == ["B04", "B03", "B02"]
    _emd_band_names(folder, ["Red", "Green", "Blue"])
    assert load_chips(folder, landslide_classes="1").bands == ["B04", "B03", "B02"]


def test_inconsistent_or_missing_tile_descriptions_fall_back_to_emd_then_numbers(scene):
    folder = _arcgis_only(scene, "a")
    _set_descriptions(folder, lambda k: ["B04", "B03", "B02"] if k % 2 else ["B04", "B03", "B8A"])  # disagree
    _emd_band_names(folder, ["Red", "Green", "Blue"])
    assert load_chips(folder, landslide_classes="1").bands == ["Red", "Green", "Blue"]
    _set_descriptions(folder, lambda k: ["B04", "B04", "B02"])  # the same everywhere, but not distinct
    assert load_chips(folder, landslide_classes="1").bands == ["Red", "Green", "Blue"]
    _set_descriptions(folder, lambda k: None)
    assert load_chips(folder, landslide_classes="1").bands == ["Red", "Green", "Blue"]
    _emd_band_names(folder, ["Red", "", "Blue"])  # incomplete
    assert load_chips(folder, landslide_classes="1").bands == ["B1", "B2", "B3"]
    _emd_band_names(folder, ["Red", "Green"])  # wrong count
    assert load_chips(folder, landslide_classes="1").bands == ["B1", "B2", "B3"]
