"""What the sampling stage (filters, G_mask, D_q, conversions, shard writing) adds to the bare generator (CPU).

Usage: ``python benchmarks/sample_cost.py [--resolutions 128 256] [--batch 4] [--repeats 8] [--writer-rows 64]``

Models are random-init BigGAN-deep 128 / 256 with the released architectures (``PRETRAINED_CONFIGS``,
built by :func:`gmask_cost.build_generator`), a random-init default G_mask (MLP-S) and D_q
(MobileNetV3-small, input 224); costs do not depend on the weights' values. Candidate ``i`` is the
same latent (``LatentSource`` seed 0, truncation 0.4, all classes) in every measurement.

Timing: one warm-up batch of ``--batch`` candidates per measured function, then ``--repeats``
rounds; in a round every function runs once on that round's candidates, one after the other, so a
burst of load from other processes hits all of them alike. The best round counts (the
:func:`gmask_cost.timed` convention); the JSON also keeps every round and the median of the
per-round ratios. The CPU time other processes took meanwhile (cores, on average) is reported per
model: figures taken while it is well above 0 are not to be trusted.

* ``bare``: ``generator.generate(z, ids, 0.4, with_features=False)``: the floor;
* ``gmask_pipeline``: :func:`synthsod.synthesis.sampling.judge` on :func:`gmask_proposer` with the components
  and size filters and D_q (threshold 0), but no histogram filter: a random-init BigGAN draws
  low-contrast images whose grey histogram always has an interior peak, so with it every candidate is
  rejected before D_q. Without it every candidate reaches D_q: the worst case, the one the issue's
  target (<= 1.25x bare) is about. The histogram filter's cost is in the breakdown;
* ``gmask_pipeline_histogram``: the same with the histogram filter (bins 12, window 3, not strict):
  here it rejects every candidate, so D_q scores none (the best case);
* ``direction_pipeline``: ``judge`` on ``shift_proposer(renderer(...))`` (shift 5, ``compare: base``,
  a fixed random direction), components, size and histogram filters, no D_q. It renders G(z) and
  G(z + h), so its ratio to two bare forwards is the one to compare with 1;
* a breakdown of the G_mask pipeline, each piece timed alone on the first batch (in rounds as above,
  every round on the same inputs): latent draws, generate with feature taps, G_mask forward to the
  boolean mask, image to NHWC float, grey level (float64), uint8, the three cheap filters, D_q
  scoring (and, a part of it, the bilinear upsampling of the 4-channel pairs to 224);
* the shard writer, :func:`synthsod.synthesis.shards.write_shard` of ``--writer-rows`` rows of generated images
  (the candidates above and the next ones) with G_mask masks into a temporary directory, with one
  OpenCV and one Arrow thread: pairs/s per core, PNG and JPEG (quality 95), and the encoded image
  size. Random-init images are smooth and low in contrast, so they compress well: a trained
  generator's images give larger files and lower PNG rates.

The random G_mask's foreground probability is nearly constant within an image (~0.47, the global
attention term sets its level), so the fixed 0.5 threshold gives empty masks, which make the
components filter and the mask PNGs unrealistically cheap. The pipelines therefore threshold at the
median probability of the first batch (masks whole, empty or partial), and the writer's masks at
each image's own median (half foreground, smooth blobs, then the components filter).

Results go to ``benchmarks/out/sample_cost.json``; a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gmask_cost import REPO, TRUNCATION, build_generator, model_name, timed  # noqa: E402

from synthsod.core.images import nhwc_gray, to_uint8_nhwc  # noqa: E402
from synthsod.generators.latents import LatentSource  # noqa: E402
from synthsod.sodgan.dq import QualityDiscriminator, pair_input  # noqa: E402
from synthsod.sodgan.gmask import GMask, foreground_probability  # noqa: E402
from synthsod.synthesis.biggan_sampling import _nhwc, dq_scorer, gmask_proposer, renderer  # noqa: E402
from synthsod.synthesis.filters import drop_small_components, histogram_ok, mask_size_ok  # noqa: E402
from synthsod.synthesis.sampling import Candidate, FilterSpec, judge, shard_row, shift_proposer  # noqa: E402
from synthsod.synthesis.shards import write_shard  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "sample_cost.json"
SEED = 0
SHIFT = 5.0
COMPONENTS = {"fraction": 0.2, "connectivity": 4}
SIZE = {"min": 0.0, "max": 1.0}
HISTOGRAM = {"bins": 12, "window": 3, "strict": False}
DQ = {"threshold": 0.0}
GMASK_WORST = FilterSpec(components=COMPONENTS, size=SIZE, dq=DQ)
GMASK_FULL = FilterSpec(components=COMPONENTS, size=SIZE, histogram=HISTOGRAM, dq=DQ)
DIRECTION_FILTERS = FilterSpec(components=COMPONENTS, size=SIZE, histogram=HISTOGRAM)
PIPELINES = ("bare", "gmask_pipeline", "gmask_pipeline_histogram", "direction_pipeline")


def batches(batch: int, count: int) -> list[range]:
    """The first ``count`` blocks of ``batch`` consecutive candidate indices."""
    return [range(k * batch, (k + 1) * batch) for k in range(count)]


def rounds(fns: Mapping[str, Callable[[range], object]], blocks: Sequence[range]) -> dict[str, list[float]]:
    """Seconds per candidate of each function in each round: ``blocks[0]`` warms every function up,
    then round k runs each function once on ``blocks[k]``, one after the other."""
    warmup, *timed_blocks = blocks
    for fn in fns.values():
        fn(warmup)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for block in timed_blocks:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(block)
            times[name].append((time.perf_counter() - start) / len(block))
    return times


def verdict_counts(verdicts: Sequence[tuple[Candidate, str | None]]) -> dict[str, int]:
    return dict(Counter(reason or "kept" for _, reason in verdicts))


def gmask_masks(gmask: GMask, features: Mapping[int, torch.Tensor], threshold: float | None) -> np.ndarray:
    """G_mask's boolean masks [N, R, R], as gmask_proposer makes them; None: each image's median."""
    with torch.no_grad():
        probs = foreground_probability(gmask(features).float())[:, 0]
    cut = probs.flatten(1).median(dim=1).values[:, None, None] if threshold is None else threshold
    return (probs > cut).cpu().numpy()


def breakdown(
    gen, gmask: GMask, dq: QualityDiscriminator, latents: LatentSource, indices: range, threshold: float, repeats: int
) -> dict[str, float]:
    """Each piece of the G_mask pipeline timed alone on the same batch, in rounds: best seconds per candidate."""
    score = dq_scorer(dq)
    z, ids = latents.draw(indices)
    out = gen.generate(z, ids, TRUNCATION)
    masks = gmask_masks(gmask, out.features, threshold)
    images = _nhwc(out.images)
    grays, uint8 = nhwc_gray(images), to_uint8_nhwc(images)
    cleaned = [drop_small_components(m, COMPONENTS["fraction"], COMPONENTS["connectivity"])[0] for m in masks]
    pairs = pair_input(
        torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 127.5 - 1.0,
        torch.from_numpy(np.stack(cleaned)[:, None].astype(np.float32)),
    )
    size = dq.input_size
    pieces: dict[str, Callable[[], object]] = {
        "latents": lambda: latents.draw(indices),
        "generate_features": lambda: gen.generate(z, ids, TRUNCATION, with_features=True),
        "gmask": lambda: gmask_masks(gmask, out.features, threshold),
        "to_nhwc": lambda: _nhwc(out.images),
        "gray_f64": lambda: nhwc_gray(images),
        "to_uint8": lambda: to_uint8_nhwc(images),
        "components": lambda: [
            drop_small_components(m, COMPONENTS["fraction"], COMPONENTS["connectivity"]) for m in masks
        ],
        "size": lambda: [mask_size_ok(m, SIZE["min"], SIZE["max"]) for m in cleaned],
        "histogram": lambda: [
            histogram_ok(g, HISTOGRAM["bins"], HISTOGRAM["window"], HISTOGRAM["strict"]) for g in grays
        ],
        "dq": lambda: score(list(uint8), cleaned),
        # a part of "dq": the bilinear upsampling D_q applies to pairs smaller than its input size
        "dq_upsample_part": lambda: (
            F.interpolate(pairs, size=(size, size), mode="bilinear", align_corners=False)
            if min(pairs.shape[-2:]) < size
            else None
        ),
    }
    times = rounds({name: lambda _, fn=fn: fn() for name, fn in pieces.items()}, [indices] * (repeats + 1))
    return {name: min(t) for name, t in times.items()}


def writer_rows(gen, gmask: GMask, latents: LatentSource, count: int, batch: int) -> list[dict]:
    """``count`` shard rows: generated images, each with its G_mask mask cut at the image's median."""
    rows = []
    for block in batches(batch, -(-count // batch)):
        z, ids = latents.draw(block)
        out = gen.generate(z, ids, TRUNCATION)
        images = to_uint8_nhwc(_nhwc(out.images))
        for n, mask in enumerate(gmask_masks(gmask, out.features, None)):
            mask, components = drop_small_components(mask, COMPONENTS["fraction"], COMPONENTS["connectivity"])
            candidate = Candidate(
                index=block[n],
                z=z[n],
                class_id=int(ids[n]),
                image=images[n],
                mask=mask,
                histogram_gray=None,
                components=components,
                dq_score=0.5,
            )
            rows.append(
                shard_row(
                    "bench",
                    candidate,
                    generator=gen.name,
                    seed=SEED,
                    truncation=TRUNCATION,
                    filters=GMASK_FULL.enabled(),
                )
            )
    return rows[:count]


def write_rate(rows: list[dict], image_format: str, repeats: int) -> tuple[float, float]:
    """(pairs/s of write_shard on one core: one OpenCV and one Arrow thread, encoded image kB per row)."""
    threads = cv2.getNumThreads(), pa.cpu_count(), pa.io_thread_count()
    cv2.setNumThreads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "shard.parquet"
            seconds = timed(lambda: write_shard(path, rows, image_format=image_format), repeats)
            table = pq.read_table(path, columns=["image", "mask"])
            image_kb = sum(len(v["bytes"]) for v in table["image"].to_pylist()) / len(rows) / 1e3
    finally:
        cv2.setNumThreads(threads[0])
        pa.set_cpu_count(threads[1])
        pa.set_io_thread_count(threads[2])
    return len(rows) / seconds, image_kb


def measure(resolution: int, batch: int, repeats: int, writer_count: int) -> dict[str, object]:
    gen = build_generator(resolution)
    torch.manual_seed(0)
    gmask = GMask(gen.feature_shapes, gen.resolution).eval()
    dq = QualityDiscriminator().eval()
    latents = LatentSource(SEED, gen.z_dim, TRUNCATION, np.arange(gen.num_classes))
    direction = np.random.default_rng(SEED).standard_normal(gen.z_dim).astype(np.float32)
    first = batches(batch, 1)[0]
    with torch.no_grad():
        probs = foreground_probability(gmask(gen.generate(*latents.draw(first), TRUNCATION).features))
    threshold = float(probs.median())

    draws = {block.start: latents.draw(block) for block in batches(batch, repeats + 1)}  # outside the timing
    propose = gmask_proposer(gen, gmask, latents, TRUNCATION, threshold)
    shift = shift_proposer(renderer(gen, TRUNCATION), latents, direction, SHIFT, "base")
    score = dq_scorer(dq)
    verdicts: dict[str, list] = {name: [] for name in PIPELINES[1:]}
    fns = {
        "bare": lambda block: gen.generate(*draws[block.start], TRUNCATION, with_features=False),
        "gmask_pipeline": lambda block: verdicts["gmask_pipeline"].extend(
            judge(propose, block, GMASK_WORST, score, DQ["threshold"])
        ),
        "gmask_pipeline_histogram": lambda block: verdicts["gmask_pipeline_histogram"].extend(
            judge(propose, block, GMASK_FULL, score, DQ["threshold"])
        ),
        "direction_pipeline": lambda block: verdicts["direction_pipeline"].extend(
            judge(shift, block, DIRECTION_FILTERS, None, None)
        ),
    }
    times = rounds(fns, batches(batch, repeats + 1))
    row: dict[str, object] = {f"{name}_s": min(t) for name, t in times.items()}
    row["median_round_ratio"] = {
        name: statistics.median(a / b for a, b in zip(t, times["bare"])) for name, t in times.items() if name != "bare"
    }
    row["rounds_s"] = times
    row["verdicts"] = {name: verdict_counts(v) for name, v in verdicts.items()}
    row["gmask_threshold"] = threshold
    row["breakdown_s"] = breakdown(gen, gmask, dq, latents, first, threshold, repeats)

    rows = writer_rows(gen, gmask, latents, writer_count, batch)
    row["writer_rows"] = len(rows)
    row["writer_mask_fraction"] = float(np.mean([r["mask_fraction"] for r in rows]))
    for name, image_format in (("png", "png"), ("jpeg95", "jpeg")):
        rate, image_kb = write_rate(rows, image_format, repeats)
        row[f"writer_{name}_pairs_per_s_core"], row[f"writer_{name}_image_kB"] = rate, image_kb
    return row


def markdown(rows: dict[int, dict], batch: int) -> str:
    lines = [
        "Ratios: best round / best bare round; in brackets the median of the per-round ratios.",
        "",
        "| model | bare pairs/s | G_mask pipeline pairs/s | x bare | same + histogram filter pairs/s | x bare"
        " | direction pipeline pairs/s | x bare | x 2 bare | writer PNG pairs/s/core (image kB)"
        " | writer JPEG95 pairs/s/core (image kB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res, r in rows.items():
        bare = r["bare_s"]
        cells = [f"{model_name(res)}", f"{1 / bare:.2f}"]
        for name in PIPELINES[1:]:
            seconds, median = r[f"{name}_s"], r["median_round_ratio"][name]
            cells += [f"{1 / seconds:.2f}", f"{seconds / bare:.2f} ({median:.2f})"]
        shift = r["direction_pipeline_s"]
        cells += [
            f"{shift / (2 * bare):.2f} ({r['median_round_ratio']['direction_pipeline'] / 2:.2f})",
            f"{r['writer_png_pairs_per_s_core']:.0f} ({r['writer_png_image_kB']:.0f})",
            f"{r['writer_jpeg95_pairs_per_s_core']:.0f} ({r['writer_jpeg95_image_kB']:.0f})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    names = list(next(iter(rows.values()))["breakdown_s"])
    lines += [
        "",
        f"G_mask pipeline (no histogram filter) breakdown, ms per candidate, batch {batch}"
        " (% of the measured pipeline):",
        "",
        "| piece | " + " | ".join(model_name(res) for res in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    for name in [*names, "sum of pieces", "pipeline (measured)"]:
        cells = []
        for r in rows.values():
            pieces, total = r["breakdown_s"], r["gmask_pipeline_s"]
            value = {
                "sum of pieces": sum(v for k, v in pieces.items() if k not in ("dq_upsample_part", "histogram")),
                "pipeline (measured)": total,
            }.get(name, pieces.get(name))
            cells.append(f"{1e3 * value:.2f} ({100 * value / total:.0f}%)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def busy_jiffies() -> int:
    """Non-idle CPU time of the whole machine, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def others_cores(start: float, busy: int, own: float) -> float:
    """Average cores that other processes kept busy since ``start`` (from busy_jiffies() and os.times())."""
    elapsed = time.perf_counter() - start
    others = (busy_jiffies() - busy) / os.sysconf("SC_CLK_TCK") - (sum(os.times()[:2]) - own)
    return round(max(others / elapsed, 0.0), 2)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, write its JSON, print its tables; return what the JSON holds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256], choices=[128, 256, 512])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--writer-rows", type=int, default=64)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    cpus = os.cpu_count() or 1
    torch.set_num_threads(cpus)
    print(
        f"torch {torch.__version__}, {cpus} CPUs, {torch.get_num_threads()} torch threads, CPU fp32,"
        f" batch {args.batch}, best of {args.repeats} rounds after a warm-up batch",
        flush=True,
    )
    start, busy0, own0 = time.perf_counter(), busy_jiffies(), sum(os.times()[:2])
    rows = {}
    for res in args.resolutions:
        res_start, res_busy, res_own = time.perf_counter(), busy_jiffies(), sum(os.times()[:2])
        rows[res] = measure(res, args.batch, args.repeats, args.writer_rows)
        rows[res]["other_processes_cores"] = others_cores(res_start, res_busy, res_own)
        print(f"{model_name(res)}: {json.dumps(rows[res])}", flush=True)
    elapsed = time.perf_counter() - start
    machine = {
        "cpus": cpus,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "other_processes_cores": others_cores(start, busy0, own0),
    }
    result = {
        "machine": machine,
        "settings": vars(args) | {"out": str(args.out)},
        "runtime_s": elapsed,
        "results": {model_name(r): v for r, v in rows.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print()
    print(markdown(rows, args.batch))
    busy = ", ".join(f"{model_name(res)} {r['other_processes_cores']}" for res, r in rows.items())
    print(
        f"\nruntime {elapsed:.0f} s; other processes used {machine['other_processes_cores']} of {cpus} cores"
        f" on average meanwhile ({busy}); JSON: {args.out}"
    )
    return result


if __name__ == "__main__":
    main()
