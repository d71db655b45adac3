"""terrain's geology bands and the terrain / s2_terrain stacks through processing.run, as a user's script calls them."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from support import write_raster


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


def _bands(path):
    with rasterio.open(path) as src:
        return {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}


def test_terrain_writes_the_thesis_bands_and_the_presets_stack_them(landslide_provider, tmp_path):
    cols = np.mgrid[0:30, 0:41][1]
    z = np.minimum(2.0 * np.abs(cols - 20), 20.0) + 100  # a V valley 20 m deep, floor at column 20
    dem = write_raster(tmp_path / "dem.tif", z.astype(np.float32), nodata=-9999)
    terrain = run("terrain", {"INPUT": dem, "TPI_RADIUS": 30, "RELIEF_PIXELS": 3, "VALLEY_DEPTH_RADIUS": 150,
                              "OUTPUT": str(tmp_path / "terrain.tif")})["OUTPUT"]
    out = _bands(terrain)
    assert list(out)[6:] == ["relative_relief_3", "tpi_3", "tpi_9", "slope_sum", "valley_depth"]
    assert out["relative_relief_3"][15, 20] == pytest.approx(2.0 * 3, abs=1e-3)  # 3 px up either flank
    assert np.allclose(out["valley_depth"][5:-5], (120 - z)[5:-5], atol=1e-3)
    assert out["tpi_3"][15, 20] < 0 and out["tpi_9"][15, 20] < out["tpi_3"][15, 20]  # the floor lies low
    with rasterio.open(terrain) as src:
        assert src.tags()["VALLEY_DEPTH_RADIUS_M"] == "150.0" and src.tags()["RELIEF_PIXELS"] == "3"

    terrain12 = run("terrain", {"INPUT": dem, "OUTPUT": str(tmp_path / "terrain12.tif")})["OUTPUT"]
    stack = run("change_stack", {"PRE": [terrain12], "TERRAIN": [terrain12], "PRESET": "terrain",
                                 "OUTPUT": str(tmp_path / "stack.tif")})["OUTPUT"]
    assert list(_bands(stack)) == ["elevation", "slope", "relative_relief_12", "tpi_3", "tpi_9", "valley_depth"]

    s2 = write_raster(tmp_path / "s2.tif", np.stack([np.full((30, 41), v, np.uint16) for v in (300, 500, 1000, 4000)]),
                      ["B02", "B03", "B04", "B08"], nodata=0)
    stack = run("change_stack", {"PRE": [terrain12], "POST": [s2], "TERRAIN": [terrain12], "PRESET": "s2_terrain",
                                 "OUTPUT": str(tmp_path / "s2_terrain.tif")})["OUTPUT"]
    bands = _bands(stack)
    assert list(bands)[:5] == ["post_B02", "post_B03", "post_B04", "post_B08", "post_NDVI"]
    assert np.allclose(bands["post_NDVI"], 0.6, atol=1e-6) and "valley_depth" in bands


def test_terrain_refuses_a_valley_radius_below_one_pixel(landslide_provider, tmp_path):
    from qgis.core import QgsProcessingException

    dem = write_raster(tmp_path / "dem.tif", np.full((12, 12), 10.0, np.float32))
    with pytest.raises(QgsProcessingException, match="VALLEY_DEPTH_RADIUS"):
        run("terrain", {"INPUT": dem, "VALLEY_DEPTH_RADIUS": 3, "OUTPUT": str(tmp_path / "t.tif")})
    assert not (tmp_path / "t.tif").exists()
