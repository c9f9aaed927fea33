"""Rule sod_train: train one SOD model (config sod.<name>) on synthetic runs and/or real datasets."""

import logging
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import ConcatDataset

from synthsod.data import ManifestDataset, ShardDataset
from synthsod.gpu import gpu_lease, torch_device
from synthsod.io import atomic_path
from synthsod.sod_predict import prediction_channel
from synthsod.sod_train import Recipe, save_sod_model, train_sod
from synthsod.workflow import checkpoint_path, run_rule

log = logging.getLogger("synthsod")
VALIDATION_PAIRS = 16  # training pairs on which a CAS model's saliency channel is chosen


def main(smk):
    spec = smk.params.sod
    size = spec["load_size"]
    parts = [ShardDataset(Path(m).parent, size=size) for m in smk.input.runs]
    parts += [ManifestDataset(pd.read_parquet(m), size) for m in smk.input.datasets]
    data = ConcatDataset(parts)
    history = []
    with gpu_lease() as lease:
        device = torch_device(lease)
        model_kwargs = dict(spec["model_options"])
        if spec["model"] == "f3net":
            model_kwargs["backbone_weights"] = spec["backbone_weights"]
        model = train_sod(spec["model"], spec["loss"], data, Recipe(**spec["recipe"]), seed=spec["seed"],
                          model_kwargs=model_kwargs, device=device,
                          checkpoint_path=checkpoint_path(smk.output.model, smk.params),
                          on_step=lambda step, value: history.append({"step": step, "loss": value}))
        items = [data[i] for i in range(min(VALIDATION_PAIRS, len(data)))]
        channel = prediction_channel(model, spec["loss"], torch.stack([it["image"] for it in items]),
                                     torch.stack([it["mask"] for it in items]))
    save_sod_model(smk.output.model, model, spec["model"], spec["loss"], model_kwargs, channel)
    with atomic_path(smk.output.log_csv) as tmp:
        pd.DataFrame(history, columns=["step", "loss"]).to_csv(tmp, index=False)
    checkpoint_path(smk.output.model, smk.params).unlink(missing_ok=True)
    losses = [h["loss"] for h in history]
    log.info("%s: %d pairs, %d steps, loss %.4f -> %.4f", smk.wildcards.sod, len(data), len(losses),
             sum(losses[:10]) / max(len(losses[:10]), 1), sum(losses[-10:]) / max(len(losses[-10:]), 1))


run_rule(snakemake, main)  # noqa: F821
