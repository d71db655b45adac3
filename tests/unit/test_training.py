import json
import zipfile

import numpy as np
import pytest
import torch

from landslide_mapper.core.chips import Sampling, SplitOptions, export_chips
from landslide_mapper.common.errors import Canceled, InputError
from landslide_mapper.core.training import TrainConfig, train_model
from landslide_mapper.models.devices import pick_device
from landslide_mapper.models.package import read_package

BANDS = ["pre_VV", "post_VV", "dNDVI"]
TINY = {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    """A learnable scene: landslides are blobs with a dNDVI drop and a VV change, plus noise."""
    from support import write_raster

    tmp = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(3)
    h, w = 192, 256
    labels = np.zeros((h, w), np.uint8)
    for _ in range(40):
        r, c = rng.integers(0, h - 12), rng.integers(0, w - 12)
        labels[r:r + rng.integers(4, 12), c:c + rng.integers(4, 12)] = 1
    pre_vv = rng.normal(-8, 1, (h, w))
    post_vv = pre_vv + rng.normal(0, 0.5, (h, w)) + 3.0 * labels
    dndvi = rng.normal(0, 0.05, (h, w)) - 0.5 * labels
    stack = write_raster(tmp / "stack.tif", np.stack([pre_vv, post_vv, dndvi]).astype(np.float32), BANDS,
                         nodata=np.nan)
    lab = write_raster(tmp / "labels.tif", labels, ["label"])
    export_chips(
        stack,
        lab,
        tmp / "chips",
        tile_size=32,
        sampling=Sampling(stride=32),
        splits=SplitOptions(block=64, validation_fraction=0.25),
    )
    return tmp / "chips"


def test_short_training_learns_a_simple_scene_and_writes_a_valid_package(chips, tmp_path):
    cfg = TrainConfig(encoder="resnet18", model_kwargs=TINY, epochs=6, batch_size=8, learning_rate=3e-3,
                      patience=6)
    result = train_model(chips, tmp_path / "m.lmpkg", cfg)
    assert result.validation["f1"] > 0.7
    pkg = read_package(result.package)
    assert pkg.input_bands == BANDS and 0 < pkg.threshold < 1
    assert pkg.manifest["validation_metrics"]["f1"] == pytest.approx(result.validation["f1"])
    assert set(pkg.manifest["normalization"]) == set(BANDS)
    with zipfile.ZipFile(result.package) as zf:
        assert sorted(zf.namelist()) == ["model.json", "weights.safetensors"]
    assert result.curves_csv.exists()


def test_training_is_deterministic_on_cpu(chips, tmp_path):
    cfg = TrainConfig(encoder="resnet18", model_kwargs=TINY, epochs=1, batch_size=8, iterations_per_epoch=3)
    a = read_package(train_model(chips, tmp_path / "a.lmpkg", cfg).package).networks[0].state_dict()
    b = read_package(train_model(chips, tmp_path / "b.lmpkg", cfg).package).networks[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cancel_writes_no_package(chips, tmp_path):
    class Cancel:
        def set_progress(self, p): pass
        def log(self, m): pass
        def is_canceled(self): return True

    with pytest.raises(Canceled):
        train_model(chips, tmp_path / "m.lmpkg", TrainConfig(model_kwargs=TINY, epochs=1), progress=Cancel())
    assert not (tmp_path / "m.lmpkg").exists()


def test_package_refusals_are_clear(chips, tmp_path):
    cfg = TrainConfig(encoder="resnet18", model_kwargs=TINY, epochs=1, iterations_per_epoch=1)
    good = train_model(chips, tmp_path / "m.lmpkg", cfg).package
    with zipfile.ZipFile(good) as zf:
        manifest = json.loads(zf.read("model.json"))
        weights = zf.read("weights.safetensors")

    def repack(name, files):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            for n, data in files.items():
                zf.writestr(n, data)
        return path

    cases = {
        "not a zip": (tmp_path / "x.lmpkg", "not a Landslide Mapper model package"),
        "bad json": (repack("j.lmpkg", {"model.json": "{", "weights.safetensors": weights}), "not valid JSON"),
        "stats": (repack("s.lmpkg", {"model.json": json.dumps({**manifest, "normalization": {}}),
                                     "weights.safetensors": weights}), "no normalisation statistics"),
        "arch": (repack("a.lmpkg", {"model.json": json.dumps({**manifest, "members": [
            {**manifest["members"][0], "architecture": "SegFormerXL"}]}), "weights.safetensors": weights}),
                 "unknown architecture 'SegFormerXL'"),
        "fit": (repack("f.lmpkg", {"model.json": json.dumps({**manifest, "input_bands": BANDS + ["dVH"],
                                                             "normalization": {**manifest["normalization"],
                                                                               "dVH": {"mean": 0, "std": 1}}}),
                                   "weights.safetensors": weights}), "do not fit"),
        "slip": (repack("z.lmpkg", {"model.json": json.dumps(manifest), "../evil.safetensors": weights}),
                 "unsafe path"),
        "pickle": (repack("p.lmpkg", {"model.json": json.dumps(manifest), "weights.safetensors": weights,
                                      "extra.pkl": b"x"}), "pickle"),
    }
    (tmp_path / "x.lmpkg").write_text("hello")
    for name, (path, message) in cases.items():
        with pytest.raises(InputError, match=message):
            read_package(path)


def test_missing_validation_chips_is_refused(tmp_path):
    from support import write_raster

    labels = np.zeros((64, 64), np.uint8)
    labels[10:20, 10:20] = 1
    stack = write_raster(tmp_path / "s.tif", np.random.default_rng(0).normal(size=(3, 64, 64)).astype(np.float32),
                         BANDS)
    lab = write_raster(tmp_path / "l.tif", labels, ["label"])
    export_chips(
        stack,
        lab,
        tmp_path / "c",
        tile_size=32,
        sampling=Sampling(stride=32),
        splits=SplitOptions(validation_fraction=0.0),
    )
    with pytest.raises(InputError, match="no validation chips"):
        train_model(tmp_path / "c", tmp_path / "m.lmpkg", TrainConfig(model_kwargs=TINY, epochs=1))


def test_auto_device_is_cpu_here_and_cuda_request_is_explained():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            pick_device("cuda")
