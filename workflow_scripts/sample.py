"""Rules sample / sample_bigbigan / sample_calibrate: one shard of a sampling run, or its D_q threshold.

Imports stay backend-neutral: synthsod.synthesis.runs loads torch or TensorFlow only for the generator in use.
"""

from pathlib import Path

from synthsod.core.gpu import gpu_lease
from synthsod.synthesis.runs import RunFiles, calibrate, open_run, write_run_shard
from synthsod.workflow import run_rule


def run_files(smk) -> RunFiles:
    def first(key):
        files = smk.input.get(key, [])
        files = [files] if isinstance(files, str) else list(files)
        return files[0] if files else None

    weights = first("weights")
    # BigGAN rules depend on pytorch_model.bin (or the package cache), BigBiGAN on saved_model.pb: their folder.
    weights_dir = None if weights is None else str(Path(weights).parent)
    return RunFiles(
        weights=weights_dir,
        gmask=first("gmask"),
        dq=first("dq"),
        latents=first("latents"),
        direction=first("direction"),
        calibration=first("calibration"),
    )


def main(smk):
    run, name = smk.params.run, smk.wildcards.run
    files = run_files(smk)
    with gpu_lease() as lease:
        # a device name, not gpu.torch_device: the BigBiGAN env has no torch to import
        device = "cpu" if lease.device == "cpu" else "cuda:0"
        sampler = open_run(name, run, smk.params.generator, files, device)
        if "calibration" in smk.output.keys():
            threshold = calibrate(sampler, smk.output.calibration, smk.output.candidates, workers=smk.threads)
            keep_top = run["filters"]["dq"]["keep_top"]
            return f"run {name}: D_q threshold {threshold:.3g} keeps the top {100 * keep_top:.0f}%"
        shard = int(smk.wildcards.shard)
        # generation on a thread of its own, ahead of the filters; pairs encoded on the job's threads
        stats = write_run_shard(sampler, shard, run["rows"], files, smk.output, workers=smk.threads)
    # no time here: run_rule adds the stage's (the sampling's alone stays in the stats file)
    return (
        f"run {name} shard {shard}: kept {stats['kept']} of {stats['candidates']} candidates "
        f"(rejected {stats['rejected']})"
    )


run_rule(snakemake, main)  # noqa: F821
