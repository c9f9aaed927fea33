"""Where generator weights live, and what to tell the user when they are missing (no torch, no TF).

BigGAN weights load from a directory in ``from_pretrained`` layout or from pytorch-pretrained-biggan's
download cache (``$PYTORCH_PRETRAINED_BIGGAN_CACHE``, default ``~/.pytorch_pretrained_biggan``), found
through the cache's metadata files: the package's own lookup sends a HEAD request even for a cached
file. BigBiGAN is an extracted TF-Hub SavedModel directory. The start-up checks of the workflow call
these functions while the Snakefile parses, so this module imports neither torch nor TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from synthsod.names import PRETRAINED_MODELS, WEIGHT_FILES

WEIGHTS_NAME, CONFIG_NAME = WEIGHT_FILES
# pytorch-pretrained-biggan's download addresses (its PRETRAINED_*_ARCHIVE_MAP; a test keeps them equal)
_S3 = "https://s3.amazonaws.com/models.huggingface.co/biggan"
PRETRAINED_MODEL_ARCHIVE_MAP = {m: f"{_S3}/{m}-pytorch_model.bin" for m in PRETRAINED_MODELS}
PRETRAINED_CONFIG_ARCHIVE_MAP = {m: f"{_S3}/{m}-config.json" for m in PRETRAINED_MODELS}
BIGBIGAN_MODULE_URL = "https://tfhub.dev/deepmind/bigbigan-resnet50/1"


def package_cache_dir() -> Path:
    return Path(os.environ.get("PYTORCH_PRETRAINED_BIGGAN_CACHE", Path.home() / ".pytorch_pretrained_biggan"))


def _cached_file(url: str, cache_dir: Path) -> Path | None:
    # The package stores <sha256(url)>[.<sha256(etag)>] with a sidecar .json naming the url.
    for meta in sorted(cache_dir.glob("*.json")):
        try:
            if json.loads(meta.read_text()).get("url") == url and meta.with_suffix("").exists():
                return meta.with_suffix("")
        except (OSError, ValueError):
            continue
    return None


def missing_weights_message(model: str, weights_dir: str | os.PathLike | None) -> str:
    where = f"the directory {weights_dir}" if weights_dir else f"the package cache {package_cache_dir()}"
    text = f"BigGAN weights for '{model}' not found in {where}."
    if model in PRETRAINED_MODELS:
        text += (
            f" Put {WEIGHTS_NAME} and {CONFIG_NAME} in one directory and set generators.<name>.weights to it;"
            f" on a machine with internet they are {PRETRAINED_MODEL_ARCHIVE_MAP[model]} and"
            f" {PRETRAINED_CONFIG_ARCHIVE_MAP[model]} (or run BigGAN.from_pretrained('{model}') there once"
            " and copy its cache directory)."
        )
    return text


def locate_weights(model: str, weights_dir: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """(weights file, config file) for ``model``, or None when they are not on disk."""
    if weights_dir is not None:
        weights, config = Path(weights_dir) / WEIGHTS_NAME, Path(weights_dir) / CONFIG_NAME
        return (weights, config) if weights.is_file() and config.is_file() else None
    if model not in PRETRAINED_MODELS:
        return None
    cache = package_cache_dir()
    weights = _cached_file(PRETRAINED_MODEL_ARCHIVE_MAP[model], cache)
    config = _cached_file(PRETRAINED_CONFIG_ARCHIVE_MAP[model], cache)
    return (weights, config) if weights and config else None


def bigbigan_module_problem(module_dir: str | os.PathLike) -> str | None:
    """Why ``module_dir`` cannot be the BigBiGAN module (checked without TensorFlow), or None."""
    module_dir = Path(module_dir)
    if not module_dir.is_dir():
        reason = "does not exist"
    elif not (module_dir / "saved_model.pb").is_file():
        reason = "has no saved_model.pb"
    else:
        return None
    return (
        f"BigBiGAN module directory {module_dir} {reason}. Download the TF-Hub module {BIGBIGAN_MODULE_URL} "
        f"(append ?tf-hub-format=compressed for a .tar.gz) on a machine with internet, extract it into "
        f"that directory, or set generators.<name>.weights to where it is."
    )
