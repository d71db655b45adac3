"""Multi-class losses (softmax, class weights, ignore index) and the package schema for a multi-class task."""
import json
import zipfile

import pytest
import torch
import torch.nn.functional as F

from landslide_mapper.common.errors import InputError
from landslide_mapper.models.package import make_manifest, read_package, write_package
from landslide_mapper.models.registry import IGNORE_INDEX, create_model, get_multiclass_loss

CLASSES = [{"value": 0, "name": "background", "color": "#f0e6c8"},
           {"value": 1, "name": "bedrock", "color": "#7f7f7f"},
           {"value": 2, "name": "wetland", "color": "#1f78b4"}]


def _batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :2] = IGNORE_INDEX
    return logits, target


@pytest.mark.parametrize("name", ["ce", "bce", "dice", "ce_dice", "bce_dice", "focal"])
def test_multiclass_losses_ignore_pixels_and_learn(name):
    logits, target = _batch()
    loss = get_multiclass_loss(name)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert logits.grad[:, :, :2].abs().sum() == 0  # ignored rows get no gradient
    perfect = F.one_hot(torch.where(target == IGNORE_INDEX, 0, target), 3).permute(0, 3, 1, 2).float() * 50
    assert loss(perfect, target) < value


def test_cross_entropy_matches_torch_and_class_weights_count():
    logits, target = _batch()
    valid = target != IGNORE_INDEX
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    assert get_multiclass_loss("ce")(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    weighted = get_multiclass_loss("ce", class_weights=[0.0, 0.0, 1.0])(logits, target)
    only_2 = valid & (target == 2)
    assert weighted.item() == pytest.approx(F.cross_entropy(logits.permute(0, 2, 3, 1)[only_2],
                                                            target[only_2]).item(), rel=1e-6)
    focal = get_multiclass_loss("focal", class_weights=[1.0, 1.0, 1.0])(logits, target)
    assert focal.item() == pytest.approx(get_multiclass_loss("focal")(logits, target).item(), rel=1e-6)


def test_losses_without_a_multiclass_form_and_bad_weights_are_refused():
    with pytest.raises(InputError, match="'lovasz' has no multi-class form"):
        get_multiclass_loss("lovasz")
    with pytest.raises(InputError, match="CLASS_WEIGHTS"):
        get_multiclass_loss("ce", class_weights=[1.0, float("nan"), 1.0])


def _package(path, classes=CLASSES, out_channels=3):
    net = create_model("Unet", "resnet18", 2, classes=out_channels, encoder_depth=3, decoder_channels=[32, 16, 8])
    member = {"architecture": "Unet", "encoder": "resnet18", "weights": "m.safetensors", "weight": 1.0,
              "out_channels": out_channels,
              "model_kwargs": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}}
    stats = [{"name": b, "mean": 0.0, "std": 1.0} for b in ("elevation", "slope")]
    manifest = make_manifest(members=[member], input_bands=["elevation", "slope"], band_stats=stats, threshold=0.5,
                             classes=classes, tile_size=64, task="multiclass_segmentation",
                             validation_metrics={"macro_f1": 0.8},
                             validation_classes=[{"value": 1, "name": "bedrock", "f1": 0.9}])
    return write_package(path, manifest, [net.state_dict()])


def test_multiclass_package_records_task_and_class_table(tmp_path):
    package = read_package(_package(tmp_path / "m.lmpkg"))
    assert package.is_multiclass and package.manifest["out_channels"] == 3
    assert [c["name"] for c in package.classes] == ["background", "bedrock", "wetland"]
    assert package.manifest["validation_classes"][0]["f1"] == 0.9


def test_multiclass_package_whose_channels_do_not_match_its_classes_is_refused(tmp_path):
    with pytest.raises(InputError, match="out_channels"):
        _package(tmp_path / "a.lmpkg", out_channels=2)
    with pytest.raises(InputError, match=r"classes\[2\]' must be an object with a value from 0 to 254"):
        _package(tmp_path / "b.lmpkg", classes=CLASSES[:2] + [{"value": 255, "name": "x"}])
    good = _package(tmp_path / "c.lmpkg")
    with zipfile.ZipFile(good) as zf:
        m = json.loads(zf.read("model.json"))
        weights = zf.read("m.safetensors")
    m["classes"][1]["color"] = "red; drop"
    with zipfile.ZipFile(tmp_path / "d.lmpkg", "w") as zf:
        zf.writestr("model.json", json.dumps(m))
        zf.writestr("m.safetensors", weights)
    with pytest.raises(InputError, match=r"classes\[1\]\.color' must be a colour"):
        read_package(tmp_path / "d.lmpkg")
