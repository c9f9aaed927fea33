"""Rule sod_train: train one SOD model (config sod.<name>) on synthetic runs and/or real datasets."""

import pandas as pd
import torch

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.core.io import atomic_path
from synthsod.core.settings import from_section
from synthsod.names import COOP
from synthsod.sod.coop.train import train_coop
from synthsod.sod.datasets import training_set
from synthsod.sod.point_labels import PointLabelled
from synthsod.sod.predict import prediction_channel
from synthsod.sod.train import Recipe, save_sod_model, train_sod
from synthsod.workflow import checkpoint_path, run_rule

VALIDATION_PAIRS = 16  # training pairs on which a CAS model's saliency channel is chosen


def main(smk):
    spec = smk.params.sod
    data = training_set(smk.input.runs, smk.input.datasets, spec["load_size"])
    if spec["point_labels"] is not None:
        points = spec["point_labels"]
        data = PointLabelled(data, points["points"], points["radius"], points["seed"])
    history = []
    checkpoint = checkpoint_path(smk.output.model, smk.params)
    model_kwargs = dict(spec["model_options"])
    if spec["model"] in ("f3net", COOP):
        model_kwargs["backbone_weights"] = spec["backbone_weights"]
    with gpu_lease() as lease:
        device = torch_device(lease)
        if spec["model"] == COOP:
            model_kwargs.update(image_size=spec["eval_size"], config=spec["coop"])
            model = train_coop(
                data,
                from_section(Recipe, spec["recipe"], where="sod.recipe"),
                seed=spec["seed"],
                model_kwargs=model_kwargs,
                device=device,
                checkpoint_path=checkpoint,
                on_step=lambda step, losses: history.append({"step": step, **losses}),
            )
            channel = None
        else:
            model = train_sod(
                spec["model"],
                spec["loss"],
                data,
                from_section(Recipe, spec["recipe"], where="sod.recipe"),
                seed=spec["seed"],
                model_kwargs=model_kwargs,
                device=device,
                checkpoint_path=checkpoint,
                on_step=lambda step, value: history.append({"step": step, "loss": value}),
            )
            items = [data[i] for i in range(min(VALIDATION_PAIRS, len(data)))]
            channel = prediction_channel(
                model,
                spec["loss"],
                torch.stack([it["image"] for it in items]),
                torch.stack([it["mask"] for it in items]),
            )
    save_sod_model(smk.output.model, model, spec["model"], spec["loss"], model_kwargs, channel)
    frame = pd.DataFrame(history)
    with atomic_path(smk.output.log_csv) as tmp:
        frame.to_csv(tmp, index=False)
    checkpoint.unlink(missing_ok=True)

    def trend(column):  # the mean of the first 10 steps -> of the last 10
        name = "loss" if column == "loss" else f"{column} loss"  # coop: "ebm loss", "lvm loss"
        return f"{name} {frame[column].head(10).mean():.4f} -> {frame[column].tail(10).mean():.4f}"

    losses = ", ".join(trend(column) for column in frame.columns.drop("step", errors="ignore"))
    return f"{smk.wildcards.sod}: {len(data)} pairs, {len(frame)} steps, {losses}"


run_rule(snakemake, main)  # noqa: F821
