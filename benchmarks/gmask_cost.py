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

G_mask training step (:func:`train_step_cost`, ``--train-step``): seconds per step of the demo's G_mask
training (config.yaml's ``gmask`` section: the shipped 64 px scene generator, D_q at its ``input_size``,
batch 16), on the first ``fewshot.size`` scenes of the world's DEMO-TR range with their true codes, on
one thread. ``before`` is the step as it was until the layout change (the MLP head as 1x1 convolutions
on NCHW maps, D_q in NCHW), rebuilt here by patching the same trainer; ``after`` is the trainer as it
is. They run in turns, ``repeats`` rounds of ``steps`` steps each, median per step; the breakdown of
each: generator features, G_mask (fusion, attention, head: forward and backward), D_q (the adversarial
forward, its gradient to the mask, D_q's update), the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import types
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
from synthsod.generators.tiny import TINY_CONFIG, initialise_random_biggan  # noqa: E402
from synthsod.sodgan.dq import QualityDiscriminator  # noqa: E402
from synthsod.sodgan.gmask import GMask, foreground_probability, naive_fusion, upsample  # noqa: E402

TRUNCATION = 0.4
MiB = 2**20


def model_name(resolution: int) -> str:
    return f"biggan-deep-{resolution}"


def random_net(name: str) -> BigGAN:
    """A random-init ``name`` (a released BigGAN-deep architecture, or ``tiny``: the 64 px demo's), made
    finite on the CPU, with exact truncation."""
    config = TINY_CONFIG if name == "tiny" else PRETRAINED_CONFIGS[name]
    torch.manual_seed(0)
    net = initialise_random_biggan(BigGAN(BigGANConfig.from_dict(config)), warmup_batches=1, batch_size=2)
    return use_exact_truncation(net)


def build_generator(resolution: int, device: str = "cpu") -> BigGANGenerator:
    """Random-init BigGAN-deep of the released architecture (:func:`random_net`), moved to ``device``."""
    name = model_name(resolution)
    return BigGANGenerator(random_net(name), name, device=device)


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


# --- the G_mask training step -------------------------------------------------------------------------
def _demo_trainer(gmask_spec: dict, fewshot_size: int, world_seed: int, dq_input_size: int | None, legacy: bool):
    """The demo's G_mask trainer (as workflow_scripts/gmask_train.py builds it) on DEMO-TR scenes and their
    true codes; ``legacy``: patched back to the step before the layout change (NCHW maps, NCHW D_q)."""
    from synthsod.core.settings import from_section
    from synthsod.data.datasets import image_to_tensor, mask_to_tensor
    from synthsod.data.scenes import scene_arrays, split_indices
    from synthsod.generators import create_generator
    from synthsod.sodgan.gmask_train import GMaskConfig, _Trainer, stack_pairs

    generator = create_generator("scene", str(REPO / "assets" / "scene-biggan"))
    size = generator.resolution
    images, masks, classes, codes = scene_arrays(world_seed, split_indices("train", fewshot_size), size)
    pairs = [
        {
            "z": codes[i],
            "class_id": classes[i],
            "image": image_to_tensor(images[i], size),
            "mask": mask_to_tensor(m, size),
        }
        for i, m in enumerate(masks)
    ]
    cfg = from_section(GMaskConfig, gmask_spec, where="gmask", ignore=("dq", "eval_pairs", "seed"))
    dq_spec = gmask_spec.get("dq") or {}
    dq = None
    if dq_spec.get("enabled", True):
        dq = QualityDiscriminator(
            dq_spec.get("backbone", "mobilenetv3_small_100"),
            dq_spec.get("backbone_weights"),
            dq_input_size or dq_spec.get("input_size", 224),
            seed=gmask_spec.get("seed", 0),
        )
    trainer = _Trainer(generator, stack_pairs(pairs, size), 1.0, cfg, dq, torch.device("cpu"), 0)
    if legacy:

        def maps_forward(self, features):  # the MLP head as 1x1 convolutions on [N, C, R, R] maps
            reduced = self.fusion.reduce(features)
            fused = torch.cat([upsample(r, self.resolution) for r in reduced], dim=1)
            return self.head(self.attention(fused, self.fusion.pooled(reduced)))

        trainer.gmask.forward = types.MethodType(maps_forward, trainer.gmask)
        if trainer.dq is not None:
            trainer.dq.to(memory_format=torch.contiguous_format)
    return trainer


def _dq_input_backward_s(trainer, repeats: int) -> float:
    """Seconds of the adversarial term's backward through D_q to the mask (a part of the step's backward)."""
    from synthsod.sodgan.dq import adversarial_loss

    images = trainer.generate(torch.arange(trainer.cfg.batch_size) % len(trainer.data)).images
    masks = torch.rand(images.shape[0], 1, *images.shape[2:], generator=torch.Generator().manual_seed(0)) > 0.5
    times = []
    trainer.dq.requires_grad_(False)
    try:
        for _ in range(repeats + 1):
            adv = adversarial_loss(trainer.dq, images, masks.float().requires_grad_())
            start = time.perf_counter()
            adv.backward()
            times.append(time.perf_counter() - start)
    finally:
        trainer.dq.requires_grad_(True)
    return statistics.median(times[1:])


def train_step_cost(
    steps: int = 8,
    repeats: int = 3,
    warmup: int = 2,
    dq_input_size: int | None = None,
    threads: int = 1,
    dq_every: int | None = None,
) -> dict:
    """Seconds per G_mask training step on the demo setting before and after the layout change, and the
    breakdown of today's step (module docstring); prints them. ``dq_input_size`` replaces the config's D_q
    size in both, ``dq_every`` the config's in ``after`` only (``before`` is the step as it was).

    Returns ``{"settings", "load", "before_s", "after_s", "ratio" (before / after), "rounds_s", "phases_s",
    "parts_s", "fractions"}`` (the last four per ``before`` / ``after``); ``load``: the 1-minute load average
    at the start and at the end.
    """
    import yaml

    torch.set_num_threads(threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    spec = dict(config.get("gmask") or {})
    fewshot_size = int((config.get("fewshot") or {}).get("size", 48))
    world_seed = int((config.get("scenes") or {}).get("seed", 0))
    before_spec = {k: v for k, v in spec.items() if k != "dq_every"}  # every step, as it was
    after_spec = spec | ({"dq_every": dq_every} if dq_every else {})
    trainers = {
        "before": _demo_trainer(before_spec, fewshot_size, world_seed, dq_input_size, legacy=True),
        "after": _demo_trainer(after_spec, fewshot_size, world_seed, dq_input_size, legacy=False),
    }
    phases: dict[str, float] = {}

    @contextlib.contextmanager
    def timer(phase: str):
        start = time.perf_counter()
        yield
        phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - start

    load = [os.getloadavg()[0]]
    for trainer in trainers.values():
        for step in range(warmup):
            trainer.step(step)
    rounds: dict[str, list[float]] = {name: [] for name in trainers}
    round_phases: dict[str, list[dict[str, float]]] = {name: [] for name in trainers}
    for r in range(repeats):  # the two in turns, so that both see the same load
        first = warmup + r * steps
        for name, trainer in trainers.items():
            phases.clear()
            start = time.perf_counter()
            for step in range(first, first + steps):
                trainer.step(step, timer)
            rounds[name].append((time.perf_counter() - start) / steps)
            round_phases[name].append({k: v / steps for k, v in phases.items()})
    load.append(os.getloadavg()[0])
    step_s = {name: statistics.median(times) for name, times in rounds.items()}
    phase_s, parts = {}, {}
    for name, trainer in trainers.items():
        phase_s[name] = {k: statistics.median(p.get(k, 0.0) for p in round_phases[name]) for k in round_phases[name][0]}
        dq_backward = 0.0
        if trainer.dq is not None:  # only the steps with D_q have its backward (all unless dq_every > 1)
            with_dq = sum(trainer.uses_dq(s) for s in range(warmup, warmup + repeats * steps)) / (repeats * steps)
            dq_backward = _dq_input_backward_s(trainer, repeats) * with_dq
        ph = phase_s[name]
        parts[name] = {
            "features": ph.get("features", 0.0),
            "gmask": ph.get("gmask", 0.0) + ph.get("backward", 0.0) - dq_backward,
            "dq": ph.get("dq_adversarial", 0.0) + dq_backward + ph.get("dq_update", 0.0),
        }
        parts[name]["other"] = max(0.0, step_s[name] - sum(parts[name].values()))
    after = trainers["after"]
    result = {
        "settings": {
            "steps": steps,
            "repeats": repeats,
            "warmup": warmup,
            "threads": threads,
            "batch_size": after.cfg.batch_size,
            "fewshot": fewshot_size,
            "dq_input_size": None if after.dq is None else after.dq.input_size,
            "dq_every": after.cfg.dq_every,
            "feature_cache": after.cache is not None,
        },
        "load": load,
        "before_s": step_s["before"],
        "after_s": step_s["after"],
        "ratio": step_s["before"] / step_s["after"],
        "rounds_s": rounds,
        "phases_s": phase_s,
        "parts_s": parts,
        "fractions": {name: {k: v / step_s[name] for k, v in p.items()} for name, p in parts.items()},
    }
    print(
        f"G_mask training step, {result['settings']}: before {step_s['before']:.3f} s, after {step_s['after']:.3f} s,"
        f" before / after {result['ratio']:.2f}x (load {load[0]:.1f} -> {load[1]:.1f})"
    )
    for name, p in parts.items():
        print(f"  {name}: " + ", ".join(f"{k} {v * 1000:.0f} ms ({v / step_s[name]:.0%})" for k, v in p.items()))
    return result


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
    parser.add_argument("--train-step", action="store_true", help="only the G_mask training step (train_step_cost)")
    parser.add_argument("--steps", type=int, default=8, help="--train-step: steps per round")
    parser.add_argument("--dq-input-size", type=int, default=None, help="--train-step: D_q's input size (config's)")
    parser.add_argument("--dq-every", type=int, default=None, help="--train-step: gmask.dq_every after (config's)")
    parser.add_argument("--_probe", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train_step:
        return train_step_cost(
            args.steps, max(args.repeats, 3), dq_input_size=args.dq_input_size, dq_every=args.dq_every
        )
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
