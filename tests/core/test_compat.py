"""torchvision / timm import on this torch build (CPU-only torch with PyPI's CUDA-linked torchvision)."""

import pytest
import torch

from synthsod.core.compat import import_timm, import_torchvision


def test_torchvision_and_timm_import_and_build_a_backbone():
    torchvision = import_torchvision()
    assert import_torchvision() is torchvision  # idempotent
    timm = import_timm()
    model = timm.create_model("mobilenetv3_small_100", pretrained=False, num_classes=0, in_chans=4)
    features = getattr(model, "head_hidden_size", None) or model.num_features  # MobileNetV3 has a 1x1 head conv
    assert model.eval()(torch.zeros(1, 4, 32, 32)).shape == (1, features)


def test_nms_operator_is_declared():
    import_torchvision()
    boxes, scores = torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0])
    try:
        kept = torch.ops.torchvision.nms(boxes, scores, 0.5)
    except (RuntimeError, NotImplementedError) as err:  # declared without a kernel on CPU-only torch
        assert "nms" in str(err)
    else:  # a matching torchvision build brings the real kernel
        assert kept.tolist() == [0]


def test_backbone_factory_rejects_unknown_names_and_missing_weights(tmp_path):
    from synthsod.core.backbones import create_backbone
    from synthsod.errors import SynthsodError

    with pytest.raises(SynthsodError, match="unknown timm backbone"):
        create_backbone("no_such_net")
    with pytest.raises(SynthsodError, match="not found"):
        create_backbone("mobilenetv3_small_100", weights=str(tmp_path / "missing.pth"))
