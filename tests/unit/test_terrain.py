"""Terrain derivatives with known answers: planes, a peak, a DEM in degrees, and the real Iburi DSM."""
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from support import write_raster

from landslide_mapper.common.errors import InputError
from landslide_mapper.core.terrain import pixel_metres, terrain_derivatives

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "iburi_2018_s2"


def _bands(path):
    with rasterio.open(path) as src:
        return {d: src.read(i).astype(np.float64) for i, d in enumerate(src.descriptions, start=1)}


@pytest.fixture
def plane(tmp_path):
    """z = 0.1·east + 0.2·north (metres) on a 10 m UTM grid."""
    rows, cols = np.mgrid[0:40, 0:50]
    east, north = (cols + 0.5) * 10.0, -(rows + 0.5) * 10.0
    return write_raster(tmp_path / "plane.tif", (500 + 0.1 * east + 0.2 * north).astype(np.float32), nodata=-9999)


def test_slope_aspect_hillshade_of_a_plane_everywhere_including_edges(plane, tmp_path):
    out = _bands(terrain_derivatives(plane, tmp_path / "t.tif", tpi_radius=30, block=16))
    assert list(out)[:6] == ["elevation", "slope", "aspect", "hillshade", "TPI", "roughness"]
    assert np.allclose(out["slope"], math.degrees(math.atan(math.hypot(0.1, 0.2))), atol=1e-3)
    # downslope points south-west: atan2(−0.1, −0.2) = 206.57° clockwise from north
    assert np.allclose(out["aspect"], math.degrees(math.atan2(-0.1, -0.2)) + 360, atol=1e-3)
    az, alt = math.radians(315), math.radians(45)
    normal = np.array([-0.1, -0.2, 1.0]) / math.sqrt(1.05)
    sun = np.array([math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt)])
    assert np.allclose(out["hillshade"], 255 * normal @ sun, atol=1e-2)
    inner = (slice(4, -4), slice(4, -4))  # where the 30 m disc lies inside the DEM
    assert np.allclose(out["TPI"][inner], 0.0, atol=1e-3)
    assert np.allclose(out["roughness"][1:-1, 1:-1], 2 * (0.1 * 10 + 0.2 * 10), atol=1e-3)


def test_tpi_of_a_peak_and_nodata_propagates(tmp_path):
    z = np.zeros((21, 21), np.float32)
    z[10, 10] = 12.0
    z[0, 0] = -9999
    out = _bands(terrain_derivatives(write_raster(tmp_path / "peak.tif", z, nodata=-9999), tmp_path / "t.tif",
                                     tpi_radius=10))  # 10 m: the 4 edge neighbours at 10 m
    assert out["TPI"][10, 10] == pytest.approx(12.0)
    assert out["TPI"][10, 11] == pytest.approx(-12.0 / 4)
    assert np.isnan(out["slope"][0, 0]) and np.isfinite(out["slope"][0, 1])


def test_windowed_result_equals_single_window(tmp_path):
    rng = np.random.default_rng(3)
    dem = write_raster(tmp_path / "dem.tif", rng.normal(100, 5, (37, 45)).astype(np.float32))
    one = _bands(terrain_derivatives(dem, tmp_path / "a.tif", tpi_radius=40, block=1024))
    many = _bands(terrain_derivatives(dem, tmp_path / "b.tif", tpi_radius=40, block=8))
    for name in one:
        assert np.allclose(one[name], many[name], atol=1e-4), name


def test_geographic_dem_uses_metres_on_the_ellipsoid(tmp_path):
    """A DEM in degrees at 60° N rising 0.1 m per metre eastwards: slope atan(0.1), not 1/cos(60°) steeper."""
    res = 0.0003
    transform = from_origin(10.0, 60.006, res, res)
    rows, cols = np.mgrid[0:40, 0:40]
    dx, _ = pixel_metres(rasterio.crs.CRS.from_epsg(4326), transform, np.arange(40))
    z = 0.1 * (cols + 0.5) * dx[:, None]
    dem = write_raster(tmp_path / "geo.tif", z.astype(np.float64), crs="EPSG:4326", transform=transform)
    out = _bands(terrain_derivatives(dem, tmp_path / "t.tif", tpi_radius=100))
    assert np.allclose(out["slope"][1:-1], math.degrees(math.atan(0.1)), atol=2e-3)
    assert np.allclose(out["aspect"][1:-1], 270.0, atol=0.5)  # rises east, so faces west
    assert dx[20] == pytest.approx(16.75, abs=0.05)  # 0.0003° of longitude at 60° N on WGS 84


def test_bad_parameters_are_refused(plane, tmp_path):
    with pytest.raises(InputError, match="TPI radius .* smaller than one pixel"):
        terrain_derivatives(plane, tmp_path / "t.tif", tpi_radius=4)
    assert not (tmp_path / "t.tif").exists()


@pytest.mark.real_data
def test_iburi_dsm_slope_matches_the_shipped_slope(tmp_path):
    if not (DATA / "dsm.tif").exists():
        pytest.skip(f"real data not found at {DATA}")
    out = _bands(terrain_derivatives(DATA / "dsm.tif", tmp_path / "t.tif", tpi_radius=300))
    with rasterio.open(DATA / "slope.tif") as src:
        reference = src.read(1)
    inner = (slice(2, -2), slice(2, -2))
    ours, theirs = out["slope"][inner], reference[inner]
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.95
    assert np.median(np.abs(ours - theirs)) < 1.5  # degrees-as-if-metres (1/cos 42.7° in x) gives 2.1°
    assert abs(ours.mean() - theirs.mean()) < 1.0


def test_cancel_leaves_no_terrain_output(plane, tmp_path):
    from landslide_mapper.common.errors import Canceled

    class Cancel:
        def set_progress(self, p): pass
        def log(self, m): pass
        def is_canceled(self): return True

    with pytest.raises(Canceled):
        terrain_derivatives(plane, tmp_path / "t.tif", progress=Cancel())
    assert [f.name for f in tmp_path.iterdir()] == ["plane.tif"]  # no output, no temporary file
