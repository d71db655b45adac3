"""The synthetic event scene: files, grid, reproducibility, truth consistency and the physical signals models learn."""
from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import rasterio.features

from landslide_mapper.core import simulate
from landslide_mapper.common.errors import Canceled, InputError
from landslide_mapper.common.progress import NullProgress

W, H, PS = 320, 288, 10.0
TIFS = ("pre_s2", "post_s2", "pre_s1", "post_s1", "dem", "labels")


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene")
    event = simulate.simulate_event(out, width=W, height=H, seed=7, pixel_size=PS)
    return out, event


@pytest.fixture(scope="module")
def arrays(scene_dir):
    out, _ = scene_dir

    def read(name):
        with rasterio.open(out / f"{name}.tif") as src:
            return src.read()

    pre, post = read("pre_s2").astype(np.float64), read("post_s2").astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi_pre = (pre[3] - pre[2]) / (pre[3] + pre[2])
        ndvi_post = (post[3] - post[2]) / (post[3] + post[2])
    ndvi_pre[pre[0] == 0] = np.nan
    ndvi_post[post[0] == 0] = np.nan
    dem = read("dem")[0].astype(np.float64)
    gy, gx = np.gradient(dem, PS)
    return dict(pre=pre, post=post, ndvi_pre=ndvi_pre, dndvi=ndvi_post - ndvi_pre, s1_pre=read("pre_s1"),
                s1_post=read("post_s1"), dem=dem, slope=np.degrees(np.arctan(np.hypot(gx, gy))),
                labels=read("labels")[0])


def _rasterise_gpkg(path, transform, shape):
    from osgeo import ogr

    ds = ogr.Open(str(path))
    layer = ds.GetLayerByName("landslides")
    shapes = []
    for feat in layer:
        geom = feat.GetGeometryRef()
        ring = geom.GetGeometryRef(0)
        shapes.append(({"type": "Polygon", "coordinates": [ring.GetPoints()]}, 1))
    if not shapes:
        return np.zeros(shape, np.uint8)
    return rasterio.features.rasterize(shapes, out_shape=shape, transform=transform, fill=0, all_touched=False,
                                       dtype="uint8")


def test_writes_all_layers_on_one_grid_with_catalogue_band_names(scene_dir):
    out, event = scene_dir
    expected = {
        "pre_s2": ("uint16", ("B02", "B03", "B04", "B08"), 0),
        "post_s2": ("uint16", ("B02", "B03", "B04", "B08"), 0),
        "pre_s1": ("float32", ("VV", "VH"), None),
        "post_s1": ("float32", ("VV", "VH"), None),
        "dem": ("float32", ("elevation",), None),
        "labels": ("uint8", ("label",), 255),
    }
    assert event.transform == rasterio.Affine(PS, 0, 400000.0, 0, -PS, 6800000.0)
    assert (event.width, event.height, event.crs) == (W, H, "EPSG:32632")
    for name, (dtype, bands, nodata) in expected.items():
        path = getattr(event, {"dem": "dem", "labels": "labels_raster"}.get(name, name))
        assert path == out / f"{name}.tif" and path.exists()
        with rasterio.open(path) as src:
            assert src.dtypes[0] == dtype
            assert src.descriptions == bands
            assert (src.width, src.height) == (W, H)
            assert src.crs.to_epsg() == 32632
            assert src.transform == event.transform
            if nodata is None:
                assert src.nodata is None or math.isnan(src.nodata)
            else:
                assert src.nodata == nodata
            tags = src.tags()
            if name.endswith(("s2", "s1")):
                assert tags["EPOCH"] == name.split("_")[0]
                assert tags["SENSOR"] == name.split("_")[1].upper()
            if name.endswith("s1"):
                assert tags["UNITS"] == "dB"
    assert event.labels_vector == out / "labels.gpkg" and event.labels_vector.exists()
    assert not [p for p in out.iterdir() if ".tmp" in p.name], "temporary files left behind"


def test_polygons_carry_class_and_name_in_scene_crs(scene_dir):
    from osgeo import ogr, osr

    _, event = scene_dir
    ds = ogr.Open(str(event.labels_vector))
    layer = ds.GetLayerByName("landslides")
    assert layer is not None
    assert layer.GetFeatureCount() == event.n_landslides >= 3
    srs = layer.GetSpatialRef()
    expected = osr.SpatialReference()
    expected.ImportFromEPSG(32632)
    assert srs.IsSame(expected)
    for feat in layer:
        assert feat.GetField("class") == 1
        assert feat.GetField("name") == "landslide"
        n_vertices = feat.GetGeometryRef().GetGeometryRef(0).GetPointCount() - 1
        assert 24 <= n_vertices <= 48


def test_label_raster_equals_rasterised_polygons(scene_dir, arrays):
    _, event = scene_dir
    burned = _rasterise_gpkg(event.labels_vector, event.transform, (H, W))
    assert burned.sum() > 0
    np.testing.assert_array_equal(arrays["labels"], burned)
    assert set(np.unique(arrays["labels"])) <= {0, 1}


def test_same_seed_gives_identical_files(scene_dir, tmp_path):
    out, _ = scene_dir
    simulate.simulate_event(tmp_path, width=W, height=H, seed=7, pixel_size=PS)
    for name in [f"{n}.tif" for n in TIFS] + ["labels.gpkg"]:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_different_seed_gives_a_different_scene(arrays, tmp_path):
    other = simulate.simulate_event(tmp_path, width=W, height=H, seed=8, pixel_size=PS)
    with rasterio.open(other.dem) as src:
        assert not np.allclose(src.read(1), arrays["dem"])
    with rasterio.open(other.labels_raster) as src:
        assert not np.array_equal(src.read(1), arrays["labels"])


def test_block_size_does_not_change_the_scene_geometry(arrays, tmp_path):
    event = simulate.simulate_event(tmp_path, width=W, height=H, seed=7, pixel_size=PS, block=64)
    with rasterio.open(event.labels_raster) as src:
        np.testing.assert_array_equal(src.read(1), arrays["labels"])
    with rasterio.open(event.dem) as src:
        np.testing.assert_allclose(src.read(1), arrays["dem"], atol=0.05)
    with rasterio.open(event.post_s2) as src:   # clouds are geometry too
        np.testing.assert_array_equal(src.read(1) == 0, arrays["post"][0] == 0)


def test_dem_has_steep_mountainsides_and_flat_valley_floors(arrays):
    slope = arrays["slope"]
    assert np.percentile(slope, 5) < 3.0
    assert 25.0 < np.percentile(slope, 95) < 55.0
    assert arrays["dem"].max() - arrays["dem"].min() > 300.0


def test_landslides_sit_on_steeper_ground_than_average(arrays):
    scar = arrays["labels"] == 1
    assert arrays["slope"][scar].mean() > arrays["slope"].mean() + 3.0
    assert arrays["slope"][scar].mean() > 20.0


def test_landslides_are_elongated_downslope(scene_dir, arrays):
    from osgeo import ogr

    _, event = scene_dir
    dem = arrays["dem"]
    gy, gx = np.gradient(dem, PS)          # rows run south: north gradient is −gy
    ds = ogr.Open(str(event.labels_vector))   # keep the dataset alive while its layer is used
    layer = ds.GetLayerByName("landslides")
    aligned = []
    for feat in layer:
        pts = np.array(feat.GetGeometryRef().GetGeometryRef(0).GetPoints())[:-1]
        centred = pts - pts.mean(axis=0)
        evals, evecs = np.linalg.eigh(centred.T @ centred)
        axis = evecs[:, -1]                                # long axis, (east, north)
        assert evals[-1] > 2.0 * evals[0]                   # clearly elongated
        cols = ((pts[:, 0] - event.transform.c) / PS).astype(int).clip(0, W - 1)
        rows = ((event.transform.f - pts[:, 1]) / PS).astype(int).clip(0, H - 1)
        down = -np.array([gx[rows, cols].mean(), -gy[rows, cols].mean()])
        aligned.append(abs(axis @ down) / (np.linalg.norm(down) + 1e-9))
    assert np.median(aligned) > 0.8


def test_scars_lose_vegetation_while_ndvi_elsewhere_is_stable(arrays):
    scar = arrays["labels"] == 1
    dndvi = arrays["dndvi"]
    assert np.nanmean(dndvi[scar]) < -0.3
    assert abs(np.nanmean(dndvi[~scar])) < 0.05
    assert 0.6 < np.nanmedian(arrays["ndvi_pre"]) < 0.9
    assert np.nanmin(arrays["ndvi_pre"]) < 0.0        # water


def test_scars_change_radar_backscatter_clearly_more_than_elsewhere(arrays):
    scar = arrays["labels"] == 1
    d_vh = arrays["s1_post"][1] - arrays["s1_pre"][1]
    d_vv = arrays["s1_post"][0] - arrays["s1_pre"][0]
    assert d_vh[scar].mean() < -1.5
    assert abs(d_vh[~scar].mean()) < 0.3
    assert abs(d_vv[~scar].mean()) < 0.3
    assert abs(d_vh[scar].mean()) > 5 * abs(d_vh[~scar].mean())


def test_radar_values_are_plausible_db(arrays):
    for s1 in (arrays["s1_pre"], arrays["s1_post"]):
        assert np.isfinite(s1).all()
        vv, vh = s1
        assert -40.0 < vv.min() and vv.max() < 12.0
        assert -45.0 < vh.min() and vh.max() < 5.0
        assert -14.0 < np.median(vv) < -6.0
        assert -20.0 < np.median(vh) < -11.0
        assert np.median(vh) < np.median(vv) - 3.0


def test_post_image_has_small_cloud_gaps_off_the_scars(arrays):
    cloud = (arrays["post"] == 0).all(axis=0)
    assert np.array_equal(cloud, (arrays["post"] == 0).any(axis=0))   # masked in every band at once
    assert 0.0 < cloud.mean() < 0.1
    scar = arrays["labels"] == 1
    assert cloud[scar].mean() < 0.1
    assert (arrays["pre"][:, ~cloud] > 0).mean() > 0.9


def test_reflectance_is_scaled_like_l2a(arrays):
    valid = arrays["post"][:, arrays["post"][0] > 0]
    assert valid.max() <= 10000
    assert 100 < np.median(valid[0]) < 1500        # blue
    assert 1500 < np.median(valid[3]) < 5000       # NIR


def test_landslide_count_follows_density(tmp_path):
    dense = simulate.simulate_event(tmp_path / "dense", width=256, height=256, seed=1, landslide_density=2.0,
                                    cloud_fraction=0.0)
    none = simulate.simulate_event(tmp_path / "none", width=64, height=64, seed=1, landslide_density=0.0)
    assert dense.n_landslides >= 0.7 * 2.0 * 25 * 256 * 256 / 250000
    assert none.n_landslides == 0
    with rasterio.open(none.labels_raster) as src:
        assert src.read(1).max() == 0
    with rasterio.open(dense.post_s2) as src:
        assert (src.read(1) > 0).all()


class _Recorder(NullProgress):
    def __init__(self, cancel_after=None):
        self.values, self.cancel_after, self.checks = [], cancel_after, 0

    def set_progress(self, percent):
        self.values.append(percent)

    def is_canceled(self):
        self.checks += 1
        return self.cancel_after is not None and self.checks > self.cancel_after


def test_reports_progress_to_100(tmp_path):
    progress = _Recorder()
    simulate.simulate_event(tmp_path, width=96, height=96, seed=2, block=32, progress=progress)
    assert progress.values == sorted(progress.values)
    assert progress.values[-1] == pytest.approx(100.0)
    assert progress.checks >= 9          # once per window at least


def test_cancel_leaves_no_output_behind(tmp_path):
    with pytest.raises(Canceled):
        simulate.simulate_event(tmp_path, width=96, height=96, seed=2, block=32, progress=_Recorder(cancel_after=3))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, words", [
    (dict(crs="EPSG:4326"), "projected"),
    (dict(width=8), "16×16"),
    (dict(cloud_fraction=0.9), "Cloud fraction"),
    (dict(pixel_size=0), "Pixel size"),
])
def test_rejects_bad_parameters_with_a_clear_message(tmp_path, kwargs, words):
    with pytest.raises(InputError, match=words):
        simulate.simulate_event(tmp_path, **kwargs)


def test_command_line_writes_a_scene(tmp_path, capsys):
    assert simulate.main([str(tmp_path), "--width", "64", "--height", "48", "--seed", "3"]) == 0
    with rasterio.open(tmp_path / "dem.tif") as src:
        assert (src.width, src.height) == (64, 48)
    assert "landslides" in capsys.readouterr().out
