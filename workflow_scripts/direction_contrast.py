"""Rule direction_contrast: the latent direction whose shift lights the image most unevenly."""

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.directions.contrast import contrast_direction
from synthsod.directions.files import save_direction
from synthsod.generators.latents import resolve_classes
from synthsod.workflow import load_generator, run_rule


def main(smk):
    spec = smk.params.contrast
    with gpu_lease() as lease:
        generator = load_generator(smk, torch_device(lease))
        direction = contrast_direction(
            generator,
            spec["truncation"],
            resolve_classes(None, generator.num_classes),
            samples=spec["samples"],
            iterations=spec["iterations"],
            seed=spec["seed"],
        )
    save_direction(smk.output.direction, direction)
    return (
        f"contrast direction of {smk.wildcards.gen} from {spec['samples']} samples, "
        f"{spec['iterations']} power iterations"
    )


run_rule(snakemake, main)  # noqa: F821
