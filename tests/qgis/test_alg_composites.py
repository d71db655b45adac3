"""s2_composite, s1_composite, terrain and change_stack through processing.run, as a user's script calls them."""
from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from support import write_raster, write_safe

S2 = ["B02", "B03", "B04", "B08", "SCL"]


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


def _date(path, blue, nir, scl=4):
    bands = [np.full((16, 16), v, np.uint16) for v in (blue, 500, 1000, nir)] + [np.full((16, 16), scl, np.uint16)]
    return write_raster(path, np.stack(bands), S2, nodata=0)


def _bands(path):
    with rasterio.open(path) as src:
        return {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}


def test_s2_composite_greenest_over_geotiffs_and_a_zipped_safe(landslide_provider, tmp_path):
    a = _date(tmp_path / "a.tif", 100, 3000)   # NDVI 0.5
    b = _date(tmp_path / "b.tif", 200, 9000)   # NDVI 0.8, the greenest
    c = _date(tmp_path / "c.tif", 300, 19000, scl=9)  # NDVI 0.9 but cloudy
    safe = write_safe(tmp_path, {"B02": np.full((16, 16), 400, np.uint16), "B03": np.full((16, 16), 500, np.uint16),
                                 "B04": np.full((16, 16), 1000, np.uint16), "B08": np.full((16, 16), 4000, np.uint16)},
                      crs="EPSG:32632", zip_it=True)  # NDVI 0.6
    out = run("s2_composite", {"INPUT": [a, b, c, safe], "METHOD": 0, "OUTPUT": str(tmp_path / "g.tif"),
                               "EXTENT": "400000,400080,6799920,6800000 [EPSG:32632]"})["OUTPUT"]
    bands = _bands(out)
    assert list(bands) == ["B02", "B03", "B04", "B08", "NDVI", "clear_count"]
    assert bands["B02"].shape == (8, 8)
    assert np.all(bands["B02"] == 200) and np.allclose(bands["NDVI"], 0.8) and np.all(bands["clear_count"] == 3)
    median = _bands(run("s2_composite", {"INPUT": [a, b, c, safe], "METHOD": 1,
                                         "OUTPUT": str(tmp_path / "m.tif")})["OUTPUT"])
    assert np.all(median["B02"] == 200)  # median of 100, 200, 400 (c is cloudy)


def test_s2_composite_bad_inputs_name_the_file_and_write_nothing(landslide_provider, tmp_path):
    from qgis.core import QgsProcessingException

    cloudy = [_date(tmp_path / f"cloudy{i}.tif", 100, 3000, scl=8) for i in range(2)]
    with pytest.raises(QgsProcessingException, match=r"No clear observation anywhere.*cloudy0\.tif"):
        run("s2_composite", {"INPUT": cloudy, "OUTPUT": str(tmp_path / "x.tif")})
    (tmp_path / "odd.SAFE" / "GRANULE").mkdir(parents=True)
    with pytest.raises(QgsProcessingException, match=r"odd\.SAFE' is not a Sentinel-2 SAFE layout"):
        run("s2_composite", {"INPUT": [str(tmp_path / "odd.SAFE")], "OUTPUT": str(tmp_path / "x.tif")})
    with pytest.raises(QgsProcessingException, match=r"SCL class 12 does not exist"):
        run("s2_composite", {"INPUT": cloudy, "SCL_CLASSES": "3, 12", "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()


def test_s1_composite_per_direction_outputs(landslide_provider, tmp_path):
    def scene(name, vv):
        data = np.stack([np.full((16, 16), vv, np.float32), np.full((16, 16), vv - 7, np.float32)])
        return write_raster(tmp_path / name, data, ["VV", "VH"], nodata=np.nan)

    inputs = [scene("s1_20180801_ASC.tif", -10.0), scene("s1_20180813_ASC.tif", -20.0),
              scene("s1_20180805_DESC.tif", -6.0)]
    result = run("s1_composite", {"INPUT": inputs, "ORBIT": 0, "SPECKLE_FILTER": 3,
                                  "OUTPUT": str(tmp_path / "both.tif"),
                                  "OUTPUT_ASCENDING": str(tmp_path / "asc.tif"),
                                  "OUTPUT_DESCENDING": str(tmp_path / "desc.tif")})
    asc, desc, both = (_bands(result[k]) for k in ("OUTPUT_ASCENDING", "OUTPUT_DESCENDING", "OUTPUT"))
    assert np.allclose(asc["VV"], 10 * math.log10((0.1 + 0.01) / 2), atol=1e-3)  # median in linear power
    assert np.allclose(desc["VH"], -13.0, atol=1e-3)
    assert np.allclose(both["VV"], -10.0, atol=1e-3)  # median of −6, −10, −20 dB


def test_terrain_of_a_plane(landslide_provider, tmp_path):
    rows, cols = np.mgrid[0:20, 0:20]
    dem = write_raster(tmp_path / "dem.tif", (100 + 0.5 * cols * 10).astype(np.float32))  # rises 0.5 m/m east
    out = _bands(run("terrain", {"INPUT": dem, "TPI_RADIUS": 30, "OUTPUT": str(tmp_path / "t.tif")})["OUTPUT"])
    assert np.allclose(out["slope"], math.degrees(math.atan(0.5)), atol=1e-3)
    assert np.allclose(out["aspect"], 270.0, atol=1e-3)


def test_change_stack_all_preset_on_a_reference_grid(landslide_provider, tmp_path):
    from landslide_mapper.core.stack import PRESETS
    from landslide_mapper.processing_provider.alg_change_stack import PRESET_NAMES

    h = w = 12
    s1 = lambda v: np.stack([np.full((h, w), v, np.float32)] * 2)  # noqa: E731
    s2 = lambda nir: np.stack([np.full((h, w), 1000, np.uint16), np.full((h, w), nir, np.uint16)])  # noqa: E731
    pre = [write_raster(tmp_path / "pre_s1.tif", s1(-8.0), ["VV", "VH"]),
           write_raster(tmp_path / "pre_s2.tif", s2(9000), ["B04", "B08"], nodata=0)]
    post = [write_raster(tmp_path / "post_s1.tif", s1(-10.0), ["VV", "VH"]),
            write_raster(tmp_path / "post_s2.tif", s2(3000), ["B04", "B08"], nodata=0)]
    terrain = write_raster(tmp_path / "terrain.tif", np.stack([np.full((4, 4), 300.0, np.float32),
                                                               np.full((4, 4), 25.0, np.float32)]),
                           ["elevation", "slope"], transform=from_origin(400000, 6800000, 30, 30))
    ref = write_raster(tmp_path / "ref.tif", np.zeros((6, 6), np.float32), transform=from_origin(400000, 6800000, 20, 20))
    out = run("change_stack", {"PRE": pre, "POST": post, "TERRAIN": [terrain], "PRESET": PRESET_NAMES.index("all"),
                               "REFERENCE": ref, "OUTPUT": str(tmp_path / "stack.tif")})["OUTPUT"]
    with rasterio.open(out) as src:
        assert list(src.descriptions) == PRESETS["all"] and src.res == (20.0, 20.0) and src.shape == (6, 6)
        bands = {d: src.read(i) for i, d in enumerate(src.descriptions, start=1)}
    assert np.allclose(bands["dVV"], -2.0) and np.allclose(bands["dNDVI"], 0.5 - 0.8, atol=1e-3)
    assert np.allclose(bands["slope"], 25.0)


def test_s2_composite_loads_in_true_colour_with_false_colour_saved(qgis_new_project, tmp_path):
    from qgis.core import QgsRasterLayer

    from landslide_mapper.processing_provider.styles import apply_style

    path = write_raster(tmp_path / "c.tif", np.full((5, 4, 4), 1000, np.float32),
                        ["B03", "B08", "B02", "B04", "NDVI"])
    layer = QgsRasterLayer(path, "composite")
    apply_style(layer, "s2_composite")
    renderer = layer.renderer()
    assert renderer.type() == "multibandcolor"
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (4, 1, 3)  # B04, B03, B02
    assert renderer.redContrastEnhancement().maximumValue() == pytest.approx(3000)
    manager = layer.styleManager()
    assert "false colour (B08, B04, B03)" in manager.styles()
    manager.setCurrentStyle("false colour (B08, B04, B03)")
    renderer = layer.renderer()
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (2, 4, 1)
    assert renderer.redContrastEnhancement().maximumValue() == pytest.approx(5000)
