"""Rule evaluate: the metrics and curves of one training's predictions on one benchmark, under the
protocol evaluation.protocol names."""

import numpy as np
import pandas as pd

from synthsod.core.io import atomic_path, write_json_atomic
from synthsod.evaluation.evaluate import evaluate_manifest
from synthsod.workflow import run_rule


def main(smk):
    protocol = smk.params.protocol
    result = evaluate_manifest(smk.input.predictions, pd.read_parquet(smk.input.manifest), protocol=protocol)
    write_json_atomic(
        smk.output.metrics,
        {
            "training": smk.wildcards.sod,
            "benchmark": smk.wildcards.bench,
            "protocol": protocol,
            "images": result.evaluated,
            "resized": result.resized,
            "metrics": result.metrics,
        },
    )
    curves = pd.DataFrame({"threshold": np.arange(255, -1, -1), **result.curves})  # curves run from 255 down
    with atomic_path(smk.output.curves) as tmp:
        curves.to_csv(tmp, index=False)
    m = result.metrics
    return (
        f"{smk.wildcards.sod} on {smk.wildcards.bench} ({result.evaluated} images, {protocol} protocol): "
        f"max F {m['max_f']:.4f}, IoU {m['iou']:.4f}, MAE {m['mae']:.4f}, S {m['s_measure']:.4f}"
    )


run_rule(snakemake, main)  # noqa: F821
