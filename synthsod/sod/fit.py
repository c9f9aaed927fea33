"""A configured SOD training from start to files: the model registry's trainer, the saliency channel, the
model file and the loss log (the ``sod:`` section of the config, as rules sod_train and atal_train read it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset

from synthsod.core.io import atomic_path
from synthsod.core.settings import from_section
from synthsod.errors import SynthsodError
from synthsod.names import COOP
from synthsod.sod.coop.train import train_coop
from synthsod.sod.losses import CAS_ALPHA, OUTPUT_CHANNELS
from synthsod.sod.models import CHANNEL_MODELS
from synthsod.sod.predict import prediction_channel
from synthsod.sod.train import Recipe, save_sod_model, train_sod

VALIDATION_PAIRS = 16  # training pairs on which a CAS model's saliency channel is chosen
# models whose backbone starts from an ImageNet file (backbone_weights)
BACKBONE_MODELS = ("f3net", "fcn-resnet101", "deeplabv3-resnet101", COOP)


@dataclass
class Trained:
    """A finished training: the model, the options it was built with, its saliency channel, its losses."""

    model: torch.nn.Module
    model_options: dict
    channel: int | None
    history: list[dict]


def model_options(spec: Mapping[str, Any]) -> dict:
    """The model's constructor options: ``model_options`` plus the backbone's ImageNet file where it has one,
    and, for CAS on a model that takes ``out_channels``, M from ``cas.channels`` (so the saved model file
    rebuilds with its M channels)."""
    options = dict(spec["model_options"])
    if spec["model"] in BACKBONE_MODELS:
        options["backbone_weights"] = spec["backbone_weights"]
    if spec["loss"] == "cas" and spec["model"] in CHANNEL_MODELS:
        channels = (spec.get("cas") or {}).get("channels", OUTPUT_CHANNELS["cas"])
        if options.setdefault("out_channels", channels) != channels:
            raise SynthsodError(
                f"sod: model_options.out_channels ({options['out_channels']}) and cas.channels ({channels}) differ"
            )
    return options


def loss_options(spec: Mapping[str, Any]) -> dict | None:
    """The loss's keyword arguments from the training's settings (CAS: ``alpha``, the paper's 0.1 by default)."""
    if spec["loss"] == "cas":
        return {"alpha": (spec.get("cas") or {}).get("alpha", CAS_ALPHA)}
    return None


def fit_sod(
    spec: Mapping[str, Any],
    data: Dataset,
    *,
    device: torch.device | str = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
) -> Trained:
    """Train the model of a ``sod.<name>`` section on ``data`` (the coop model by its own algorithm)."""
    recipe = from_section(Recipe, spec["recipe"], where="sod.recipe")
    options = model_options(spec)
    history: list[dict] = []
    if spec["model"] == COOP:
        options.update(image_size=spec["eval_size"], config=spec["coop"])
    run = dict(seed=spec["seed"], model_kwargs=options, device=device, checkpoint_path=checkpoint_path)
    if spec["model"] == COOP:
        model = train_coop(data, recipe, on_step=lambda step, losses: history.append({"step": step, **losses}), **run)
        return Trained(model, options, None, history)
    model = train_sod(
        spec["model"],
        spec["loss"],
        data,
        recipe,
        loss_options=loss_options(spec),
        on_step=lambda step, value: history.append({"step": step, "loss": value}),
        **run,
    )
    items = [data[i] for i in range(min(VALIDATION_PAIRS, len(data)))]
    images, masks = torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items])
    return Trained(model, options, prediction_channel(model, spec["loss"], images, masks), history)


def save_training(
    model_path: str | os.PathLike,
    log_path: str | os.PathLike,
    spec: Mapping[str, Any],
    trained: Trained,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Write the model file (:func:`synthsod.sod.train.save_sod_model`) and the loss log (CSV); return the log."""
    save_sod_model(model_path, trained.model, spec["model"], spec["loss"], trained.model_options, trained.channel)
    frame = pd.DataFrame(trained.history, columns=columns)
    with atomic_path(log_path) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
