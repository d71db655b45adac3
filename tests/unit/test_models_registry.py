"""Every architecture and loss of the studies builds by name and trains one step; losses ignore nodata."""
import pytest
import torch

from landslide_mapper.common.errors import InputError
from landslide_mapper.models.registry import (ARCHITECTURES, LOSSES, compact_kwargs, create_model, get_loss,
                                              load_encoder_weights, model_kwargs_for)

ENCODER = "tu-resnet10t"  # a small timm encoder; compact decoders keep every network well under 1 M parameters


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_the_study_architectures_and_losses_are_all_registered():
    assert set(ARCHITECTURES) == {"Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "PAN", "DeepLabV3",
                                  "DeepLabV3Plus", "ResUNet"}
    assert {"bce", "dice", "focal", "jaccard", "lovasz", "tversky", "focal_tversky", "bce_focal_tversky"} <= set(LOSSES)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_builds_and_trains_one_step_with_3_and_15_bands(architecture):
    torch.manual_seed(0)
    for bands in (3, 15):
        net = create_model(architecture, ENCODER, bands, **compact_kwargs(architecture, 3, 4))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        x = torch.randn(2, bands, 64, 64)
        y = (torch.rand(2, 1, 64, 64) > 0.8).float()
        before = [p.detach().clone() for p in net.parameters()]
        out = net(x)
        main = out[0] if isinstance(out, tuple) else out
        assert main.shape == (2, 1, 64, 64), architecture  # output the size of the input (FPN/PSPNet upsampling)
        loss = get_loss("bce_dice")(out, y, torch.ones_like(y))
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
        assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
        net.eval()
        with torch.no_grad():
            assert net(x).shape == (2, 1, 64, 64)


def test_resunet_adds_deep_supervision_outputs_only_in_training():
    net = create_model("ResUNet", "", 4, filters=[8, 16, 32, 64])
    x = torch.randn(2, 4, 32, 32)
    out = net(x)
    assert isinstance(out, tuple) and len(out) == 3 and all(o.shape == (2, 1, 32, 32) for o in out)
    net.eval()
    assert net(x).shape == (2, 1, 32, 32)
    assert create_model("ResUNet", "", 4, filters=[8, 16], deep_supervision=False)(x).shape == (2, 1, 32, 32)


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_ignores_nodata_pixels(name):
    torch.manual_seed(1)
    loss_fn = get_loss(name)
    target = (torch.rand(2, 1, 16, 16) > 0.7).float()
    valid = torch.ones_like(target)
    valid[:, :, :4] = 0
    logits = torch.randn(2, 1, 16, 16, requires_grad=True)
    garbage = logits.detach().clone()
    garbage[:, :, :4] = 50.0 * torch.sign(torch.randn(2, 1, 4, 16))  # wildly wrong where there is no data
    a = loss_fn(logits, target, valid)
    b = loss_fn(garbage, target, valid)
    assert torch.isfinite(a) and a.item() == pytest.approx(b.item(), rel=1e-5, abs=1e-6)
    a.backward()
    assert logits.grad[:, :, :4].abs().max() == 0  # no gradient from ignored pixels


@pytest.mark.parametrize("name", ["bce", "dice", "jaccard", "lovasz", "tversky", "focal_tversky", "focal"])
def test_a_perfect_prediction_costs_almost_nothing(name):
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    logits = (target * 2 - 1) * 20
    assert get_loss(name)(logits, target, torch.ones_like(target)).item() < 0.02
    assert get_loss(name)(-logits, target, torch.ones_like(target)).item() > 0.2


def test_lovasz_equals_smp_lovasz_hinge_when_every_pixel_is_valid():
    from segmentation_models_pytorch.losses import LovaszLoss

    torch.manual_seed(2)
    logits = torch.randn(2, 1, 12, 12)
    target = (torch.rand(2, 1, 12, 12) > 0.6).float()
    ours = get_loss("lovasz")(logits, target, torch.ones_like(target))
    theirs = LovaszLoss("binary", per_image=False)(logits, target)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_study_combination_is_02_bce_with_class_weight_5_plus_08_focal_tversky():
    from landslide_mapper.models.registry import bce_loss, focal_tversky_loss

    torch.manual_seed(3)
    logits, target = torch.randn(1, 1, 8, 8), (torch.rand(1, 1, 8, 8) > 0.5).float()
    valid = torch.ones_like(target)
    expected = 0.2 * bce_loss(logits, target, valid, pos_weight=5.0) + 0.8 * focal_tversky_loss(logits, target, valid)
    assert get_loss("bce_focal_tversky")(logits, target, valid).item() == pytest.approx(expected.item())
    weighted = get_loss("bce", positive_weight=5.0)(logits, target, valid)
    assert weighted.item() == pytest.approx(bce_loss(logits, target, valid, pos_weight=5.0).item())
    assert weighted.item() > get_loss("bce")(logits, target, valid).item()


def test_deep_supervision_adds_the_weighted_mean_auxiliary_loss():
    from landslide_mapper.models.registry import DEEP_SUPERVISION_WEIGHT

    torch.manual_seed(4)
    main, aux1, aux2 = torch.randn(3, 1, 1, 8, 8)
    target, valid = (torch.rand(1, 1, 8, 8) > 0.5).float(), torch.ones(1, 1, 8, 8)
    f = get_loss("dice")
    expected = f(main, target, valid) + DEEP_SUPERVISION_WEIGHT * (f(aux1, target, valid) + f(aux2, target, valid)) / 2
    assert f((main, aux1, aux2), target, valid).item() == pytest.approx(expected.item())


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(InputError, match="Unknown architecture 'SegFormer'.*ResUNet"):
        create_model("SegFormer", ENCODER, 3)
    with pytest.raises(InputError, match="Unknown loss 'hinge'.*lovasz"):
        get_loss("hinge")
    with pytest.raises(InputError, match="Cannot build Unet with encoder 'nope'"):
        create_model("Unet", "nope", 3)
    with pytest.raises(InputError, match="Decoder channels can be set for Unet"):
        model_kwargs_for("FPN", 3, [32, 16, 8])


def test_encoder_weights_come_from_a_local_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    source = create_model("Unet", ENCODER, 3, **compact_kwargs("Unet", 3, 4))
    save_file({k: v.contiguous() for k, v in source.encoder.state_dict().items()}, str(tmp_path / "enc.safetensors"))
    # 5 bands: the first convolution does not fit and keeps its own initialisation, everything else is loaded.
    target = create_model("Unet", ENCODER, 5, encoder_weights=str(tmp_path / "enc.safetensors"),
                          **compact_kwargs("Unet", 3, 4))
    src, dst = source.encoder.state_dict(), target.encoder.state_dict()
    same = [k for k in src if src[k].shape == dst[k].shape]
    assert len(same) >= len(src) - 2 and all(torch.equal(src[k], dst[k]) for k in same)
    with pytest.raises(InputError, match="does not exist"):
        load_encoder_weights(target, str(tmp_path / "missing.safetensors"))
