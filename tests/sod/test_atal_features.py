"""ATAL's pixel features (RDS): each registry model names the layer that makes its final prediction, and the
features are that layer's input (for F3Net the second decoder's stride-4 head, not the stride-32 side head)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthsod.errors import SynthsodError
from synthsod.sod.atal.train import pixel_feature_layer, pixel_features, prediction_features
from synthsod.sod.models import F3Net, UNet

SIZE = 64


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def test_unet_features_are_its_heads_input_at_full_resolution(images):
    torch.manual_seed(0)
    unet = UNet(base=4, depth=2, out_channels=1).eval()
    features = prediction_features(unet, images)
    assert features.shape == (2, 4, SIZE, SIZE)  # stride 1, the head's input channels
    with torch.no_grad():
        torch.testing.assert_close(unet.head(features), unet(images)[0])  # they make the final prediction
    torch.testing.assert_close(pixel_features(unet, images), features)  # already at the image size


def test_f3net_features_are_the_final_predictions_not_the_coarsest_side_heads(images):
    torch.manual_seed(0)
    f3net = F3Net(backbone="resnet18", channels=8).eval()
    assert pixel_feature_layer(f3net) is f3net.prediction_heads[1]
    features = prediction_features(f3net, images)
    assert features.shape == (2, 8, SIZE // 4, SIZE // 4)  # stride 4: the finest decoder level
    with torch.no_grad():
        final = f3net(images)[0]
        remade = F.interpolate(f3net.prediction_heads[1](features), size=(SIZE, SIZE), mode="bilinear")
    torch.testing.assert_close(remade, final)  # these features make the final prediction

    side_inputs = []  # the last registered convolution: the stride-32 side head (the old choice)
    last_conv = [m for m in f3net.modules() if isinstance(m, nn.Conv2d)][-1]
    assert last_conv is f3net.side_heads[-1]
    handle = last_conv.register_forward_hook(lambda module, inputs, output: side_inputs.append(inputs[0]))
    with torch.no_grad():
        f3net(images)
    handle.remove()
    assert side_inputs[0].shape[-1] == SIZE // 32 and features.shape[-1] != side_inputs[0].shape[-1]
    upsampled = pixel_features(f3net, images)
    assert upsampled.shape == (2, 8, SIZE, SIZE)
    coarse = F.interpolate(side_inputs[0], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    assert not torch.allclose(upsampled, coarse)


def test_a_model_without_a_named_feature_layer_or_with_a_wrong_name_is_an_error(images):
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 1, 1))
    with pytest.raises(SynthsodError, match="Sequential names no pixel-feature layer.*pixel_feature_layer"):
        pixel_features(plain, images)

    class Misnamed(nn.Sequential):
        pixel_feature_layer = "head"

    with pytest.raises(SynthsodError, match="Misnamed.pixel_feature_layer = 'head' names no submodule"):
        pixel_features(Misnamed(nn.Conv2d(3, 1, 1)), images)

    class Twice(nn.Module):
        pixel_feature_layer = "conv"

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return [self.conv(self.conv(x))[:, :1]]

    with pytest.raises(SynthsodError, match="ran 2 times"):
        pixel_features(Twice(), images)
