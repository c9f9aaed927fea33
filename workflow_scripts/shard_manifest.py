"""Rule shard_manifest: a run's manifest.json (shards, sha256, resolved config) and filter_report.json."""

import json
from pathlib import Path

from synthsod.core.io import write_json_atomic
from synthsod.synthesis.sampling import merge_stats
from synthsod.synthesis.shards import write_manifest
from synthsod.workflow import run_rule


def main(smk):
    run_dir = Path(smk.output.manifest).parent
    config = {"run": smk.wildcards.run, **smk.params.run, "generator_spec": smk.params.generator}
    write_manifest(run_dir, smk.input.shards, config)
    report = merge_stats([json.loads(Path(path).read_text()) for path in smk.input.stats])
    write_json_atomic(smk.output.report, {"run": smk.wildcards.run, **report})
    return (
        f"run {smk.wildcards.run}: {report['kept']} pairs kept of {report['candidates']} candidates "
        f"({100 * (report['kept_rate'] or 0):.1f}%); rejected {report['rejected']}"
    )


run_rule(snakemake, main)  # noqa: F821
