"""Rule atal_train: a point-supervised SOD training grown by ATAL's active queries, and its point tables."""

import logging
from pathlib import Path

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.core.io import atomic_path
from synthsod.core.settings import from_section
from synthsod.sod.atal.train import ActiveSpec, train_active
from synthsod.sod.datasets import training_set
from synthsod.sod.fit import Trained, model_options, save_training
from synthsod.sod.train import Recipe
from synthsod.workflow import run_rule

log = logging.getLogger("synthsod")


def main(smk):
    spec = smk.params.sod
    data = training_set(smk.input.runs, smk.input.datasets, spec["load_size"], spec["train"]["label_noise"])
    points_dir = Path(smk.output.points)
    points_dir.mkdir(parents=True, exist_ok=True)
    history = []

    def write_round(round_index, table):
        with atomic_path(points_dir / f"round-{round_index}.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        log.info(
            "%s round %d: %d points on %d images (%.1f per image)",
            smk.wildcards.sod,
            round_index,
            len(table),
            table["id"].nunique(),
            len(table) / table["id"].nunique(),
        )

    options = model_options(spec)
    with gpu_lease() as lease:
        model = train_active(
            spec["model"],
            spec["loss"],
            data,
            from_section(Recipe, spec["recipe"], where="sod.recipe"),
            from_section(ActiveSpec, spec["active"], where="sod.active"),
            seed=spec["seed"],
            model_kwargs=options,
            device=torch_device(lease),
            on_round=write_round,
            on_step=lambda r, step, value: history.append({"round": r, "step": step, "loss": value}),
        )
    trained = Trained(model, options, None, history)
    frame = save_training(smk.output.model, smk.output.log_csv, spec, trained, columns=["round", "step", "loss"])
    last_round = frame[frame["round"] == frame["round"].max()]["loss"]
    return (
        f"{smk.wildcards.sod}: {frame['round'].nunique()} rounds on {len(data)} images; last round's loss "
        f"{last_round.head(10).mean():.4f} -> {last_round.tail(10).mean():.4f}"
    )


run_rule(snakemake, main)  # noqa: F821
