"""SOD model registry: F3Net (timm ResNet-50 pyramid + cascaded CFM decoders), the U-Net, and torchvision's
FCN / DeepLab-v3 (the CAS paper's models)."""

from __future__ import annotations

import logging

import pytest
import torch

from synthsod.core.compat import import_torchvision
from synthsod.errors import SynthsodError
from synthsod.sod.losses import structure_loss
from synthsod.sod.models import F3NET_SIDE_WEIGHTS, create_sod_model, f3net_loss
from synthsod.sod.train import build_model

SEGMENTERS = ("fcn-resnet101", "deeplabv3-resnet101")


@pytest.fixture(scope="module")
def f3net():
    torch.manual_seed(0)
    return create_sod_model("f3net")


def test_f3net_outputs_six_logit_maps_at_the_requested_size(f3net):
    x = torch.randn(2, 3, 64, 64)
    outputs = f3net.eval()(x)
    assert len(outputs) == 6 and all(o.shape == (2, 1, 64, 64) for o in outputs)
    assert all(o.shape == (2, 1, 48, 40) for o in f3net(x, shape=(48, 40)))


def test_f3net_loss_weighs_predictions_and_side_outputs_as_f3net(f3net):
    masks = (torch.rand(2, 1, 64, 64) > 0.5).float()
    outputs = f3net.train()(torch.randn(2, 3, 64, 64))
    expected = (structure_loss(outputs[0], masks) + structure_loss(outputs[1], masks)) / 2 + sum(
        w * structure_loss(o, masks) for w, o in zip(F3NET_SIDE_WEIGHTS, outputs[2:])
    )
    loss = f3net_loss(outputs, masks)
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    grads = [p.grad for p in f3net.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert f3net.backbone.conv1.weight.grad.abs().sum() > 0  # the backbone is trained too


def test_f3net_without_weights_warns_and_with_a_missing_file_fails(caplog):
    with caplog.at_level(logging.WARNING, logger="synthsod.core.backbones"):
        create_sod_model("f3net")
    assert "random weights" in caplog.text
    with pytest.raises(SynthsodError, match="backbone weights not found: /nowhere/r50.pth"):
        create_sod_model("f3net", backbone_weights="/nowhere/r50.pth")


def test_unet_gives_two_class_logits_and_checks_its_input():
    unet = create_sod_model("unet", base=8)
    (logits,) = unet(torch.randn(2, 3, 32, 48))
    assert logits.shape == (2, 2, 32, 48)
    with pytest.raises(SynthsodError, match="multiples of 16"):
        unet(torch.randn(1, 3, 30, 32))
    with pytest.raises(SynthsodError, match="unknown SOD model 'segformer'"):
        create_sod_model("segformer")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", SEGMENTERS)
def test_torchvision_segmenters_give_logits_at_the_input_size(name):
    torch.manual_seed(0)
    model = create_sod_model(name, out_channels=3).eval()  # ResNet-101, random weights
    assert sum(p.numel() for p in model.backbone.layer3.parameters()) > 20e6  # 23 blocks: ResNet-101's layer3
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 64))
    assert isinstance(outputs, list) and len(outputs) == 1 and outputs[0].shape == (1, 3, 64, 64)
    with pytest.raises(SynthsodError, match="unknown segmentation model fcn-resnet18"):
        create_sod_model("fcn-resnet101", backbone="resnet18")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", SEGMENTERS)
def test_torchvision_segmenters_load_a_local_backbone_checkpoint(tmp_path, name, caplog):
    torchvision = import_torchvision()
    torch.manual_seed(1)
    resnet = torchvision.models.resnet50(weights=None)  # an "ImageNet" checkpoint in torchvision's layout
    torch.save(resnet.state_dict(), tmp_path / "r50.pth")
    with caplog.at_level(logging.WARNING, logger="synthsod.sod.models"):
        fresh = create_sod_model(name, backbone="resnet50")
    assert "random weights" in caplog.text
    loaded = create_sod_model(name, backbone="resnet50", backbone_weights=str(tmp_path / "r50.pth"))
    for key in ("conv1.weight", "layer3.5.conv2.weight", "layer4.2.conv3.weight"):
        expected = resnet.state_dict()[key]
        assert torch.equal(loaded.backbone.state_dict()[key], expected), key
        assert not torch.equal(fresh.backbone.state_dict()[key], expected), key
    with pytest.raises(SynthsodError, match="backbone weights not found: /nowhere/r50.pth"):
        create_sod_model(name, backbone="resnet50", backbone_weights="/nowhere/r50.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(SynthsodError, match="not a resnet50 ImageNet checkpoint"):
        create_sod_model(name, backbone="resnet50", backbone_weights=str(tmp_path / "bad.pth"))


@pytest.mark.usefixtures("one_thread")
def test_every_channel_model_takes_the_loss_channel_count():
    """CE: 2, BCE: 1, CAS: M from the model options, U-Net and FCN alike."""
    x = torch.randn(2, 3, 32, 32)
    for name, options in (("unet", {"base": 4, "depth": 2}), ("fcn-resnet101", {"backbone": "resnet50"})):
        assert build_model(name, "ce", options).eval()(x)[0].shape[1] == 2
        assert build_model(name, "bce", options).eval()(x)[0].shape[1] == 1
        assert build_model(name, "cas", {**options, "out_channels": 4}).eval()(x)[0].shape[1] == 4
        with pytest.raises(SynthsodError, match="loss 'ce' needs 2 output channel"):
            build_model(name, "ce", {**options, "out_channels": 4})
