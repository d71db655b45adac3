import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_mapper.core import raster
from landslide_mapper.common.errors import InputError


def test_create_raster_sets_band_descriptions_and_renames_on_success(tmp_path):
    with raster.create_raster(tmp_path / "a.tif", width=8, height=6, crs="EPSG:32632",
                              transform=from_origin(0, 60, 10, 10), dtype="float32",
                              descriptions=["pre_VV", "dNDVI"], nodata=np.nan) as dst:
        dst.write(np.ones((2, 6, 8), np.float32))
    with rasterio.open(tmp_path / "a.tif") as src:
        assert src.descriptions == ("pre_VV", "dNDVI")
        assert raster.band_index(src, "dndvi") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]


def test_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with raster.create_raster(tmp_path / "a.tif", width=8, height=6, crs="EPSG:32632",
                                  transform=from_origin(0, 60, 10, 10), dtype="uint8", descriptions=["x"]) as dst:
            dst.write(np.ones((1, 6, 8), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_band_index_error_names_file_and_available_bands(tmp_path, raster_writer):
    path = raster_writer(tmp_path / "s.tif", np.zeros((2, 4, 4), np.uint16), ["B04", "B08"])
    with rasterio.open(path) as src, pytest.raises(InputError, match=r"s\.tif.*no band named 'VV'.*B04, B08"):
        raster.band_index(src, "VV")


def test_read_float_turns_nodata_into_nan(tmp_path, raster_writer):
    path = raster_writer(tmp_path / "s.tif", np.array([[0, 5], [7, 0]], np.uint16), ["B04"], nodata=0)
    with rasterio.open(path) as src:
        out = raster.read_float(src, 1)
    assert np.isnan(out[0, 0]) and out[0, 1] == 5 and np.isnan(out[1, 1])


def test_window_from_extent_snaps_outwards_and_refuses_disjoint(tmp_path, raster_writer):
    path = raster_writer(tmp_path / "s.tif", np.zeros((100, 100), np.uint8), transform=from_origin(0, 1000, 10, 10))
    with rasterio.open(path) as src:
        w = raster.window_from_extent(src, (15, 500, 55, 905))
        assert (w.col_off, w.row_off, w.width, w.height) == (1, 9, 5, 41)
        with pytest.raises(InputError, match="does not overlap"):
            raster.window_from_extent(src, (5000, 5000, 6000, 6000))


def test_aligned_reprojects_a_raster_in_another_crs_onto_the_reference_grid(tmp_path, raster_writer):
    ref = raster_writer(tmp_path / "ref.tif", np.zeros((50, 50), np.float32), transform=from_origin(400000, 6800000, 10, 10))
    # The same area in WGS84 (~60.9°N, 7.2°E), a constant value: warping must keep it, never relabel the CRS.
    with rasterio.open(ref) as r:
        bounds = rasterio.warp.transform_bounds(r.crs, "EPSG:4326", *r.bounds)
    geo = raster_writer(tmp_path / "geo.tif", np.full((60, 60), 7.0, np.float32), crs="EPSG:4326",
                        transform=rasterio.transform.from_bounds(*bounds, 60, 60), nodata=np.nan)
    with rasterio.open(ref) as r, rasterio.open(geo) as g, raster.aligned(g, r) as view:
        assert view.crs == r.crs and view.transform == r.transform
        data = raster.read_float(view, 1)
    assert np.nanmean(data) == pytest.approx(7.0) and np.isfinite(data).mean() > 0.8


def test_block_windows_tile_the_grid_exactly():
    wins = list(raster.block_windows(2500, 1100, 1024))
    assert len(wins) == raster.count_windows(2500, 1100, 1024) == 6
    assert sum(w.width * w.height for w in wins) == 2500 * 1100
