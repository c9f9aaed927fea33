"""Rule generator_train: train the scene generator (and keep its discriminator), resumable."""

from pathlib import Path

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.generators.train import build_scene_generator
from synthsod.workflow import run_rule


def main(smk):
    world = smk.params.world
    with gpu_lease() as lease:
        config = build_scene_generator(
            Path(smk.output.weights).parent,
            smk.params.checkpoint_dir,
            world_seed=world["seed"],
            resolution=world["size"],
            settings=smk.params.train,
            device=torch_device(lease),
        )
    return f"scene generator: {config.total_steps} steps on {lease.device}"


run_rule(snakemake, main)  # noqa: F821
