"""Rule scene_split: write one split of the scene world in DUTS layout (JPEG images, PNG masks)."""

from synthsod.data.scenes import write_duts_split
from synthsod.workflow import run_rule


def main(smk):
    world, split = smk.params.world, smk.params.split
    count = write_duts_split(
        smk.output.images,
        smk.output.masks,
        seed=world["seed"],
        split=split["range"],
        size=split["size"],
        first=split["first"],
        resolution=world["size"],
        jpeg_quality=world["jpeg_quality"],
    )
    return f"scene split {smk.wildcards.split}: {count} scenes of range '{split['range']}'"


run_rule(snakemake, main)  # noqa: F821
