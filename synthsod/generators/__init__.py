"""Generator backends behind one interface: ``create_generator(model, weights, taps, device)``.

Models: the pretrained BigGAN-deep 128 / 256 / 512; ``scene``, a small BigGAN-deep trained on the
scene world (:mod:`synthsod.data.scenes`) by :mod:`synthsod.generators.train` and shipped in
``assets/scene-biggan``; and ``tiny`` (a small random-init BigGAN-deep built by
:mod:`synthsod.generators.tiny` for fast tests). All load from the same ``from_pretrained`` layout,
so the demo exercises the same loading path as the real weights, sha256 check included.
"""

from __future__ import annotations

import importlib

from synthsod.names import BUILT_MODELS, MODELS, PRETRAINED_MODELS, SCENE, TINY

# Everything else loads on first use, so that importing the package (for the names above, or the torch-free
# weights module) pulls in neither torch nor pytorch-pretrained-biggan.
_LAZY = {
    "BigGANGenerator": ".biggan",
    "GeneratorOutput": ".base",
    "create_generator": ".factory",
    "resolve_classes": ".latents",
    "sample_latents": ".latents",
}

__all__ = ["BUILT_MODELS", "MODELS", "PRETRAINED_MODELS", "SCENE", "TINY", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
