import numpy as np
import pytest
import rasterio

from landslide_mapper.common.errors import Canceled, InputError
from landslide_mapper.core.predict import blend_weights, sliding_window_predict, tile_positions
from landslide_mapper.models.package import read_package

BANDS = ["pre_VV", "post_VV", "dNDVI"]


@pytest.fixture
def stack(tmp_path, raster_writer):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 150, 170)).astype(np.float32)
    data[:, 10:20, 30:45] = np.nan  # a nodata hole
    return raster_writer(tmp_path / "stack.tif", data, BANDS, nodata=np.nan)


def test_tile_positions_cover_raster_evenly_with_the_minimum_overlap():
    pos = tile_positions(150, 64, 16)
    assert pos[0] == 0 and pos[-1] == 150 - 64 and len(pos) == 3
    assert all(64 - (b - a) >= 16 for a, b in zip(pos, pos[1:]))
    assert tile_positions(40, 64, 16) == [0]


def test_blend_weights_never_zero_and_peak_in_centre():
    w = blend_weights(64, 16)
    assert w.min() > 0
    assert w[32, 32] == pytest.approx(1.0)
    assert w[0, 0] < w[8, 8] < w[32, 32]


def test_constant_model_gives_constant_output_across_tile_seams(tmp_path, stack, package_factory):
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, logit=1.0, tile_size=64))
    result = sliding_window_predict(pkg, stack, tmp_path / "p.tif", tmp_path / "m.tif", overlap=16)
    with rasterio.open(result.probability) as p:
        prob = p.read(1)
    valid = np.isfinite(prob)
    expected = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(prob[valid], expected, atol=1e-5)
    assert valid.sum() == 150 * 170 - 10 * 15


def test_nodata_in_gives_nodata_out_and_georeferencing_is_kept(tmp_path, stack, package_factory):
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, logit=-2.0, tile_size=64))
    sliding_window_predict(pkg, stack, tmp_path / "p.tif", tmp_path / "m.tif")
    with rasterio.open(stack) as s, rasterio.open(tmp_path / "p.tif") as p, rasterio.open(tmp_path / "m.tif") as m:
        assert p.crs == s.crs and p.transform == s.transform and (p.width, p.height) == (s.width, s.height)
        prob, mask = p.read(1), m.read(1)
        assert np.isnan(prob[10:20, 30:45]).all()
        assert (mask[10:20, 30:45] == 255).all()
        assert (mask[50:, 50:] == 0).all()  # sigmoid(-2) < threshold 0.5
        assert p.descriptions == ("landslide_probability",)


def test_extent_predicts_a_sub_window_with_matching_transform(tmp_path, stack, package_factory):
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, tile_size=64))
    extent = (400000 + 500, 6800000 - 1200, 400000 + 1500, 6800000 - 200)  # cols 50..150, rows 20..120
    sliding_window_predict(pkg, stack, tmp_path / "p.tif", extent=extent)
    with rasterio.open(tmp_path / "p.tif") as p:
        assert (p.width, p.height) == (100, 100)
        assert p.transform.c == 400500 and p.transform.f == 6800000 - 200


def test_missing_band_is_refused_and_leaves_no_file(tmp_path, raster_writer, package_factory):
    path = raster_writer(tmp_path / "s.tif", np.zeros((2, 64, 64), np.float32), ["pre_VV", "post_VV"])
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, tile_size=64))
    with pytest.raises(InputError, match="has band.*dNDVI that the model needs"):
        sliding_window_predict(pkg, path, tmp_path / "p.tif")
    assert not (tmp_path / "p.tif").exists()


def test_cancel_stops_and_leaves_no_partial_output(tmp_path, stack, package_factory):
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, tile_size=64))

    class CancelAfterFirstBatch:
        calls = 0

        def set_progress(self, p):
            pass

        def log(self, m):
            pass

        def is_canceled(self):
            self.calls += 1
            return self.calls > 2

    with pytest.raises(Canceled):
        sliding_window_predict(pkg, stack, tmp_path / "p.tif", tmp_path / "m.tif", progress=CancelAfterFirstBatch())
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "c.lmpkg.onnx")  # the ONNX cache may stay
    assert left == ["c.lmpkg", "stack.tif"]


def test_pixel_size_far_from_training_is_refused(tmp_path, stack, package_factory):
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, tile_size=64, pixel_size=(30.0, 30.0)))
    with pytest.raises(InputError, match="trained on 30 m pixels"):
        sliding_window_predict(pkg, stack, tmp_path / "p.tif")


def _random_package(path, members: int, weights=None):
    import torch

    from landslide_mapper.models.package import make_manifest, write_package
    from landslide_mapper.models.registry import create_model

    torch.manual_seed(0)
    kwargs = {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}
    net = create_model("Unet", "resnet18", 3, **kwargs)
    weights = weights or [1.0] * members
    manifest = make_manifest(
        members=[{"architecture": "Unet", "encoder": "resnet18", "model_kwargs": kwargs,
                  "weights": f"member{i}.safetensors", "weight": weights[i]} for i in range(members)],
        input_bands=BANDS, band_stats=[{"name": b, "mean": 0.0, "std": 1.0} for b in BANDS], tile_size=64,
        threshold=0.5, classes=[])
    return write_package(path, manifest, [net.state_dict()] * members)


def test_ensemble_of_identical_members_equals_the_member(tmp_path, stack):
    single = read_package(_random_package(tmp_path / "one.lmpkg", 1))
    double = read_package(_random_package(tmp_path / "two.lmpkg", 2, weights=[1.0, 3.0]))
    sliding_window_predict(single, stack, tmp_path / "a.tif")
    sliding_window_predict(double, stack, tmp_path / "b.tif")
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        pa, pb = a.read(1), b.read(1)
    assert np.nanstd(pa) > 1e-4  # a real, non-constant prediction
    np.testing.assert_allclose(pa, pb, atol=1e-6)


def test_probability_is_a_cog_with_overviews_and_tta_keeps_a_constant_model_constant(tmp_path, package_factory):
    from support import write_raster

    big = write_raster(tmp_path / "big.tif", np.zeros((3, 700, 600), np.float32), BANDS)
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, logit=0.5, tile_size=128))
    sliding_window_predict(pkg, big, tmp_path / "p.tif", tta=True, batch_size=8)
    with rasterio.open(tmp_path / "p.tif") as p:
        assert p.overviews(1) and p.profile.get("tiled")
        assert p.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert p.descriptions == ("landslide_probability",)
        np.testing.assert_allclose(p.read(1), 1 / (1 + np.exp(-0.5)), atol=1e-5)


def test_bands_from_several_rasters_and_a_manual_mapping(tmp_path, raster_writer, package_factory):
    rng = np.random.default_rng(1)
    a = raster_writer(tmp_path / "a.tif", rng.normal(size=(2, 80, 90)).astype(np.float32), ["pre_VV", "post_VV"])
    b = raster_writer(tmp_path / "b.tif", rng.normal(size=(1, 80, 90)).astype(np.float32), [""])
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, tile_size=64))
    with pytest.raises(InputError, match="dNDVI"):
        sliding_window_predict(pkg, [a, b], tmp_path / "p.tif")
    out = sliding_window_predict(pkg, [a, b], tmp_path / "p.tif", band_mapping={"dNDVI": (1, 1)})
    assert out.probability.exists()


def test_polygons_from_predict_with_min_area(tmp_path, stack, package_factory):
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, logit=3.0, tile_size=64))
    result = sliding_window_predict(pkg, stack, tmp_path / "p.tif", tmp_path / "m.tif", tmp_path / "l.gpkg")
    # Everything is "landslide" except the nodata hole: one polygon with a hole, 150×170 − 10×15 px of 100 m².
    assert result.n_polygons == 1
    from osgeo import ogr

    ds = ogr.Open(str(tmp_path / "l.gpkg"))  # keep the dataset alive while its layer is used
    feat = ds.GetLayer(0).GetNextFeature()
    assert feat.GetField("area_m2") == pytest.approx((150 * 170 - 150) * 100)


def test_onnx_runtime_and_torch_give_the_same_probabilities(tmp_path, stack):
    pytest.importorskip("onnxruntime")
    pkg = read_package(_random_package(tmp_path / "r.lmpkg", 1))
    a = sliding_window_predict(pkg, stack, tmp_path / "a.tif", engine="torch")
    b = sliding_window_predict(pkg, stack, tmp_path / "b.tif", engine="onnx")
    assert (a.engine, b.engine) == ("PyTorch", "ONNX Runtime")
    assert list((tmp_path / "r.lmpkg.onnx").glob("*.onnx"))  # exported once, cached beside the package
    with rasterio.open(a.probability) as pa, rasterio.open(b.probability) as pb:
        np.testing.assert_allclose(pa.read(1), pb.read(1), atol=1e-4)


def test_without_onnxruntime_predict_falls_back_to_torch_and_says_so(tmp_path, stack, monkeypatch):
    from landslide_mapper.models import onnx_runtime

    monkeypatch.setattr(onnx_runtime, "available", lambda: False)
    pkg = read_package(_random_package(tmp_path / "r.lmpkg", 1))
    messages = []

    class Log:
        def set_progress(self, p): pass
        def log(self, m): messages.append(m)
        def is_canceled(self): return False

    result = sliding_window_predict(pkg, stack, tmp_path / "a.tif", progress=Log())
    assert result.engine == "PyTorch"
    assert any("ONNX Runtime is not installed" in m for m in messages)
    with pytest.raises(InputError, match="ONNX Runtime is not installed"):
        sliding_window_predict(pkg, stack, tmp_path / "b.tif", engine="onnx")


def test_tiles_shrink_to_fit_the_raster():
    from landslide_mapper.core.predict import fit_tile

    assert fit_tile(4096, 2048, 64) == 1408  # 3 tiles, 4224 px computed for 4096
    assert fit_tile(150, 512, 64) == 160  # one padded tile
    assert fit_tile(1000, 256, 32) % 32 == 0


def test_scene_normalisation_uses_the_raster_statistics(tmp_path, raster_writer):
    from contextlib import ExitStack

    from rasterio.windows import Window

    from landslide_mapper.core.predict import InputReader, scene_statistics

    rng = np.random.default_rng(0)
    data = np.stack([rng.normal(1000, 50, (300, 300)), rng.normal(-5, 2, (300, 300)),
                     rng.normal(0, 0.1, (300, 300))]).astype(np.float32)
    path = raster_writer(tmp_path / "s.tif", data, BANDS)
    with ExitStack() as stack:
        inputs = InputReader(stack, [path], [(0, 1), (0, 2), (0, 3)])
        mean, std = scene_statistics(inputs, Window(0, 0, 300, 300))
    assert np.all(np.abs(mean - [1000, -5, 0]) < [3, 0.2, 0.01])
    np.testing.assert_allclose(std, [50, 2, 0.1], rtol=0.05)
