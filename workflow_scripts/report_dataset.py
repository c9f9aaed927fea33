"""Rule report_dataset: SODGAN's Fig. 5 statistics of every synthetic run against the real training set."""

import logging
from pathlib import Path

import pandas as pd

from synthsod.core.io import write_json_atomic
from synthsod.generators.latent_table import class_map, read_latent_table
from synthsod.reporting.dataset_stats import collect
from synthsod.reporting.figures import DATASET_FIGURES, dataset_figures, dataset_pairs, run_pairs
from synthsod.workflow import run_rule

log = logging.getLogger("synthsod")


def main(smk):
    settings = smk.params.statistics
    options = dict(grid=settings["grid"], bins=settings["contrast_bins"], limit=settings["images"])
    stats = [
        collect(run, run_pairs(Path(manifest).parent), **options)
        for run, manifest in zip(smk.params.runs, smk.input.manifests)
    ]
    classes = class_map(read_latent_table(smk.input.classes, ["class"])) if "classes" in smk.input.keys() else None
    real = dataset_pairs(pd.read_parquet(smk.input.dataset), classes)
    stats.append(collect(smk.params.dataset, real, **options))
    dataset_figures(stats, {name: smk.output[name] for name in DATASET_FIGURES})
    summary = {s.name: s.summary() for s in stats}
    write_json_atomic(smk.output.summary, summary)
    for name, numbers in summary.items():
        log.info("%s: %s", name, numbers)
    return f"dataset statistics of {', '.join(f'{s.name} ({s.count} pairs)' for s in stats)}"


run_rule(snakemake, main)  # noqa: F821
