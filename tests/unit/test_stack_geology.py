"""Stacks that are not change stacks: the `terrain` and `s2_terrain` presets built from the terrain algorithm's
output and one Sentinel-2 composite, for bedrock, wetland and ravine models."""
import numpy as np
import pytest
import rasterio

from landslide_mapper.common.errors import InputError
from landslide_mapper.core.stack import PRESETS, build_change_stack, describe_band, resolve_bands
from landslide_mapper.core.terrain import terrain_derivatives

TERRAIN_PRESET = ["elevation", "slope", "relative_relief_12", "tpi_3", "tpi_9", "valley_depth"]


@pytest.fixture
def inputs(tmp_path, raster_writer):
    """A hilly 30×36 DEM, its terrain raster, and a Sentinel-2 composite (NDVI 0.6) on the same 10 m grid."""
    rows, cols = np.mgrid[0:30, 0:36]
    z = (200 + 20 * np.sin(cols / 5.0) + 15 * np.cos(rows / 4.0)).astype(np.float32)
    dem = raster_writer(tmp_path / "dem.tif", z)
    terrain = terrain_derivatives(dem, tmp_path / "terrain.tif", tpi_radius=30, valley_depth_radius=60)
    bands = [np.full((30, 36), v, np.uint16) for v in (300, 500, 1000, 4000)]  # NDVI (4000−1000)/5000 = 0.6
    s2 = raster_writer(tmp_path / "s2.tif", np.stack(bands), ["B02", "B03", "B04", "B08"], nodata=0)
    return dict(terrain=str(terrain), s2=s2, tmp=tmp_path)


def _read(path):
    with rasterio.open(path) as src:
        return list(src.descriptions), {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}


def test_presets_name_the_thesis_bands():
    assert PRESETS["terrain"] == TERRAIN_PRESET
    assert PRESETS["s2_terrain"] == ["post_B02", "post_B03", "post_B04", "post_B08", "post_NDVI"] + TERRAIN_PRESET
    for name in PRESETS["s2_terrain"]:
        assert describe_band(name) != name  # every band is in the catalogue
    assert resolve_bands("relative_relief_5,tpi_3") == ["relative_relief_5", "tpi_3"]
    with pytest.raises(InputError, match="Unknown stack band 'relative_relief_0'"):
        resolve_bands("relative_relief_0")


def test_terrain_preset_stacks_the_terrain_rasters_bands(inputs):
    out = build_change_stack([inputs["terrain"]], [], inputs["tmp"] / "stack.tif", "terrain",
                             terrain=[inputs["terrain"]])
    names, stack = _read(out)
    _, terrain = _read(inputs["terrain"])
    assert names == TERRAIN_PRESET
    for name in names:
        assert np.array_equal(stack[name], terrain[name], equal_nan=True), name
    assert np.nanmax(stack["valley_depth"]) > 1 and np.nanmax(stack["relative_relief_12"]) > 10


def test_s2_terrain_preset_stacks_one_composite_and_the_terrain(inputs):
    out = build_change_stack([inputs["terrain"]], [inputs["s2"]], inputs["tmp"] / "stack.tif", "s2_terrain",
                             terrain=[inputs["terrain"]])
    names, stack = _read(out)
    assert names == PRESETS["s2_terrain"]
    assert np.allclose(stack["post_B08"], 4000) and np.allclose(stack["post_NDVI"], 0.6, atol=1e-6)
    _, terrain = _read(inputs["terrain"])
    assert np.array_equal(stack["tpi_9"], terrain["tpi_9"], equal_nan=True)


def test_terrain_preset_from_an_older_terrain_raster_names_what_is_missing(inputs, raster_writer):
    old = raster_writer(inputs["tmp"] / "old.tif", np.full((2, 30, 36), 5.0, np.float32), ["elevation", "slope"])
    with pytest.raises(InputError, match=r"Band 'relative_relief_12' is needed from the terrain rasters \(old.tif\)"):
        build_change_stack([inputs["s2"]], [], inputs["tmp"] / "stack.tif", "terrain", terrain=[old])
    assert not (inputs["tmp"] / "stack.tif").exists()
