import numpy as np
import pytest
import rasterio
from osgeo import ogr

from landslide_mapper.core.postprocess import MaskRules, PolygonOptions, open_mask_rules, polygonize_mask


def _features(path):
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    return [(f.GetField("area_m2"), f.GetField("mean_prob"), f.GetField("max_slope"), f.GetGeometryRef().Clone())
            for f in lyr]


@pytest.fixture
def mask_case(tmp_path, raster_writer):
    """Known objects on a 10 m grid: a tall one crossing strip borders, two pieces 1 px apart, a 4-px speck."""
    mask = np.zeros((100, 60), np.uint8)
    mask[5:95, 5:15] = 1  # 90×10 px = 90,000 m², crosses the 32-row strip borders three times
    mask[10:20, 30:40] = 1  # 10,000 m²
    mask[10:20, 41:51] = 1  # 10,000 m², 1 px (10 m) gap to the previous one
    mask[60:62, 40:42] = 1  # 400 m² speck
    mask[80, 50] = 255  # nodata
    prob = np.where(mask == 1, 0.9, 0.1).astype(np.float32)
    slope = np.full((100, 60), 30.0, np.float32)
    slope[60:62, 40:42] = 5.0
    m = raster_writer(tmp_path / "mask.tif", mask, ["landslide"], nodata=255)
    p = raster_writer(tmp_path / "prob.tif", prob, ["landslide_probability"])
    s = raster_writer(tmp_path / "slope.tif", slope, ["slope"])
    return m, p, s, tmp_path


def test_objects_cut_by_strip_borders_become_one_polygon_each(mask_case):
    m, p, s, tmp = mask_case
    n = polygonize_mask(m, tmp / "a.gpkg", p, PolygonOptions(slope_raster=s), block=32)
    feats = _features(tmp / "a.gpkg")
    assert n == len(feats) == 4
    areas = sorted(round(f[0]) for f in feats)
    assert areas == [400, 10000, 10000, 90000]
    assert all(f[1] == pytest.approx(0.9) for f in feats)
    assert sorted(f[2] for f in feats) == [5.0, 30.0, 30.0, 30.0]


def test_min_area_and_buffer_dissolve_give_the_right_counts(mask_case):
    m, p, s, tmp = mask_case
    assert polygonize_mask(m, tmp / "b.gpkg", options=PolygonOptions(min_area_m2=5000), block=32) == 3
    assert polygonize_mask(m, tmp / "c.gpkg", options=PolygonOptions(merge_distance=15), block=32) == 3
    merged = polygonize_mask(m, tmp / "d.gpkg", options=PolygonOptions(merge_distance=15, min_area_m2=5000))
    assert merged == 2
    areas = sorted(f[0] for f in _features(tmp / "d.gpkg"))
    assert areas[0] >= 20000  # the two pieces and the gap between them


def test_mask_rules_veto_flat_water_and_excluded_pixels(tmp_path, raster_writer):
    slope = np.full((20, 20), 30.0, np.float32)
    slope[:, :5] = 3.0
    green = np.full((20, 20), 500, np.uint16)
    nir = np.full((20, 20), 3000, np.uint16)
    green[15:, :] = 800
    nir[15:, :] = 100  # NDWI > 0: water
    excl = np.zeros((20, 20), np.uint8)
    excl[:3, 10:] = 1
    grid = raster_writer(tmp_path / "grid.tif", np.zeros((20, 20), np.float32), ["x"])
    rules = MaskRules(slope_raster=raster_writer(tmp_path / "s.tif", slope, ["slope"]), min_slope=10,
                      water_raster=raster_writer(tmp_path / "w.tif", np.stack([green, nir]), ["B03", "B08"]),
                      exclude=raster_writer(tmp_path / "e.tif", excl, ["zones"]))
    with rasterio.open(grid) as g, open_mask_rules(rules, g) as allowed:
        ok = allowed(rasterio.windows.Window(0, 0, 20, 20))
    assert not ok[:, :5].any() and not ok[15:].any() and not ok[:3, 10:].any()
    assert ok[5:15, 5:].all() and ok[3:15, 5:10].all()


def test_merge_distance_is_in_metres_on_a_geographic_grid(tmp_path, raster_writer):
    from rasterio.transform import from_origin

    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 5:15] = 1
    mask[10:20, 16:26] = 1  # one pixel (~7 m at 42°N) apart
    deg = 0.0000898  # ~10 m of latitude
    path = raster_writer(tmp_path / "geo.tif", mask, ["landslide"], crs="EPSG:4326",
                         transform=from_origin(141.9, 42.7, deg, deg))
    assert polygonize_mask(path, tmp_path / "a.gpkg", options=PolygonOptions(merge_distance=15)) == 1
    assert polygonize_mask(path, tmp_path / "b.gpkg", options=PolygonOptions(merge_distance=3)) == 2
    area = _features(tmp_path / "b.gpkg")[0][0]
    assert 5000 < area < 10000  # 100 px of ~7.4 × 10 m, in m² (equal-area), not degrees²
