"""SOD models behind one registry: ``create_sod_model(name, **kwargs)``.

``f3net`` (F3Net, AAAI 2020)
    A ResNet-50 feature pyramid (timm, strides 4-32), each level squeezed to 64 channels, then two
    cascaded decoders of cross feature modules (CFM). A CFM takes a lateral map and the coarser map
    from below, refines each with two 3x3 conv-BN-ReLU layers, multiplies them (the "cross" fusion),
    and adds the product back to both branches. The second decoder receives the first one's
    prediction as feedback, added at every level. Outputs (logits at the input size, or at
    ``shape``): the two decoders' predictions and four side outputs, one per pyramid level;
    :func:`f3net_loss` weighs them as F3Net's training does (mean of the two predictions + side
    outputs / 2, / 4, / 8, / 16). ``predict`` returns the second decoder's prediction.
``unet`` (E-BigBiGAN's segmenter)
    A plain U-Net: four 2x down-sampling stages of two 3x3 conv-BN-ReLU, mirrored up-sampling with
    skip connections, and a 1x1 convolution to 2 class logits (cross-entropy).
``fcn-resnet101``, ``deeplabv3-resnet101`` (the CAS paper's models)
    torchvision's FCN and DeepLab-v3 segmenters (``torchvision.models.segmentation``): a dilated ResNet
    (output stride 8) and the FCN head (3x3 conv-BN-ReLU, dropout, 1x1 conv) or DeepLab-v3's ASPP head, with
    ``out_channels`` logits bilinearly upsampled to the input size; no auxiliary head. ``backbone: resnet50``
    builds the lighter ResNet-50 variants. The ResNet starts from a local ImageNet checkpoint
    (``backbone_weights``, torchvision's ResNet layout) or from random weights; nothing is downloaded.
    DeepLab-v3's image-pooling branch holds a BatchNorm over a 1x1 map, so it trains on batches of 2 or more.
``coop`` (cooperative saliency, AAAI 2022)
    The latent-variable model and its energy-based refiner (:mod:`synthsod.sod.coop.model`); trained by
    :func:`synthsod.sod.coop.train.train_coop`, not by the single-loss loop.

Every model maps images [N, 3, H, W] (ImageNet-normalised by the caller) to a list of logit maps
whose first entry is what ``predict`` uses; single-output models return a one-item list. The models in
:data:`CHANNEL_MODELS` take ``out_channels`` (the logits' channel count: 1 for BCE-type losses, 2 for CE, M
for CAS); F3Net and the cooperative model predict one channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from synthsod.core.backbones import create_feature_backbone
from synthsod.core.compat import import_torchvision
from synthsod.errors import SynthsodError
from synthsod.sod.coop.model import CoopSaliency
from synthsod.sod.losses import structure_loss

log = logging.getLogger(__name__)

F3NET_CHANNELS = 64
F3NET_SIDE_WEIGHTS = (1 / 2, 1 / 4, 1 / 8, 1 / 16)  # side outputs of pyramid levels 2..5


def conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return x if tuple(x.shape[2:]) == tuple(size) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class CrossFeatureModule(nn.Module):
    """F3Net's CFM on a lateral map and a coarser map: (refined lateral, refined coarser), both at the lateral size."""

    def __init__(self, channels: int = F3NET_CHANNELS):
        super().__init__()
        names = (
            "lateral1",
            "lateral2",
            "coarse1",
            "coarse2",
            "lateral_fuse",
            "coarse_fuse",
            "lateral_out",
            "coarse_out",
        )
        for name in names:
            self.add_module(name, conv_bn_relu(channels, channels))

    def forward(self, lateral: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lateral = self.lateral1(lateral)
        coarse = self.coarse1(_resize(coarse, lateral.shape[2:]))
        fused = self.lateral2(lateral) * self.coarse2(coarse)
        return (self.lateral_out(self.lateral_fuse(fused) + lateral), self.coarse_out(self.coarse_fuse(fused) + coarse))


class F3NetDecoder(nn.Module):
    """Three CFMs from the coarsest level up; optional feedback (a previous prediction) at every level."""

    def __init__(self, channels: int = F3NET_CHANNELS):
        super().__init__()
        self.cfms = nn.ModuleList([CrossFeatureModule(channels) for _ in range(3)])

    def forward(self, levels: list[torch.Tensor], feedback: torch.Tensor | None = None):
        """``levels`` [l2, l3, l4, l5] (fine to coarse) -> (refined [l2, l3, l4, l5], prediction features)."""
        if feedback is not None:
            levels = [level + _resize(feedback, level.shape[2:]) for level in levels]
        l2, l3, l4, l5 = levels
        l4, down = self.cfms[0](l4, l5)
        l3, down = self.cfms[1](l3, down)
        l2, prediction = self.cfms[2](l2, down)
        return [l2, l3, l4, l5], prediction


class F3Net(nn.Module):
    pixel_feature_layer = "prediction_heads.1"  # its input: the final prediction's features (ATAL's RDS)

    def __init__(self, backbone: str = "resnet50", backbone_weights: str | None = None, channels: int = F3NET_CHANNELS):
        super().__init__()
        self.backbone = create_feature_backbone(backbone, backbone_weights)
        widths = self.backbone.feature_info.channels()
        self.squeeze = nn.ModuleList([conv_bn_relu(width, channels, kernel=1) for width in widths])
        self.decoders = nn.ModuleList([F3NetDecoder(channels), F3NetDecoder(channels)])
        self.prediction_heads = nn.ModuleList([nn.Conv2d(channels, 1, 3, padding=1) for _ in range(2)])
        self.side_heads = nn.ModuleList([nn.Conv2d(channels, 1, 3, padding=1) for _ in widths])

    def forward(self, x: torch.Tensor, shape: Sequence[int] | None = None) -> list[torch.Tensor]:
        """[second prediction, first prediction, side outputs l2..l5], logits [N, 1, *shape]."""
        shape = tuple(x.shape[2:]) if shape is None else tuple(shape)
        levels = [squeeze(f) for squeeze, f in zip(self.squeeze, self.backbone(x))]
        levels, first = self.decoders[0](levels)
        levels, second = self.decoders[1](levels, feedback=first)
        predictions = [head(p) for head, p in zip(self.prediction_heads, (first, second))]
        sides = [head(level) for head, level in zip(self.side_heads, levels)]
        return [_resize(out, shape) for out in (predictions[1], predictions[0], *sides)]


def f3net_loss(
    outputs: list[torch.Tensor],
    masks: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = structure_loss,
) -> torch.Tensor:
    """F3Net's deep supervision (structure loss by default): both predictions averaged, sides halved per level."""
    second, first, *sides = outputs
    total = (loss(first, masks) + loss(second, masks)) / 2
    return total + sum(w * loss(side, masks) for w, side in zip(F3NET_SIDE_WEIGHTS, sides))


class UNet(nn.Module):
    pixel_feature_layer = "head"  # its input: the final prediction's features (ATAL's RDS)

    def __init__(self, base: int = 32, depth: int = 4, out_channels: int = 2):
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(
            [
                nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))
                for cin, cout in zip([3, *widths[:-1]], widths)
            ]
        )
        self.up = nn.ModuleList([nn.ConvTranspose2d(cout, cout // 2, 2, stride=2) for cout in widths[:0:-1]])
        self.merge = nn.ModuleList(
            [nn.Sequential(conv_bn_relu(cout, cout // 2), conv_bn_relu(cout // 2, cout // 2)) for cout in widths[:0:-1]]
        )
        self.head = nn.Conv2d(base, out_channels, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        size = x.shape[2:]
        multiple = 2 ** (len(self.down) - 1)
        if size[0] % multiple or size[1] % multiple:
            raise SynthsodError(f"U-Net input sides must be multiples of {multiple}, got {tuple(size)}")
        skips = []
        for i, stage in enumerate(self.down):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return [self.head(x)]


SEGMENTATION_BACKBONES = ("resnet50", "resnet101")


def load_resnet_weights(resnet: nn.Module, path: str | Path, name: str) -> None:
    """Load an ImageNet ResNet checkpoint (torchvision's layout: conv1, bn1, layer1-4, fc; a plain state dict
    or one under "state_dict") into ``resnet``, the classifier ``fc`` left out."""
    if not Path(path).is_file():
        raise SynthsodError(f"backbone weights not found: {path} (an ImageNet checkpoint of {name})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        state = {
            k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")
        }
        resnet.load_state_dict(state)
    except (OSError, RuntimeError, AttributeError, EOFError) as err:
        raise SynthsodError(f"{path}: not a {name} ImageNet checkpoint in torchvision's layout ({err})") from err
    log.info("loaded %s weights from %s", name, path)


class TorchvisionSegmenter(nn.Module):
    """torchvision's FCN / DeepLab-v3 (``head``) on a dilated ResNet: logits [N, out_channels, H, W] at the
    input size. ``backbone`` and ``classifier`` are torchvision's modules (state-dict keys as torchvision's
    model without its auxiliary head); the trainer gives ``backbone`` its own learning rate."""

    HEADS = ("fcn", "deeplabv3")
    pixel_feature_layer = "classifier.4"  # both heads' last 1x1 conv: its input is the final prediction's features

    def __init__(
        self,
        head: str,
        backbone: str = "resnet101",
        backbone_weights: str | None = None,
        out_channels: int = 2,
    ):
        super().__init__()
        if head not in self.HEADS or backbone not in SEGMENTATION_BACKBONES:
            raise SynthsodError(
                f"unknown segmentation model {head}-{backbone}: heads {', '.join(self.HEADS)}, "
                f"backbones {', '.join(SEGMENTATION_BACKBONES)}"
            )
        import_torchvision()
        from torchvision.models import segmentation

        build = getattr(segmentation, f"{head}_{backbone}")
        model = build(weights=None, weights_backbone=None, num_classes=out_channels, aux_loss=False)
        self.backbone, self.classifier = model.backbone, model.classifier  # IntermediateLayerGetter, head
        if backbone_weights is None:
            log.warning("%s starts from random weights (no ImageNet checkpoint given)", backbone)
        else:
            load_resnet_weights(self.backbone, backbone_weights, backbone)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        logits = self.classifier(self.backbone(x)["out"])
        return [_resize(logits, x.shape[2:])]


class FCNResNet(TorchvisionSegmenter):
    """FCN-ResNet-101 (``backbone: resnet50`` - FCN-ResNet-50)."""

    def __init__(self, backbone: str = "resnet101", backbone_weights: str | None = None, out_channels: int = 2):
        super().__init__("fcn", backbone, backbone_weights, out_channels)


class DeepLabV3ResNet(TorchvisionSegmenter):
    """DeepLab-v3-ResNet-101 (``backbone: resnet50`` - DeepLab-v3-ResNet-50)."""

    def __init__(self, backbone: str = "resnet101", backbone_weights: str | None = None, out_channels: int = 2):
        super().__init__("deeplabv3", backbone, backbone_weights, out_channels)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "f3net": F3Net,
    "unet": UNet,
    "fcn-resnet101": FCNResNet,
    "deeplabv3-resnet101": DeepLabV3ResNet,
    "coop": CoopSaliency,
}
CHANNEL_MODELS = ("unet", "fcn-resnet101", "deeplabv3-resnet101")  # models that take out_channels


def create_sod_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise SynthsodError(f"unknown SOD model '{name}'; choose one of {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


__all__ = [
    "CHANNEL_MODELS",
    "MODELS",
    "SEGMENTATION_BACKBONES",
    "DeepLabV3ResNet",
    "F3Net",
    "FCNResNet",
    "TorchvisionSegmenter",
    "UNet",
    "create_sod_model",
    "f3net_loss",
    "load_resnet_weights",
]
