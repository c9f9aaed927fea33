"""Rule demo_split: write one demo split (tiny-generator images, rule-based masks) in DUTS layout."""

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.synthesis.demo import MaskRule, write_demo_split
from synthsod.workflow import load_generator, run_rule


def main(smk):
    demo, split, gen = smk.params.demo, smk.params.split, smk.params.generator
    with gpu_lease() as lease:
        generator = load_generator(smk, torch_device(lease))
        tried = write_demo_split(
            generator,
            smk.output.images,
            smk.output.masks,
            size=split["size"],
            first_index=split["first_index"],
            seed=demo["seed"],
            truncation=demo["truncation"],
            classes=demo["classes"],
            rule=MaskRule(**demo["mask"]),
            jpeg_quality=demo["jpeg_quality"],
            batch_size=gen["batch_size"],
        )
    return f"demo split {smk.wildcards.split}: {split['size']} pairs written from {tried} samples on {lease.device}"


run_rule(snakemake, main)  # noqa: F821
