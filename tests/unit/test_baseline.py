"""The pixel baseline: scikit-learn trees exported without pickle, evaluated exactly, mapped by `predict`."""
import zipfile

import numpy as np
import pytest
import rasterio
import torch

from landslide_mapper.core.baseline import BaselineConfig, train_pixel_baseline
from landslide_mapper.core.chips import Sampling, SplitOptions, export_chips
from landslide_mapper.common.errors import InputError
from landslide_mapper.core.metrics import Confusion, scores
from landslide_mapper.models.forest import PixelForest
from landslide_mapper.models.package import read_package


def test_pixel_forest_reproduces_scikit_learn_probabilities():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 2] + rng.normal(0, 0.5, 3000)) > 0.8).astype(int)
    forest = RandomForestClassifier(n_estimators=7, max_depth=6, random_state=0).fit(x, y)
    module = PixelForest.from_sklearn(forest.estimators_)
    ours = module.probability(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, forest.predict_proba(x)[:, 1], atol=1e-6)
    tiles = torch.from_numpy(x[:2 * 30 * 50].reshape(2, 30, 50, 4)).permute(0, 3, 1, 2)
    logits = module(tiles)
    assert logits.shape == (2, 1, 30, 50)
    np.testing.assert_allclose(torch.sigmoid(logits).numpy().reshape(-1),
                               forest.predict_proba(x[:3000])[:, 1], atol=1e-5)


def test_tree_tables_pointing_outside_the_bands_or_nodes_are_refused():
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(1).normal(size=(200, 3))
    state = PixelForest.from_sklearn([DecisionTreeClassifier(max_depth=3).fit(x, x[:, 2] > 0)]).state_dict()
    with pytest.raises(InputError, match="beyond the 2 input bands"):
        PixelForest.from_state(state, 2, "forest.safetensors")
    bad = {**state, "left": state["left"] + 1000}
    with pytest.raises(InputError, match="nodes that do not exist"):
        PixelForest.from_state(bad, 3, "forest.safetensors")


@pytest.mark.parametrize("model", ["cart", "random_forest"])
def test_baseline_beats_chance_and_maps_a_raster_through_predict(model, tmp_path):
    from support import learnable_scene

    stack, labels = learnable_scene(tmp_path, seed=5)
    export_chips(
        stack,
        labels,
        tmp_path / "chips",
        tile_size=32,
        sampling=Sampling(stride=32),
        splits=SplitOptions(block=64, validation_fraction=0.25),
    )
    result = train_pixel_baseline(tmp_path / "chips", tmp_path / "b.lmpkg", BaselineConfig(model=model, n_trees=12),
                                  map_raster=stack, out_probability=tmp_path / "p.tif", out_mask=tmp_path / "m.tif")
    with zipfile.ZipFile(result.package) as zf:
        assert sorted(zf.namelist()) == ["forest.safetensors", "model.json"]  # no pickle anywhere
    pkg = read_package(result.package)
    assert pkg.manifest["members"][0]["kind"] == "pixel_baseline" and 0 < pkg.threshold < 1
    with rasterio.open(tmp_path / "m.tif") as m, rasterio.open(labels) as t:
        mask, truth = m.read(1), t.read(1)
    # The mapped probability is the trees' own answer for every pixel (whatever engine `predict` used).
    mean, std = pkg.normalization()
    with rasterio.open(stack) as src, rasterio.open(tmp_path / "p.tif") as p:
        pixels = ((src.read().astype(np.float32) - mean[:, None, None]) / std[:, None, None]).reshape(3, -1).T
        mapped_probability = p.read(1).reshape(-1)
    direct = pkg.networks[0].probability(torch.from_numpy(np.ascontiguousarray(pixels))).numpy()
    np.testing.assert_allclose(mapped_probability, np.clip(direct, 1e-6, 1 - 1e-6), atol=1e-4)
    prevalence = truth.mean()
    chance_f1 = 2 * prevalence / (1 + prevalence)  # calling every pixel a landslide
    mapped = scores(Confusion.from_arrays(mask == 1, truth == 1))
    assert result.validation["f1"] > chance_f1 + 0.5 and mapped["f1"] > chance_f1 + 0.5
