"""The geological-mapping thesis's terrain bands (relative relief, TPI3/9, slope sum, valley depth) against
independent numpy references and known answers: ramps, planes, a V valley, a cone, holes, a DEM in degrees, windows."""
import math

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from support import write_raster

from landslide_mapper.common.errors import InputError
from landslide_mapper.core.stack import TERRAIN_BANDS, describe_band
from landslide_mapper.core.terrain import disc_footprint, pixel_metres, staircase, terrain_derivatives

THESIS = ["relative_relief_12", "tpi_3", "tpi_9", "slope_sum", "valley_depth"]


def _bands(path):
    with rasterio.open(path) as src:
        return {d: src.read(i).astype(np.float64) for i, d in enumerate(src.descriptions, start=1)}


def _disc(n):
    """Offsets (di, dj) within n pixels of the centre, centre included."""
    return [(i, j) for i in range(-n, n + 1) for j in range(-n, n + 1) if i * i + j * j <= n * n]


def _brute(z, offsets, reduce):
    """reduce(valid values at the offsets) per pixel, by explicit loops (the reference, not the implementation)."""
    out = np.full(z.shape, np.nan)
    for r in range(z.shape[0]):
        for c in range(z.shape[1]):
            if not np.isfinite(z[r, c]):
                continue
            vals = [z[r + i, c + j] for i, j in offsets
                    if 0 <= r + i < z.shape[0] and 0 <= c + j < z.shape[1] and np.isfinite(z[r + i, c + j])]
            out[r, c] = reduce(np.array(vals), z[r, c]) if vals else np.nan
    return out


@pytest.fixture
def rough_dem(tmp_path):
    """A random 23×31 DEM (10 m pixels) with a nodata hole: every neighbourhood sees edges and holes."""
    rng = np.random.default_rng(7)
    z = rng.normal(100, 8, (23, 31)).astype(np.float32)
    z[9:12, 14:18] = -9999
    return write_raster(tmp_path / "rough.tif", z, nodata=-9999), np.where(z == -9999, np.nan, z).astype(np.float64)


def test_thesis_bands_are_written_with_catalogue_names_and_descriptions(tmp_path):
    dem = write_raster(tmp_path / "dem.tif", np.full((20, 20), 50.0, np.float32))
    out = _bands(terrain_derivatives(dem, tmp_path / "t.tif", tpi_radius=30))
    assert list(out) == TERRAIN_BANDS and TERRAIN_BANDS[-5:] == THESIS
    assert all(describe_band(b) != b for b in TERRAIN_BANDS)
    other = _bands(terrain_derivatives(dem, tmp_path / "t5.tif", tpi_radius=30, relief_pixels=5))
    assert list(other)[6] == "relative_relief_5" and "within 5 pixels" in describe_band("relative_relief_5")


def test_relative_relief_of_a_ramp_and_against_a_brute_force_reference(tmp_path, rough_dem):
    cols = np.mgrid[0:30, 0:50][1]
    dem = write_raster(tmp_path / "ramp.tif", (100 + 0.5 * cols * 10).astype(np.float32))  # 0.5 m/m east
    out = _bands(terrain_derivatives(dem, tmp_path / "t.tif", tpi_radius=30))
    assert np.allclose(out["relative_relief_12"][:, 12:-12], 0.5 * 10 * 24, atol=1e-3)  # 12 px either side
    assert np.allclose(out["relative_relief_12"][:, 0], 0.5 * 10 * 12, atol=1e-3)  # only the east half at the edge
    path, z = rough_dem
    got = _bands(terrain_derivatives(path, tmp_path / "r.tif", tpi_radius=30, relief_pixels=4))["relative_relief_4"]
    want = _brute(z, _disc(4), lambda v, c: v.max() - v.min())
    assert np.allclose(got, want, atol=1e-3, equal_nan=True)


def test_tpi_3_and_9_are_zero_on_a_plane_and_match_a_brute_force_reference(tmp_path, rough_dem):
    rows, cols = np.mgrid[0:40, 0:40]
    dem = write_raster(tmp_path / "plane.tif", (500 + 1.0 * cols - 2.0 * rows).astype(np.float32))
    out = _bands(terrain_derivatives(dem, tmp_path / "t.tif", tpi_radius=30))
    assert np.allclose(out["tpi_3"][3:-3, 3:-3], 0.0, atol=1e-3)
    assert np.allclose(out["tpi_9"][9:-9, 9:-9], 0.0, atol=1e-3)
    path, z = rough_dem
    got = _bands(terrain_derivatives(path, tmp_path / "r.tif", tpi_radius=30))
    for n in (3, 9):
        ring = [o for o in _disc(n) if o != (0, 0)]
        assert np.allclose(got[f"tpi_{n}"], _brute(z, ring, lambda v, c: c - v.mean()), atol=1e-3, equal_nan=True)


def test_tpi_3_of_a_cone_apex_is_the_mean_drop_to_its_neighbours(tmp_path):
    rows, cols = np.mgrid[0:21, 0:21]
    dist = np.hypot(rows - 10, cols - 10) * 10.0  # metres from the apex
    dem = write_raster(tmp_path / "cone.tif", (200 - 0.3 * dist).astype(np.float32))
    out = _bands(terrain_derivatives(dem, tmp_path / "t.tif", tpi_radius=30))
    ring = [o for o in _disc(3) if o != (0, 0)]
    assert out["tpi_3"][10, 10] == pytest.approx(np.mean([0.3 * 10 * math.hypot(i, j) for i, j in ring]), abs=1e-3)
    assert np.nanmax(out["valley_depth"]) == pytest.approx(0.0, abs=1e-3)  # a cone has no valley


def test_slope_sum_of_a_plane_is_its_slope_times_the_12_pixel_disc_everywhere(tmp_path, rough_dem):
    cols = np.mgrid[0:30, 0:35][1]
    dem = write_raster(tmp_path / "ramp.tif", (100 + 0.2 * cols * 10).astype(np.float32))
    out = _bands(terrain_derivatives(dem, tmp_path / "t.tif", tpi_radius=30))
    assert len(_disc(12)) == 441
    assert np.allclose(out["slope_sum"], math.degrees(math.atan(0.2)) * 441, rtol=1e-5)  # edges included
    path, z = rough_dem
    got = _bands(terrain_derivatives(path, tmp_path / "r.tif", tpi_radius=30))
    want = _brute(got["slope"], _disc(12), lambda v, c: v.mean() * 441)
    assert np.allclose(got["slope_sum"], want, rtol=1e-5, equal_nan=True)


def test_valley_depth_of_a_v_valley_is_the_crest_level_minus_elevation(tmp_path):
    cols = np.mgrid[0:25, 0:41][1]
    z = np.minimum(5.0 * np.abs(cols - 20), 50.0)  # floor at col 20, crests at 50 m 10 px either side, then flat
    out = _bands(terrain_derivatives(write_raster(tmp_path / "v.tif", z.astype(np.float32)), tmp_path / "t.tif",
                                     tpi_radius=30, valley_depth_radius=150))  # 15 px > the 10 px half-width
    inner = slice(5, -5)  # within the radius of the DEM's north and south edges the valley may come out shallower
    assert np.allclose(out["valley_depth"][inner], (50.0 - z)[inner], atol=1e-3)
    narrow = _bands(terrain_derivatives(write_raster(tmp_path / "v2.tif", z.astype(np.float32)), tmp_path / "n.tif",
                                        tpi_radius=30, valley_depth_radius=40))  # 4 px: the depth where 8 px wide
    assert narrow["valley_depth"][12, 20] == pytest.approx(5.0 * 4, abs=1e-3)
    plane = write_raster(tmp_path / "p.tif", (0.3 * cols * 10 + 7).astype(np.float32))
    assert np.allclose(_bands(terrain_derivatives(plane, tmp_path / "pt.tif", tpi_radius=30))["valley_depth"], 0.0,
                       atol=1e-3)


def test_wide_valley_depth_discs_are_nested_rectangles_inscribed_in_the_disc(tmp_path):
    small, large = disc_footprint(150, 10, 10), disc_footprint(600, 10, 10)
    assert staircase(small) is small  # 15 px: the disc itself
    steps = staircase(large)
    assert not (steps & ~large).any() and steps.sum() > 0.93 * large.sum() and steps[60].all() and steps[:, 60].all()
    cols = np.mgrid[0:60, 0:121][1]
    z = np.minimum(2.0 * np.abs(cols - 60), 80.0)  # 40 px half-width, crests 80 m: inside a 60 px radius
    out = _bands(terrain_derivatives(write_raster(tmp_path / "v.tif", z.astype(np.float32)), tmp_path / "t.tif",
                                     tpi_radius=30, valley_depth_radius=600, block=16))
    assert np.allclose(out["valley_depth"][20:-20], (80.0 - z)[20:-20], atol=1e-3)


def test_valley_depth_matches_the_closing_definition_by_brute_force(tmp_path, rough_dem):
    """Ridge level = min over the discs that hold the cell (centred anywhere, beyond the DEM's edge and in holes
    too) of the max of the valid elevations in the disc."""
    path, z = rough_dem
    got = _bands(terrain_derivatives(path, tmp_path / "r.tif", tpi_radius=30, valley_depth_radius=30))
    disc, pad = _disc(3), 3
    zp = np.pad(z, pad, constant_values=np.nan)
    dilated = np.full(zp.shape, np.nan)
    for r, c in np.ndindex(zp.shape):  # every cell, valid or not, is a disc centre
        vals = [zp[r + i, c + j] for i, j in disc if 0 <= r + i < zp.shape[0] and 0 <= c + j < zp.shape[1]]
        vals = [v for v in vals if np.isfinite(v)]
        dilated[r, c] = max(vals) if vals else np.nan
    ridge = _brute(dilated, disc, lambda v, c: v.min())[pad:-pad, pad:-pad]
    want = np.where(np.isfinite(z), ridge - z, np.nan)
    assert np.nanmin(want) >= 0 and np.nanmax(want) > 5
    assert np.allclose(got["valley_depth"], want, atol=1e-3, equal_nan=True)


def test_windowed_result_is_exactly_the_whole_array_result(tmp_path, rough_dem):
    path, _ = rough_dem  # 23×31: not a multiple of the 8-pixel windows, with a hole across window edges
    for radius in (60, 200):  # 6 px: a disc; 20 px: nested rectangles
        whole = _bands(terrain_derivatives(path, tmp_path / "a.tif", tpi_radius=40, block=1024,
                                           valley_depth_radius=radius))
        blocks = _bands(terrain_derivatives(path, tmp_path / "b.tif", tpi_radius=40, block=8,
                                            valley_depth_radius=radius))
        for name in THESIS + ["elevation", "slope"]:
            assert np.array_equal(whole[name], blocks[name], equal_nan=True), (name, radius)


def test_geographic_dem_neighbourhoods_and_slopes_are_in_metres(tmp_path):
    """At 60° N a pixel of 0.0003° is 16.7 m east–west and 33.4 m north–south: 12 pixels mean 12 × 33.4 m in
    every direction, so a ramp's relief spans ~24 east–west pixels, and its slope sum is atan(0.1) per pixel."""
    res = 0.0003
    transform = from_origin(10.0, 60.006, res, res)
    h, w = 40, 80
    cols = np.mgrid[0:h, 0:w][1]
    dx, dy = pixel_metres(rasterio.crs.CRS.from_epsg(4326), transform, np.arange(h))
    z = 0.1 * (cols + 0.5) * dx[:, None]  # rises 0.1 m per metre eastwards
    dem = write_raster(tmp_path / "geo.tif", z, crs="EPSG:4326", transform=transform)
    out = _bands(terrain_derivatives(dem, tmp_path / "t.tif", tpi_radius=100))
    dx0, dy0 = dx[h // 2], dy[h // 2]
    reach = 12 * dy0  # metres
    relief = out["relative_relief_12"][12:-12, 30:-30]
    assert np.all(relief <= 0.2 * reach + 1e-3) and np.all(relief > 0.2 * (reach - dx0) - 1e-3)
    assert relief.mean() > 70  # not 0.2 × 12 × 16.7 m = 40 m of a disc counted in east–west pixels
    i, j = np.mgrid[-12:13, -30:31]
    count = int(np.count_nonzero((i * dy0) ** 2 + (j * dx0) ** 2 <= reach ** 2 * (1 + 1e-9)))
    assert np.allclose(out["slope_sum"], math.degrees(math.atan(0.1)) * count, rtol=2e-3)
    assert np.allclose(out["tpi_3"][3:-3, 8:-8], 0.0, atol=1e-3)
    assert np.allclose(out["valley_depth"], 0.0, atol=1e-3)


def test_nodata_is_ignored_and_stays_nodata(tmp_path):
    z = np.full((25, 25), 100.0, np.float32)
    z[10:14, 10:14] = -9999  # a hole that would make a 10099 m relief and valley if read as an elevation
    out = _bands(terrain_derivatives(write_raster(tmp_path / "holed.tif", z, nodata=-9999), tmp_path / "t.tif",
                                     tpi_radius=30))
    hole = z == -9999
    for name in THESIS:
        assert np.isnan(out[name][hole]).all(), name
        assert np.allclose(out[name][~hole], 0.0, atol=1e-3), name


def test_bad_thesis_parameters_are_refused_naming_the_parameter(tmp_path):
    dem = write_raster(tmp_path / "dem.tif", np.full((20, 20), 50.0, np.float32))
    with pytest.raises(InputError, match="RELIEF_PIXELS"):
        terrain_derivatives(dem, tmp_path / "t.tif", relief_pixels=0)
    with pytest.raises(InputError, match=r"VALLEY_DEPTH_RADIUS.*smaller than one pixel"):
        terrain_derivatives(dem, tmp_path / "t.tif", valley_depth_radius=4)
    with pytest.raises(InputError, match="VALLEY_DEPTH_RADIUS"):
        terrain_derivatives(dem, tmp_path / "t.tif", valley_depth_radius=-1)
    assert not (tmp_path / "t.tif").exists()
