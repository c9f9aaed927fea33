"""Rule fewshot_select: choose the few-shot set D_m from the inverted training pairs."""

from synthsod.core.io import atomic_path
from synthsod.generators.latent_table import read_latent_table
from synthsod.sodgan.fewshot import apply_class_file, select_fewshot
from synthsod.workflow import run_rule


def uncertain_ids(latents, spec, model_file):
    """ATAL's image choice by a trained SOD model (torch is imported for this strategy only)."""
    from synthsod.core.gpu import gpu_lease, torch_device
    from synthsod.sod.atal.train import ActiveSpec
    from synthsod.sod.atal.train import uncertain_ids as choose
    from synthsod.sod.train import load_sod_model

    options = spec["uncertainty"]
    attack = ActiveSpec(eps=options["eps"], alpha=options["alpha"], pgd_steps=options["pgd_steps"])
    with gpu_lease() as lease:
        model, _ = load_sod_model(model_file, torch_device(lease))
        return choose(latents, model, spec["size"], options["size"], attack)


def main(smk):
    spec = smk.params.fewshot
    latents = read_latent_table(smk.input.latents)
    if spec["class_file"]:
        latents = apply_class_file(latents, spec["class_file"])
    chosen = uncertain_ids(latents, spec, smk.input.model[0]) if spec["strategy"] == "uncertain" else None
    selection = select_fewshot(latents, spec["strategy"], spec["size"], spec["seed"], chosen)
    with atomic_path(smk.output.selection) as tmp:
        selection.to_parquet(tmp, index=False)
    return (
        f"few-shot set: {len(selection)} of {len(latents)} pairs ({spec['strategy']}), "
        f"{selection['class'].nunique()} classes, mean reconstruction error {selection['recon_error'].mean():.4f}"
    )


run_rule(snakemake, main)  # noqa: F821
