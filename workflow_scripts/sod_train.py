"""Rule sod_train: train one SOD model (config sod.<name>) on synthetic runs and/or real datasets."""

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.sod.datasets import training_set
from synthsod.sod.fit import fit_sod, save_training
from synthsod.sod.point_labels import PointLabelled
from synthsod.workflow import checkpoint_path, run_rule


def main(smk):
    spec = smk.params.sod
    data = training_set(smk.input.runs, smk.input.datasets, spec["load_size"], spec["train"]["label_noise"])
    if spec["point_labels"] is not None:
        points = spec["point_labels"]
        data = PointLabelled(data, points["points"], points["radius"], points["seed"])
    checkpoint = checkpoint_path(smk.output.model, smk.params)
    with gpu_lease() as lease:
        trained = fit_sod(spec, data, device=torch_device(lease), checkpoint_path=checkpoint)
    frame = save_training(smk.output.model, smk.output.log_csv, spec, trained)
    checkpoint.unlink(missing_ok=True)

    def trend(column):  # the mean of the first 10 steps -> of the last 10
        name = "loss" if column == "loss" else f"{column} loss"  # coop: "ebm loss", "lvm loss"
        return f"{name} {frame[column].head(10).mean():.4f} -> {frame[column].tail(10).mean():.4f}"

    losses = ", ".join(trend(column) for column in frame.columns.drop("step", errors="ignore"))
    return f"{smk.wildcards.sod}: {len(data)} pairs, {len(frame)} steps, {losses}"


run_rule(snakemake, main)  # noqa: F821
