"""Rule scene_baseline: a global luminance threshold (Otsu) vs a U-Net trained on real scenes."""

from synthsod.core.io import write_json_atomic
from synthsod.core.settings import from_section
from synthsod.evaluation.baselines import threshold_vs_unet
from synthsod.sod.train import Recipe
from synthsod.workflow import run_rule


def main(smk):
    spec = smk.params.baseline
    result = threshold_vs_unet(
        smk.input.train,
        smk.input.test,
        recipe=from_section(Recipe, spec["recipe"], where="scenes.baseline.recipe"),
        size=spec["size"],
        model_options=spec["model_options"],
        seed=spec["seed"],
    )
    write_json_atomic(smk.output[0], result)
    return (
        f"scene baseline on {spec['benchmark']}: max F Otsu {result['otsu']['max_f']:.3f}, "
        f"U-Net {result['unet']['max_f']:.3f}"
    )


run_rule(snakemake, main)  # noqa: F821
