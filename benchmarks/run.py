"""Every stage benchmark in one run: one JSON, one Markdown table, and the machine they came from.

Usage: ``python benchmarks/run.py [--quick] [--only STAGE ...] [--out-dir benchmarks/out]``

It calls the benchmark modules of this folder in this process (each prints its own tables as it goes;
their docstrings say exactly what they measure) and collects their key figures:

* ``sampling`` (:mod:`sample_cost`): the G_mask pipeline (generator with feature taps, G_mask,
  components and size filters, D_q on every candidate) against the bare generator forward, and the
  direction-shift pipeline against two bare forwards; ratio: time per pair / bare time;
* ``fusion`` (:mod:`gmask_cost`): G_mask's fused feature fusion against the naive one (every tap
  upsampled to the output resolution), in time (ratio naive / fused time) and in peak memory (the
  peak-RSS rise of one call in a fresh process; ratio naive / fused);
* ``shard_writer`` (from the same :mod:`sample_cost` run): :func:`synthsod.synthesis.shards.write_shard`, PNG
  (the default settings, rle + paeth, and zlib level 6, the encoding before) and JPEG 95, pairs/s on one
  core; ratio: against the bare generator's pairs/s (how far the writer is from being the bottleneck);
  then the default PNG against zlib level 6 in pairs/s and in bytes per pair, and on two encoding
  threads against one;
* ``overlap`` (:func:`sample_cost.overlap`): one sample job of the random-init tiny generator (64 px) with
  G_mask, and D_q at input 224 (about as slow per pair on the CPU), one thread each: pairs/s end to end
  with generation on its own thread, against each half alone (generation with masks; filters, D_q,
  encoding and writing) and against the job without overlap; ratio: end to end / the slower half;
* ``memory`` (:func:`sample_cost.memory`): peak RSS (VmHWM) of a one-shard sample job of the tiny generator
  in a fresh process, at two shard sizes; ratio: the larger job's peak / the smaller's;
* ``gmask_step`` (:func:`gmask_cost.train_step_cost`): seconds per G_mask training step in the demo's
  setting (config.yaml's ``gmask`` section on the shipped scene generator, one thread), the step as it
  was before the layout change against the step now, in turns; ratio: before / after time;
* ``evaluation`` (:mod:`eval_cost`): :func:`synthsod.evaluation.evaluate.evaluate_folders` against the plain
  per-image pysodmetrics loop, in images/s (ratio ours / plain), and whether both give the same
  numbers for the metrics they share;
* ``cuda_bf16``: on a CUDA machine, :mod:`cuda_tuning` (precision, layout, torch.compile and CUDA
  graphs, batch, pinned host copies, and a sample job end to end on the GPU; one row per variant),
  and from its ``bf16-autocast`` row, what the sampling stage does, the headline: pairs/s of
  random-init biggan-deep-256 (generator forward with feature taps and G_mask's masks, left on the
  GPU, so the host copies of the sampling stage are not in it), batch 32 (8 with ``--quick``),
  CUDA-synchronised, best of 10 (2) calls after a warm-up call, and the fraction of the GPU's dense
  bf16 peak it reaches:
  achieved FLOP/s (pairs/s x torch's ``FlopCounterMode`` count of the same call on one pair) over
  the peak in :data:`PEAK_BF16_FLOPS`, found by device name (an unknown GPU: no fraction, with the
  reason). Without CUDA it is skipped with the reason, but the FLOP count is still measured, on the
  CPU: 52.3 GFLOP per 256² image for the generator (convolutions 49.6, attention bmm 2.7), 54.5 for
  the pair with G_mask (a count of the architecture, the same on any device).

The CPU stages run in fp32 on the CPU on every machine. Sizes: the default is the modules' own
defaults (about 4 min on an idle 2-core CPU, 7 min measured while other processes kept 0.7 cores
busy, before the overlap and memory stages, which add about 2 min each); ``--quick`` the smallest
that still measures everything (resolution 128 only, batch 1-2, 1-2 rounds, 8 writer rows, a 32-pair
overlap job, memory jobs of 20 and 200 pairs, 2 + 1 G_mask steps, 10 evaluation pairs; about 50 s), to check that it
runs, not for figures.
The machine (CPU model, cores, RAM, torch, GPU, date, git commit) and the CPU time other processes
took meanwhile (per stage too) go with the figures: figures taken while that is well above 0 are noisy.

Writes ``OUT_DIR/benchmarks.json`` (machine, settings, each benchmark's figures and its module's full
result), ``OUT_DIR/benchmarks.md`` (the table), the modules' own ``sample_cost.json`` and
``eval_cost.json``, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cuda_tuning  # noqa: E402
import eval_cost  # noqa: E402
import gmask_cost  # noqa: E402
import sample_cost  # noqa: E402
from gmask_cost import REPO  # noqa: E402

JOBS_ELSEWHERE = ["--overlap-rows", "0", "--memory-rows"]  # sample_cost.main: overlap and memory are stages here
SIZES = {
    "default": {
        "sample_cost": JOBS_ELSEWHERE,
        "overlap": {"rows": 512, "batch": 16, "repeats": 3},
        "memory": {"rows": [1000, 10000], "batch": 16},
        "gmask_cost": [],
        "gmask_step": {"steps": 8, "repeats": 3, "warmup": 2},
        "eval_cost": [],
        "cuda": ["--batch", "32", "--repeats", "10", "--rows", "2048"],  # cuda_tuning's arguments
    },
    "quick": {
        "sample_cost": [
            *("--resolutions", "128", "--batch", "2", "--repeats", "2", "--writer-rows", "8"),
            *JOBS_ELSEWHERE,
        ],
        "overlap": {"rows": 32, "batch": 8, "repeats": 1},
        "memory": {"rows": [20, 200], "batch": 16},
        "gmask_cost": ["--resolutions", "128", "--batch", "1", "--repeats", "1"],
        "gmask_step": {"steps": 2, "repeats": 1, "warmup": 1},
        "eval_cost": ["--images", "10", "--repeats", "1"],
        "cuda": ["--batch", "8", "--repeats", "2", "--rows", "64"],
    },
}


# --- the machine -------------------------------------------------------------------------------------
def proc_field(path: str, field: str) -> str | None:
    """The value of the first ``field: value`` line of a /proc file, or None."""
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":")[0].strip() == field), None)
    except OSError:
        return None


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info() -> dict[str, object]:
    mem_kb = proc_field("/proc/meminfo", "MemTotal")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": proc_field("/proc/cpuinfo", "model name") or platform.processor() or None,
        "cores": os.cpu_count(),
        "ram_GiB": round(int(mem_kb.split()[0]) / 2**20, 1) if mem_kb else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),  # tracked files changed since the commit
    }


# --- the CUDA bf16 throughput ------------------------------------------------------------------------
def cuda_bf16(tuning_args: list[str]) -> dict[str, object]:
    """The FLOP counts of biggan-deep-256 + G_mask and, on a CUDA machine, :mod:`cuda_tuning`'s run, whose
    ``bf16-autocast`` row (what the sampling stage does) gives pairs/s and the fraction of the bf16 peak;
    without CUDA the FLOP counts alone (on the CPU), with the reason for the skip."""
    if not torch.cuda.is_available():
        name = cuda_tuning.GPU_MODEL
        counts = cuda_tuning.flop_counts(
            cuda_tuning.PairStep(gmask_cost.random_net(name), name, torch.device("cpu"), "fp32")
        )
        reason = f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False)"
        return {"model": name, "flops_counted_on": "cpu", **counts, "skipped": True, "reason": reason, "tuning": None}
    tuning = cuda_tuning.main(tuning_args)
    result = {
        "model": tuning["model"],
        "flops_counted_on": "cuda",
        "generator_gflop_per_image": tuning["generator_gflop_per_image"],
        "pair_gflop": tuning["pair_gflop"],
        "tuning": tuning,
    }
    before = tuning["compute"][cuda_tuning.BEFORE]
    if "error" in before:
        return result | {"skipped": True, "reason": f"{cuda_tuning.BEFORE} failed: {before['error']}"}
    name = tuning["device"]
    flops_per_s = before["pairs_per_s"] * tuning["pair_gflop"] * 1e9
    return result | {
        "skipped": False,
        "device": name,
        "batch": before["batch"],
        "pairs_per_s": before["pairs_per_s"],
        "achieved_tflops": flops_per_s / 1e12,
        "peak_bf16_tflops": tuning["peak_bf16_tflops"],
        "fraction_of_peak": before["fraction_of_peak"],
        "fraction_reason": None
        if before["fraction_of_peak"] is not None
        else f"no bf16 peak known for {name!r} (PEAK_BF16_FLOPS)",
    }


# --- figures: one row of the table each --------------------------------------------------------------
def figure(
    what: str, text: str, value: float | None, unit: str, ratio: float | None = None, ratio_what: str | None = None
) -> dict[str, object]:
    return {"what": what, "figure": text, "value": value, "unit": unit, "ratio": ratio, "ratio_what": ratio_what}


def sampling_figures(sample: dict) -> list[dict]:
    batch, rows = sample["settings"]["batch"], []
    for model, r in sample["results"].items():
        bare, gm, shift = r["bare_s"], r["gmask_pipeline_s"], r["direction_pipeline_s"]
        rows.append(
            figure(
                f"{model}: G_mask pipeline (G + taps, G_mask, components/size filters, D_q) vs bare G;"
                f" CPU fp32, batch {batch}",
                f"{1 / gm:.2f} pairs/s (bare G {1 / bare:.2f})",
                1 / gm,
                "pairs/s",
                gm / bare,
                "time / bare",
            )
        )
        rows.append(
            figure(
                f"{model}: direction-shift pipeline (G(z), G(z+h), filters) vs 2 bare G forwards",
                f"{1 / shift:.2f} pairs/s",
                1 / shift,
                "pairs/s",
                shift / (2 * bare),
                "time / 2 bare",
            )
        )
    return rows


WRITER_LABELS = {"png": "PNG (rle + paeth, the default)", "png_zlib6": "PNG zlib level 6 (before)", "jpeg95": "JPEG 95"}


def writer_figures(sample: dict) -> list[dict]:
    rows = []
    for model, r in sample["results"].items():
        for key, label in WRITER_LABELS.items():
            rate = r[f"writer_{key}_pairs_per_s_core"]
            rows.append(
                figure(
                    f"{model}: write_shard of {r['writer_rows']} pairs, {label} images, 1 core",
                    f"{rate:.0f} pairs/s/core ({r[f'writer_{key}_image_kB']:.1f} kB/image)",
                    rate,
                    "pairs/s/core",
                    rate * r["bare_s"],
                    "x bare G pairs/s",
                )
            )
        new, old = r["writer_png_pairs_per_s_core"], r["writer_png_zlib6_pairs_per_s_core"]
        rows.append(
            figure(
                f"{model}: write_shard, default PNG vs zlib level 6 (before), 1 core",
                f"{new:.0f} vs {old:.0f} pairs/s/core",
                new,
                "pairs/s/core",
                new / old,
                "x zlib-6 pairs/s",
            )
        )
        size, old_size = (r[f"writer_{k}_image_kB"] + r[f"writer_{k}_mask_kB"] for k in ("png", "png_zlib6"))
        rows.append(
            figure(
                f"{model}: PNG bytes per pair (image + mask), default vs zlib level 6 (before)",
                f"{size:.1f} vs {old_size:.1f} kB/pair",
                size,
                "kB/pair",
                size / old_size,
                "default / zlib-6 bytes",
            )
        )
        two = r["writer_png_2threads_pairs_per_s"]
        rows.append(
            figure(
                f"{model}: write_shard, default PNG on 2 encoding threads vs 1",
                f"{two:.0f} pairs/s",
                two,
                "pairs/s",
                two / new,
                "2 threads / 1",
            )
        )
    return rows


def overlap_figures(o: dict) -> list[dict]:
    same = "identical" if o["identical"] else "DIFFERENT"
    job = f"sample job of {o['rows']} pairs, {o['model']}, batch {o['batch']}, 1 thread each"
    return [
        figure(
            f"{job}: end to end, generation on its own thread, vs the slower half alone (generation + masks,"
            f" or filters + D_q + encode + write); shards {same}",
            f"{o['end_to_end_pairs_per_s']:.1f} pairs/s (generation {o['generation_pairs_per_s']:.1f},"
            f" the rest {o['rest_pairs_per_s']:.1f})",
            o["end_to_end_pairs_per_s"],
            "pairs/s",
            o["ratio_to_slower_half"],
            "x slower half",
        ),
        figure(
            f"{job}: end to end, overlapped vs sequential",
            f"{o['end_to_end_pairs_per_s']:.1f} vs {o['sequential_pairs_per_s']:.1f} pairs/s",
            o["end_to_end_pairs_per_s"],
            "pairs/s",
            o["ratio_to_sequential"],
            "x sequential",
        ),
    ]


def memory_figures(m: dict) -> list[dict]:
    first, last = m["jobs"][0], m["jobs"][-1]
    return [
        figure(
            f"peak RSS of a one-shard sample job (fresh process), {last['rows']} vs {first['rows']} pairs;"
            f" {m['model']}",
            f"{last['peak_rss_MiB']:.0f} vs {first['peak_rss_MiB']:.0f} MiB",
            last["peak_rss_MiB"],
            "MiB",
            m["growth"],
            f"x the peak at {first['rows']}",
        )
    ]


def fusion_figures(fusion: dict) -> list[dict]:
    rows = []
    for model, r in fusion["results"].items():
        rows.append(
            figure(
                f"{model}: G_mask feature fusion, fused vs naive (upsample every tap), batch 1",
                f"fused {1 / r['fused_s']:.0f} images/s (naive {1 / r['naive_s']:.1f})",
                1 / r["fused_s"],
                "images/s",
                r["naive_s"] / r["fused_s"],
                "naive / fused time",
            )
        )
        rows.append(
            figure(
                f"{model}: fusion peak-RSS rise of one call (fresh process), fused vs naive",
                f"fused {r['fused_rss_MiB']:.0f} MiB (naive {r['naive_rss_MiB']:.0f})",
                r["fused_rss_MiB"],
                "MiB",
                r["naive_rss_MiB"] / r["fused_rss_MiB"],
                "naive / fused memory",
            )
        )
    return rows


def gmask_step_figures(step: dict) -> list[dict]:
    s, after = step["settings"], step["fractions"]["after"]
    return [
        figure(
            f"G_mask training step, demo setting (scene generator, {s['fewshot']} shots, batch {s['batch_size']},"
            f" D_q at {s['dq_input_size']} px every {s['dq_every']} step(s), {s['threads']} thread): the step"
            " before the layout change vs now",
            f"{step['after_s']:.3f} s/step (before {step['before_s']:.3f}; now G_mask {after['gmask']:.0%},"
            f" D_q {after['dq']:.0%})",
            step["after_s"],
            "s/step",
            step["ratio"],
            "before / after time",
        )
    ]


def evaluation_figures(evaluation: dict) -> list[dict]:
    s, r = evaluation["settings"], evaluation["results"]
    data = f"{s['images']} PNG pairs {s['height']}x{s['width']}"
    agree = "agree" if r["agreement"]["agree"] else "DISAGREE"
    return [
        figure(
            f"evaluate_folders (PIL, checks, all protocol metrics) vs plain pysodmetrics loop (cv2, 5 metrics);"
            f" {data}; shared metrics {agree}",
            f"{r['ours_images_per_s']:.1f} images/s (plain {r['plain_images_per_s']:.1f})",
            r["ours_images_per_s"],
            "images/s",
            r["ratio_ours_to_plain"],
            "ours / plain",
        ),
        figure(
            f"our metrics (SODMetrics) on the plain loop's cv2 reading vs plain pysodmetrics; {data}",
            f"{r['metrics_only_images_per_s']:.1f} images/s",
            r["metrics_only_images_per_s"],
            "images/s",
            r["metrics_only_images_per_s"] / r["plain_images_per_s"],
            "metrics only / plain",
        ),
    ]


def cuda_figures(cuda: dict) -> list[dict]:
    counted_on = cuda["flops_counted_on"]
    flops = figure(
        f"{cuda['model']}: FLOPs per pair by torch's FlopCounterMode (counted on {counted_on})",
        f"{cuda['pair_gflop']:.1f} GFLOP/pair (generator alone {cuda['generator_gflop_per_image']:.1f})",
        cuda["pair_gflop"],
        "GFLOP/pair",
    )
    what = f"{cuda['model']}: generator + G_mask pairs/s, bf16 autocast on CUDA"
    if cuda["skipped"]:
        return [flops, figure(what, f"skipped: {cuda['reason']}", None, "pairs/s")]
    fraction = cuda["fraction_of_peak"]
    return [
        flops,
        figure(
            f"{what}, {cuda['device']}, batch {cuda['batch']}",
            f"{cuda['pairs_per_s']:.0f} pairs/s ({cuda['achieved_tflops']:.0f} TFLOP/s)",
            cuda["pairs_per_s"],
            "pairs/s",
            fraction,
            "of bf16 peak" if fraction is not None else cuda["fraction_reason"],
        ),
    ]


# --- the report --------------------------------------------------------------------------------------
def tuning_figures(t: dict) -> list[dict]:
    """The GPU tuning variants (:mod:`cuda_tuning`) against today's bf16 autocast, the host copies and the
    end-to-end sample job against today's compute alone."""
    rows = []
    before = t["compute"].get(cuda_tuning.BEFORE, {}).get("pairs_per_s")
    for name, r in t["compute"].items():
        if "error" in r:
            rows.append(figure(f"{t['model']} + G_mask, {name}", f"failed: {r['error'][:200]}", None, "pairs/s"))
            continue
        peak = "" if r["fraction_of_peak"] is None else f", {r['fraction_of_peak']:.3f} of bf16 peak"
        rows.append(
            figure(
                f"{t['model']} + G_mask, {name} (batch {r['batch']}); masks equal to fp32's:"
                f" {r['mask_agreement_with_fp32']:.4f}",
                f"{r['pairs_per_s']:.0f} pairs/s{peak}",
                r["pairs_per_s"],
                "pairs/s",
                r.get("x_before"),
                f"x {cuda_tuning.BEFORE}",
            )
        )
    h, s = t["host_copies"], t["sample_job"]
    rows.append(
        figure(
            f"host copies of a batch: uint8 on the device + pinned vs today's float32 path (uint8"
            f" {'identical' if h['uint8_identical'] else 'DIFFERENT'})",
            f"{h['on_device_pinned']:.0f} vs {h['today']:.0f} pairs/s",
            h["on_device_pinned"],
            "pairs/s",
            h["ratio"],
            "x today",
        )
    )
    rows.append(
        figure(
            f"sample job end to end on the GPU ({s['rows']} pairs, {s['workers']} PNG threads)"
            " vs today's compute alone",
            f"{s['pairs_per_s']:.0f} pairs/s",
            s["pairs_per_s"],
            "pairs/s",
            None if before is None else s["pairs_per_s"] / before,
            f"x {cuda_tuning.BEFORE} compute",
        )
    )
    return rows


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"Benchmarks ({report['settings']['size']} sizes) of {m['date']}, commit {(m['git_commit'] or '?')[:10]}"
        f"{' (with uncommitted changes)' if m['git_dirty'] else ''}, in {report['runtime_s']:.0f} s: {m['cpu']},"
        f" {m['cores']} cores, {m['ram_GiB']} GiB RAM, torch {m['torch']}, GPU {m['gpu'] or 'none'};"
        f" other processes used {m['other_processes_cores']} cores on average meanwhile.",
        "",
        "| benchmark | what | figure | ratio |",
        "|---|---|---|---|",
    ]
    for name, bench in report["benchmarks"].items():
        for f in bench["figures"]:
            ratio = "—" if f["ratio"] is None else f"{f['ratio']:.2f} ({f['ratio_what']})"
            lines.append(f"| {name} | {f['what']} | {f['figure']} | {ratio} |")
    return "\n".join(lines)


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def load_meter() -> tuple[float, int, float]:
    """What :func:`sample_cost.others_cores` needs to tell, later, the load other processes put on the CPU."""
    return time.perf_counter(), sample_cost.busy_jiffies(), sample_cost.own_cpu_s()


def stage(title: str, fn, stages: dict[str, dict]):
    """Run one benchmark under a printed title; record its wall time and the other processes' load."""
    section(title)
    meter = load_meter()
    result = fn()
    stages[title] = {
        "runtime_s": time.perf_counter() - meter[0],
        "other_processes_cores": sample_cost.others_cores(*meter),
    }
    return result


def stages_of(sizes: dict, out_dir: Path) -> dict[str, tuple[str, Callable[[], dict]]]:
    """Each stage's name -> (title, a function returning its benchmarks' ``{"figures", "result"}``)."""

    def sampling():
        sample = sample_cost.main([*sizes["sample_cost"], "--out", str(out_dir / "sample_cost.json")])
        return {
            "sampling": {"figures": sampling_figures(sample), "result": sample},
            "shard_writer": {"figures": writer_figures(sample), "result": "in sampling's result (writer_*)"},
        }

    def overlap():
        overlapped = sample_cost.overlap(**sizes["overlap"])
        print(json.dumps({k: v for k, v in overlapped.items() if k != "rounds_s_per_pair"}), flush=True)
        return {"overlap": {"figures": overlap_figures(overlapped), "result": overlapped}}

    def memory():
        result = sample_cost.memory(**sizes["memory"])
        print(json.dumps(result), flush=True)
        return {"memory": {"figures": memory_figures(result), "result": result}}

    def fusion():
        result = gmask_cost.main(sizes["gmask_cost"])
        return {"fusion": {"figures": fusion_figures(result), "result": result}}

    def gmask_step():
        result = gmask_cost.train_step_cost(**sizes["gmask_step"])
        return {"gmask_step": {"figures": gmask_step_figures(result), "result": result}}

    def evaluation():
        result = eval_cost.main([*sizes["eval_cost"], "--out", str(out_dir / "eval_cost.json")])
        return {"evaluation": {"figures": evaluation_figures(result), "result": result}}

    def cuda():
        result = cuda_bf16([*sizes["cuda"], "--out", str(out_dir / "cuda_tuning.json")])
        print(json.dumps({k: v for k, v in result.items() if k != "tuning"}), flush=True)
        figures = cuda_figures(result) + ([] if result["tuning"] is None else tuning_figures(result["tuning"]))
        skipped = {"skipped": result["skipped"], "reason": result.get("reason")}
        return {"cuda_bf16": {**skipped, "figures": figures, "result": result}}

    return {
        "sampling": ("sampling and shard writer (sample_cost)", sampling),
        "overlap": ("sample job overlap (sample_cost.overlap)", overlap),
        "memory": ("sample job memory (sample_cost.memory)", memory),
        "fusion": ("fusion (gmask_cost)", fusion),
        "gmask_step": ("G_mask training step (gmask_cost.train_step_cost)", gmask_step),
        "evaluation": ("evaluation (eval_cost)", evaluation),
        "cuda": ("CUDA bf16 throughput and tuning (cuda_tuning)", cuda),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smallest sizes (about 50 s on a 2-core CPU)")
    names = list(stages_of(SIZES["quick"], Path()))
    parser.add_argument("--only", nargs="+", choices=names, help="run these stages alone (default: all, in order)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args(argv)
    size = "quick" if args.quick else "default"
    sizes = SIZES[size]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    meter, stages, benchmarks = load_meter(), {}, {}
    runs = stages_of(sizes, args.out_dir)
    for name in args.only or names:
        title, fn = runs[name]
        benchmarks |= stage(title, fn, stages)
    machine = machine_info() | {"other_processes_cores": sample_cost.others_cores(*meter)}
    report = {
        "machine": machine,
        "settings": {"size": size, "only": args.only, **sizes},
        "runtime_s": time.perf_counter() - meter[0],
        "stages": stages,
        "benchmarks": benchmarks,
    }
    table = markdown(report)
    (args.out_dir / "benchmarks.json").write_text(json.dumps(report, indent=1))
    (args.out_dir / "benchmarks.md").write_text(table + "\n")
    section(f"summary ({args.out_dir / 'benchmarks.json'}, {args.out_dir / 'benchmarks.md'})")
    print(table)
    return report


if __name__ == "__main__":
    main()
