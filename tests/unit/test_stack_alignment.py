"""Change stacks on a chosen reference grid: the `all` preset, band names from file names, resampling rules, and the
real Iburi scene (10 m Sentinel-2 composites + terrain from the 30 m DSM in degrees)."""
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from support import write_raster

from landslide_mapper.core.composites import s2_composite
from landslide_mapper.core.stack import PRESETS, build_change_stack, catalogue_name
from landslide_mapper.core.terrain import terrain_derivatives

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "iburi_2018_s2"


def test_catalogue_names_from_descriptions_and_file_names():
    assert catalogue_name("B2") == "B02" and catalogue_name("b8a") == "B8A" and catalogue_name("Sigma0_VV_db") == "VV"
    assert catalogue_name("pre_VV") is None  # descriptions are matched strictly
    assert catalogue_name("s2_B8A", loose=True) == "B8A"
    assert catalogue_name("T33UUP_20190715T102031_B04_10m", loose=True) == "B04"
    assert catalogue_name("iburi_dsm", loose=True) == "elevation"


@pytest.fixture
def event(tmp_path):
    h, w = 12, 16
    coarse = from_origin(400000, 6800000, 30, 30)
    s1 = lambda v: np.stack([np.full((h, w), v, np.float32), np.full((h, w), v - 7, np.float32)])  # noqa: E731
    s2 = lambda ndvi: np.stack([np.full((h, w), 1000, np.uint16),  # noqa: E731
                                np.full((h, w), round(1000 * (1 + ndvi) / (1 - ndvi)), np.uint16)])
    return dict(
        pre=[write_raster(tmp_path / "pre_s1.tif", s1(-8.0), ["VV", "VH"], nodata=np.nan),
             write_raster(tmp_path / "pre_s2.tif", s2(0.8), ["B04", "B08"], nodata=0)],
        post=[write_raster(tmp_path / "post_s1.tif", s1(-11.0), ["VV", "VH"], nodata=np.nan),
              write_raster(tmp_path / "post_s2.tif", s2(0.2), ["B04", "B08"], nodata=0)],
        # terrain on a coarser 30 m grid, slope named only by its file name
        terrain=[write_raster(tmp_path / "slope.tif", np.full((4, 6), 30.0, np.float32), transform=coarse),
                 write_raster(tmp_path / "dem.tif", np.full((4, 6), 250.0, np.float32), transform=coarse)],
        tmp=tmp_path)


def test_all_preset_with_terrain_named_by_file_and_known_changes(event):
    out = build_change_stack(event["pre"], event["post"], event["tmp"] / "all.tif", "all", terrain=event["terrain"])
    with rasterio.open(out) as src:
        assert list(src.descriptions) == PRESETS["all"]
        bands = {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}
        assert src.res == (10.0, 10.0)
    assert np.allclose(bands["dVV"], -3.0) and np.allclose(bands["dVH"], -3.0)
    assert np.allclose(bands["dNDVI"], 0.2 - 0.8, atol=1e-3)
    assert np.allclose(bands["slope"], 30.0) and np.allclose(bands["elevation"], 250.0)


def test_reference_raster_and_resolution_choose_the_output_grid(event, tmp_path):
    ref = write_raster(tmp_path / "ref.tif", np.zeros((3, 4), np.float32), transform=from_origin(400000, 6800000, 40, 40))
    out = build_change_stack(event["pre"], event["post"], tmp_path / "r.tif", "setting2", reference=ref)
    with rasterio.open(out) as src:
        assert src.res == (40.0, 40.0) and src.shape == (3, 4)
        assert np.allclose(src.read(3), -0.6, atol=1e-3)
    out = build_change_stack(event["pre"], event["post"], tmp_path / "r20.tif", "setting3", resolution=20)
    with rasterio.open(out) as src:
        assert src.res == (20.0, 20.0) and src.shape == (6, 8) and np.allclose(src.read(1), -8.0)


def test_aspect_is_resampled_by_nearest_neighbour(tmp_path):
    aspect = np.tile(np.array([350.0, 10.0], np.float32), (4, 3))  # 30 m columns alternating 350°/10°
    terrain = write_raster(tmp_path / "t.tif", aspect, ["aspect"], transform=from_origin(400000, 6800000, 30, 30))
    ref = write_raster(tmp_path / "ref.tif", np.zeros((12, 18), np.float32), ["VV"])
    out = build_change_stack([ref], [], tmp_path / "s.tif", "aspect", terrain=[terrain])
    with rasterio.open(out) as src:
        values = set(np.unique(src.read(1)))
    assert values <= {350.0, 10.0}  # bilinear would invent 180° between north-facing pixels


@pytest.mark.real_data
def test_iburi_composites_and_30m_terrain_stack_on_the_10m_grid(tmp_path):
    if not (DATA / "pre" / "B2.tif").exists():
        pytest.skip(f"real data not found at {DATA}")
    pre = s2_composite([DATA / "pre"], tmp_path / "pre.tif", "median")
    post = s2_composite([DATA / "post"], tmp_path / "post.tif", "median")
    assert pre.bands == ["B02", "B03", "B04", "clear_count"]  # no B08 there, so no NDVI
    terrain = terrain_derivatives(DATA / "dsm.tif", tmp_path / "terrain.tif", tpi_radius=300)
    bands = "pre_B02,pre_B03,pre_B04,post_B02,post_B03,post_B04,dB04,elevation,slope,aspect"
    stack = build_change_stack([pre.path], [post.path], tmp_path / "stack.tif", bands, terrain=[terrain])
    with rasterio.open(stack) as src, rasterio.open(DATA / "pre" / "B2.tif") as b2, \
            rasterio.open(DATA / "dsm.tif") as dsm, rasterio.open(terrain) as ter:
        assert src.crs == b2.crs and src.transform.almost_equals(b2.transform) and src.shape == b2.shape
        out = {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}
        raw = b2.read(1).astype(np.float32)
        valid = np.isfinite(out["pre_B02"])  # nodata where any of B2–B4 is 0
        assert np.array_equal(out["pre_B02"][valid], raw[valid])  # 10 m bands unchanged
        assert abs(valid.mean() - (raw > 0).mean()) < 0.01
        # elevation: the 30 m DSM resampled at each 10 m pixel centre (bilinear) ≈ the DSM value there
        rows, cols = np.mgrid[5:src.height - 5:37, 5:src.width - 5:41]
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())
        nearest = np.array([v[0] for v in dsm.sample(zip(xs, ys))], np.float64)
        assert np.median(np.abs(out["elevation"][rows, cols].ravel() - nearest)) < 5.0
        assert set(np.unique(out["aspect"][np.isfinite(out["aspect"])])) <= set(np.unique(ter.read(3)))
    assert 10 < np.nanmean(out["slope"]) < 25  # hilly terrain, in degrees (metres on both axes)
    # fresh landslide scars are bright bare soil after the event: red reflectance jumps there
    change = out["dB04"] - np.nanmedian(out["dB04"])  # the scene got darker overall (season, sun)
    assert np.nanpercentile(change, 99) > 800 and np.nanmean(change > 800) < 0.05
