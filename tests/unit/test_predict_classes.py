"""Multi-class prediction: per-class probability bands (softmax, ensembles/TTA averaged), a paletted class map with
the package's colours and class names, and polygons with a class field."""
import numpy as np
import pytest
import rasterio
import torch
from osgeo import gdal, ogr
from rasterio.transform import from_origin

from landslide_mapper.core.predict import PredictOptions, PredictOutputs, predict_map
from landslide_mapper.core.predict.class_polygons import parse_class_areas
from landslide_mapper.common.errors import InputError
from landslide_mapper.models.package import make_manifest, read_package, write_package
from landslide_mapper.models.registry import create_model

CLASSES = [{"value": 0, "name": "background", "color": "#f0e6c8"},
           {"value": 3, "name": "bedrock", "color": "#7f7f7f"},
           {"value": 5, "name": "wetland", "color": "#1f78b4"}]
KW = {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}


def _package(path, members=1):
    torch.manual_seed(1)
    net = create_model("Unet", "resnet18", 2, classes=3, **KW)
    with torch.no_grad():
        net.segmentation_head[0].bias.copy_(torch.tensor([0.0, 0.3, -0.2]))
    member = {"architecture": "Unet", "encoder": "resnet18", "out_channels": 3, "model_kwargs": KW}
    ms = [dict(member, weights=f"m{k}.safetensors", weight=1.0) for k in range(members)]
    stats = [{"name": b, "mean": 0.0, "std": 1.0} for b in ("elevation", "slope")]
    manifest = make_manifest(members=ms, input_bands=["elevation", "slope"], band_stats=stats, threshold=0.5,
                             classes=CLASSES, tile_size=64, overlap=0, task="multiclass_segmentation")
    write_package(path, manifest, [net.state_dict()] * members)
    return read_package(path), net


def _stack(path, size=64):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, size, size)).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=2, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(500000, 7000000, 10, 10), nodata=np.nan) as dst:
        dst.write(data)
        dst.descriptions = ("elevation", "slope")
    return data


def test_class_map_is_the_argmax_of_softmax_with_colours_and_names(tmp_path):
    package, net = _package(tmp_path / "m.lmpkg")
    data = _stack(tmp_path / "in.tif")
    out = PredictOutputs(tmp_path / "p.tif", tmp_path / "classes.tif", tmp_path / "classes.gpkg")
    predict_map(package, tmp_path / "in.tif", out, PredictOptions(device="cpu", engine="torch", cog=False))
    with torch.no_grad():
        expected = torch.softmax(net.eval()(torch.from_numpy(data[None])), dim=1)[0].numpy()
    with rasterio.open(out.probability) as src:
        prob = src.read()
        assert src.descriptions == ("probability_background", "probability_bedrock", "probability_wetland")
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-5)
    with rasterio.open(out.mask) as src:
        classes = src.read(1)
        assert src.colormap(1)[3][:3] == (0x7f, 0x7f, 0x7f) and src.colormap(1)[5][:3] == (0x1f, 0x78, 0xb4)
    assert (classes == np.array([0, 3, 5])[expected.argmax(axis=0)]).all()
    ds = gdal.Open(str(out.mask))
    ds.GetFileList()
    names = ds.GetRasterBand(1).GetCategoryNames()
    ds = None
    assert (names[0], names[3], names[5]) == ("background", "bedrock", "wetland")
    layer_ds = ogr.Open(str(out.polygons))
    layer = layer_ds.GetLayer(0)
    counted = {}
    for feat in layer:
        counted[feat.GetField("class")] = feat.GetField("class_name")
    assert set(counted) == {3, 5} - ({3} if not (classes == 3).any() else set()) - \
        ({5} if not (classes == 5).any() else set())
    assert all(counted[v] == {3: "bedrock", 5: "wetland"}[v] for v in counted)


def test_ensembles_and_tta_average_class_probabilities(tmp_path):
    single, _ = _package(tmp_path / "one.lmpkg")
    double, _ = _package(tmp_path / "two.lmpkg", members=2)
    _stack(tmp_path / "in.tif")
    results = []
    for name, package, tta in (("a", single, False), ("b", double, False), ("c", single, True)):
        out = PredictOutputs(tmp_path / f"{name}.tif", tmp_path / f"{name}_c.tif")
        predict_map(package, tmp_path / "in.tif", out, PredictOptions(device="cpu", engine="torch", tta=tta,
                                                                      cog=False))
        with rasterio.open(out.probability) as src:
            results.append(src.read())
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)  # two equal members = one
    np.testing.assert_allclose(results[2].sum(axis=0), 1.0, atol=1e-5)
    assert np.abs(results[2] - results[0]).max() > 1e-4  # flips seen: an average, not a copy


def test_minimum_areas_per_class_are_parsed_by_name_or_value():
    assert parse_class_areas("bedrock=5000; 5=200", CLASSES) == {0: 0.0, 3: 5000.0, 5: 200.0}
    with pytest.raises(InputError, match="CLASS_MIN_AREAS"):
        parse_class_areas("granite=3", CLASSES)


def test_vetoes_apply_to_the_chosen_classes_only(tmp_path):
    from landslide_mapper.core.postprocess import MaskRules
    from landslide_mapper.core.predict.class_polygons import parse_class_list

    package, _ = _package(tmp_path / "m.lmpkg")
    _stack(tmp_path / "in.tif")
    with rasterio.open(tmp_path / "in.tif") as src:
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, dtype="float32",
                       crs=src.crs, transform=src.transform)
    with rasterio.open(tmp_path / "slope.tif", "w", **profile) as dst:
        dst.write(np.zeros((1, 64, 64), np.float32))  # flat: a minimum slope vetoes everywhere
    maps = {}
    for name, veto in (("free", None), ("all", None), ("wetland", parse_class_list("wetland", CLASSES))):
        rules = None if name == "free" else MaskRules(slope_raster=str(tmp_path / "slope.tif"), min_slope=5.0)
        out = PredictOutputs(tmp_path / f"{name}_p.tif", tmp_path / f"{name}.tif")
        predict_map(package, tmp_path / "in.tif", out, PredictOptions(device="cpu", engine="torch", cog=False,
                                                                      mask_rules=rules, veto_classes=veto))
        with rasterio.open(out.mask) as src:
            maps[name] = src.read(1)
    assert set(np.unique(maps["all"])) == {0}
    expected = np.where(maps["free"] == 5, 0, maps["free"])
    np.testing.assert_array_equal(maps["wetland"], expected)
    assert (maps["free"] == 3).any() and (maps["free"] == 5).any()
    with pytest.raises(InputError, match="no class 'granite'"):
        parse_class_list("granite", CLASSES)
