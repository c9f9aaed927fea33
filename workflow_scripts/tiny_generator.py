"""Rule tiny_generator: build the demo generator from its seed, in from_pretrained layout."""

from pathlib import Path

from synthsod.generators.tiny import write_tiny_biggan
from synthsod.workflow import run_rule


def main(smk):
    spec = smk.params.generator
    folder = Path(smk.output.weights).parent
    write_tiny_biggan(folder, seed=spec["seed"], gain=spec["gain"])
    return f"tiny generator (seed {spec['seed']}, gain {spec['gain']}) written to {folder}"


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
