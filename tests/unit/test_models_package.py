"""Package round trips for every member kind (smp, ResUNet, ensembles, pixel trees) and the refusals."""
import json
import pickle
import zipfile

import pytest
import torch

from landslide_mapper.common.errors import InputError
from landslide_mapper.models.forest import PixelForest
from landslide_mapper.core.package_summary import describe
from landslide_mapper.models.package import PIXEL_BASELINE, make_manifest, read_package, write_package
from landslide_mapper.models.registry import compact_kwargs, create_model

BANDS = ["pre_VV", "post_VV", "dNDVI"]
STATS = [{"name": b, "mean": 0.0, "std": 1.0} for b in BANDS]


def _write(path, members, states):
    manifest = make_manifest(members=members, input_bands=BANDS, band_stats=STATS, tile_size=64, threshold=0.4,
                             classes=[{"value": 1, "name": "landslide"}], pixel_size=(10.0, 10.0),
                             validation_metrics={"f1": 0.8, "precision": 0.7})
    return write_package(path, manifest, states)


def _forest():
    from sklearn.tree import DecisionTreeClassifier
    import numpy as np

    x = np.random.default_rng(0).normal(size=(300, 3))
    return PixelForest.from_sklearn([DecisionTreeClassifier(max_depth=4).fit(x, x[:, 1] > 0.3)])


def test_round_trip_of_an_ensemble_of_smp_resunet_and_tree_members(tmp_path):
    torch.manual_seed(0)
    unet = create_model("Unet", "tu-resnet10t", 3, **compact_kwargs("Unet", 3, 4))
    resunet = create_model("ResUNet", "", 3, filters=[8, 16, 32])
    forest = _forest()
    members = [
        {"architecture": "Unet", "encoder": "tu-resnet10t", "model_kwargs": compact_kwargs("Unet", 3, 4),
         "weights": "member_01.safetensors", "weight": 2.0},
        {"architecture": "ResUNet", "encoder": None, "model_kwargs": {"filters": [8, 16, 32]},
         "weights": "member_02.safetensors", "weight": 1.0},
        {"kind": PIXEL_BASELINE, "architecture": "CART", "encoder": None, "weights": "member_03.safetensors",
         "weight": 1.0, "n_trees": 1},
    ]
    path = _write(tmp_path / "e.lmpkg", members, [unet.state_dict(), resunet.state_dict(), forest.state_dict()])
    pkg = read_package(path)
    assert pkg.manifest["architecture"] == "ensemble" and pkg.input_bands == BANDS and pkg.threshold == 0.4
    for original, loaded in zip((unet, resunet, forest), pkg.networks):
        a, b = original.state_dict(), loaded.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(resunet.eval()(x), pkg.networks[1].eval()(x))
    assert [w for _, w in pkg.members()] == [2.0, 1.0, 1.0]
    text = describe(pkg)
    assert "Member 2: ResUNet" in text and "CART pixel classifier" in text and "pre_VV" in text


def _repack(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_refusals_beyond_the_basic_ones(tmp_path):
    forest = _forest()
    member = {"kind": PIXEL_BASELINE, "architecture": "CART", "encoder": None, "weights": "forest.safetensors",
              "weight": 1.0}
    good = _write(tmp_path / "f.lmpkg", [member], [forest.state_dict()])
    with zipfile.ZipFile(good) as zf:
        manifest, weights = json.loads(zf.read("model.json")), zf.read("forest.safetensors")
    cases = {
        "backslash slip": ({"model.json": json.dumps(manifest), "forest.safetensors": weights,
                            "..\\..\\evil.txt": b"x"}, "unsafe path"),
        "absolute": ({"model.json": json.dumps(manifest), "forest.safetensors": weights, "/etc/x": b"x"},
                     "unsafe path"),
        "pickle disguised as safetensors": ({"model.json": json.dumps(manifest),
                                             "forest.safetensors": pickle.dumps({"a": 1})},
                                            "not a valid safetensors file"),
        "torch checkpoint": ({"model.json": json.dumps(manifest), "forest.safetensors": weights,
                              "weights.pt": b"x"}, "pickle"),
        "unknown tree kind": ({"model.json": json.dumps({**manifest, "members": [{**member, "architecture": "SVM"}]}),
                               "forest.safetensors": weights}, "unknown architecture 'SVM'"),
        "weights missing": ({"model.json": json.dumps(manifest)}, "not in the zip"),
        "trees for other bands": ({"model.json": json.dumps({**manifest, "input_bands": ["pre_VV"],
                                                             "normalization": {"pre_VV": {"mean": 0, "std": 1}}}),
                                   "forest.safetensors": weights}, "beyond the 1 input bands"),
        "newer schema": ({"model.json": json.dumps({**manifest, "schema_version": 99}),
                          "forest.safetensors": weights}, "newer Landslide Mapper"),
    }
    for i, (name, (files, message)) in enumerate(cases.items()):
        with pytest.raises(InputError, match=message):
            read_package(_repack(tmp_path / f"bad{i}.lmpkg", files))
