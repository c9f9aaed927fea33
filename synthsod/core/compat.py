"""Make PyPI's torchvision importable on a CPU-only torch (needed by timm).

PyPI's torchvision wheels are built against CUDA torch. On the CPU-only torch build their compiled
extension does not load, so the custom operators ``torchvision::nms`` and ``torchvision::qnms`` are
never declared, and ``import torchvision`` fails while registering fake kernels for them
("operator torchvision::nms does not exist"). When, and only when, that happens we declare the two
operator schemas through ``torch.library`` (no kernels: calling them raises) and import again.
synthsod never calls NMS; timm only needs torchvision's Python parts. Where the extension loads
(CUDA machines, matching builds) nothing is changed.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library: torch.library.Library | None = None  # kept alive: the declarations live as long as it does


def _declare_missing_ops() -> None:
    global _library
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        _library.define(schema)


def import_torchvision() -> ModuleType:
    """``import torchvision``, declaring its two missing operators first if this torch needs it."""
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::nms does not exist" not in str(err) or _library is not None:
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # drop the half-initialised package before importing it again
        _declare_missing_ops()
        import torchvision
    return torchvision


def import_timm() -> ModuleType:
    """``import timm`` (which imports torchvision) on any torch build."""
    import_torchvision()
    import timm

    return timm
