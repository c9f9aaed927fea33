"""Rule tiny_generator: build the demo generator from its seed, in from_pretrained layout."""

from pathlib import Path

from synthsod.generators.tiny import write_tiny_biggan
from synthsod.workflow import run_rule


def main(smk):
    spec = smk.params.generator
    write_tiny_biggan(Path(smk.output.weights).parent, seed=spec["seed"], gain=spec["gain"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
