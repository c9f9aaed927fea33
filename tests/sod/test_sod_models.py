"""SOD model registry: F3Net (timm ResNet-50 pyramid + cascaded CFM decoders) and the U-Net."""

from __future__ import annotations

import logging

import pytest
import torch

from synthsod.errors import SynthsodError
from synthsod.sod.losses import structure_loss
from synthsod.sod.models import F3NET_SIDE_WEIGHTS, create_sod_model, f3net_loss


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
