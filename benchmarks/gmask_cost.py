"""What G_mask and D_q add to BigGAN-deep sampling, and what the fused fusion saves (CPU).

Usage: ``python benchmarks/gmask_cost.py [--resolutions 128 256] [--batch 2] [--repeats 2]``

Models are random-init BigGAN-deep 128 / 256 with the released architectures (``PRETRAINED_CONFIGS``),
so no weights are needed; costs do not depend on the weights' values. Per image it measures:

* ``bare``: the generator alone (``with_features=False``);
* ``pipeline``: generator with feature taps + default G_mask (fused fusion, full map) + D_q score;
* the fusion step alone, fused (reduce at native resolution, upsample k channels) vs naive (upsample
  every tap to R, then the same 1x1 convolutions), batch 1.

Memory of the fusion step, two ways:

* analytic: bytes of the largest tensors it creates. Naive: the biggest upsampled tap (our per-tap
  implementation of eq 6) and the full upsampled stack (sum of all taps' channels x R x R, what an
  implementation that upsamples and concatenates first holds); fused: the reduced maps plus f*.
* measured: the rise of the peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``
  just before the call) over the resident size at that moment, in a fresh subprocess per case that holds only random
  features of the taps' shapes and the module (so no earlier allocation hides the peak). RSS counts
  whole pages and allocator slack, so it is an upper bound on the tensors' bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytorch_pretrained_biggan import BigGAN, BigGANConfig  # noqa: E402

from synthsod.generators.biggan import (  # noqa: E402
    PRETRAINED_CONFIGS,
    BigGANGenerator,
    default_taps,
    tap_shapes,
    use_exact_truncation,
)
from synthsod.generators.latents import sample_latents  # noqa: E402
from synthsod.generators.tiny import initialise_random_biggan  # noqa: E402
from synthsod.sodgan.dq import QualityDiscriminator  # noqa: E402
from synthsod.sodgan.gmask import GMask, foreground_probability, naive_fusion  # noqa: E402

TRUNCATION = 0.4
MiB = 2**20


def model_name(resolution: int) -> str:
    return f"biggan-deep-{resolution}"


def build_generator(resolution: int, device: str = "cpu") -> BigGANGenerator:
    """Random-init BigGAN-deep of the released architecture, made finite on the CPU, then moved to ``device``."""
    name = model_name(resolution)
    torch.manual_seed(0)
    net = initialise_random_biggan(
        BigGAN(BigGANConfig.from_dict(PRETRAINED_CONFIGS[name])), warmup_batches=1, batch_size=2
    )
    return BigGANGenerator(use_exact_truncation(net), name, device=device)


def timed(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call (the best is the least disturbed)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def feature_shapes(resolution: int) -> dict[int, tuple[int, int, int]]:
    config = BigGANConfig.from_dict(PRETRAINED_CONFIGS[model_name(resolution)])
    return tap_shapes(config, default_taps(config))


def analytic_bytes(resolution: int, k: int) -> dict[str, float]:
    shapes = feature_shapes(resolution)
    r2 = resolution * resolution * 4  # fp32 bytes per channel at full resolution
    return {
        "naive_tap_MiB": max(c for c, _, _ in shapes.values()) * r2 / MiB,
        "naive_stack_MiB": sum(c for c, _, _ in shapes.values()) * r2 / MiB,
        "fused_MiB": (sum(k * h * w * 4 for _, h, w in shapes.values()) + len(shapes) * k * r2) / MiB,
    }


# --- the memory probe runs in its own process --------------------------------------------------------
def _status_bytes(field: str) -> int:
    """VmRSS / VmHWM (peak RSS) of this process from /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024  # kB


def _reset_peak_rss() -> None:
    """Make VmHWM restart from the current RSS (Linux >= 4.0), so the peak is this call's alone."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_probe(resolution: int, mode: str) -> dict[str, float]:
    """Peak-RSS rise (MiB) of one fusion call on one image; run in a fresh process."""
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    torch.manual_seed(0)
    gmask = GMask(feature_shapes(resolution), resolution).eval()
    features = {t: torch.randn(1, *s) for t, s in feature_shapes(resolution).items()}
    _reset_peak_rss()
    before = _status_bytes("VmRSS")
    with torch.no_grad():
        out = naive_fusion(gmask.fusion, features) if mode == "naive" else gmask.fusion(features)
    peak = _status_bytes("VmHWM")
    return {"rise_MiB": (peak - before) / MiB, "out_shape": list(out.shape)}


def measure_memory(resolution: int, mode: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--_probe", str(resolution), mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["rise_MiB"]


# --- timings -----------------------------------------------------------------------------------------
def measure(resolution: int, batch: int, repeats: int) -> dict[str, float]:
    gen = build_generator(resolution)
    torch.manual_seed(0)
    gmask = GMask(gen.feature_shapes, gen.resolution).eval()
    dq = QualityDiscriminator().eval()
    z, ids = sample_latents(0, range(batch), gen.z_dim, TRUNCATION, torch.arange(1000).numpy())

    def bare():
        gen.generate(z, ids, TRUNCATION, with_features=False)

    def pipeline():
        out = gen.generate(z, ids, TRUNCATION, with_features=True)
        with torch.no_grad():
            probs = foreground_probability(gmask(out.features))
        dq.score(out.images, probs)

    one = gen.generate(z[:1], ids[:1], TRUNCATION, with_features=True)

    def fused():
        with torch.no_grad():
            gmask.fusion(one.features)

    def naive():
        with torch.no_grad():
            naive_fusion(gmask.fusion, one.features)

    row = {
        "bare_s": timed(bare, repeats) / batch,
        "pipeline_s": timed(pipeline, repeats) / batch,
        "fused_s": timed(fused, repeats),
        "naive_s": timed(naive, max(1, repeats - 1)),
        "gmask_params": gmask.num_parameters(),
    }
    row.update(analytic_bytes(resolution, gmask.fusion.channels_per_tap))
    row["fused_rss_MiB"] = measure_memory(resolution, "fused")
    row["naive_rss_MiB"] = measure_memory(resolution, "naive")
    return row


def markdown(rows: dict[int, dict[str, float]]) -> str:
    lines = [
        "| model | bare G s/img | G+G_mask+D_q s/img | overhead x | fusion fused s | fusion naive s | naive/fused time"
        " | fused MiB (analytic / RSS) | naive MiB (per-tap / stack / RSS) | naive/fused mem (analytic) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res, r in rows.items():
        lines.append(
            f"| {model_name(res)} | {r['bare_s']:.3f} | {r['pipeline_s']:.3f} | {r['pipeline_s'] / r['bare_s']:.2f}"
            f" | {r['fused_s']:.4f} | {r['naive_s']:.3f} | {r['naive_s'] / r['fused_s']:.0f}"
            f" | {r['fused_MiB']:.1f} / {r['fused_rss_MiB']:.0f}"
            f" | {r['naive_tap_MiB']:.0f} / {r['naive_stack_MiB']:.0f} / {r['naive_rss_MiB']:.0f}"
            f" | {r['naive_tap_MiB'] / r['fused_MiB']:.0f} (stack {r['naive_stack_MiB'] / r['fused_MiB']:.0f})|"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print its table; return the settings and each model's row (or the probe's result)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256], choices=[128, 256, 512])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--_probe", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._probe:
        probe = memory_probe(int(args._probe[0]), args._probe[1])
        print(json.dumps(probe))
        return probe
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU fp32, batch {args.batch},"
        f" best of {args.repeats} after a warm-up",
        flush=True,
    )
    rows = {}
    for res in args.resolutions:
        rows[res] = measure(res, args.batch, args.repeats)
        print(f"{model_name(res)}: {json.dumps({k: round(v, 4) for k, v in rows[res].items()})}", flush=True)
    print()
    print(markdown(rows))
    settings = {k: v for k, v in vars(args).items() if k != "_probe"}
    return {"settings": settings, "results": {model_name(res): row for res, row in rows.items()}}


if __name__ == "__main__":
    main()
