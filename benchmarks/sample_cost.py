"""What the sampling stage (filters, G_mask, D_q, conversions, shard writing) adds to the bare generator (CPU).

Usage: ``python benchmarks/sample_cost.py [--resolutions 128 256] [--batch 4] [--repeats 8] [--writer-rows 64]
[--overlap-rows 512] [--overlap-batch 16] [--overlap-repeats 3] [--memory-rows 1000 10000] [--memory-batch 16]``

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
  OpenCV and one Arrow thread: pairs/s per core and the encoded image and mask sizes, for each of
  :data:`WRITERS`: PNG with the default settings (zlib strategy rle, Paeth filter), PNG zlib level 6
  with libpng's adaptive filters (the encoding before, ``LEGACY_PNG``), JPEG (quality 95), and the
  default PNG on two encoding threads (pairs/s, not per core). In rounds like the pipelines, so the
  settings share the load. Random-init images are smooth and low in contrast, so they compress well:
  a trained generator's images give larger files and lower PNG rates (on 256² crops of photos, the
  default PNG took 106 kB at ~4x the rate of zlib level 6, also 106 kB);
* ``overlap`` (:func:`overlap`, ``--overlap-rows`` pairs, 0 skips it): one sample job
  (:func:`synthsod.synthesis.runs.write_run_shard`, every candidate kept) end to end with generation on
  its own thread, against its two halves alone: ``generation`` (generator with taps, G_mask, masks:
  the proposer on the job's batches) and ``rest`` (the same job fed the candidates generated
  beforehand: filters, D_q, PNG encoding, the shard, stats and rejected files), and against the job
  without overlap. One torch, OpenCV and encoding thread each, so on two idle cores the job may use
  two. The halves must be of comparable cost for the ratio to mean something: the random-init tiny
  generator (64 px, the demo's architecture) with G_mask, against the components and size filters
  and D_q at input 224 (the paper's; it is most of the rest), gives about 100 and 150 pairs/s on
  this CPU. A BigGAN-deep at 128 or 256 px would leave the rest ~1 % of the job. Each end of a job
  costs about one batch that cannot overlap (the first generation; the batch the producer is still
  generating when the shard is full), so the job has 32 batches (512 pairs, batch 16): a real shard
  of 1000 rows has 63. The three jobs' shards must be byte-identical (``identical``). On this
  2-core CPU the figure needs both cores idle: with one core busy elsewhere the overlapped job has
  no second core to run on (0.54 x the slower half measured so, against 0.86-0.98 idle);
* ``memory`` (:func:`memory`, ``--memory-rows``, none skips it): peak RSS (VmHWM) of one sample job of
  the same tiny generator and G_mask (no D_q: it would only slow the job down) with one shard of each
  given size, each in a fresh process (:func:`rss_child`), with the peak after the setup; ``growth``:
  the largest job's peak over the smallest's. The tiny generator keeps a 10k-pair job at about 2 min.

The random G_mask's foreground probability is nearly constant within an image (~0.47, the global
attention term sets its level), so the fixed 0.5 threshold gives empty masks, which make the
components filter and the mask PNGs unrealistically cheap. The pipelines therefore threshold at the
median probability of the first batch (masks whole, empty or partial), and the writer's masks at
each image's own median (half foreground, smooth blobs, then the components filter).

Results go to ``benchmarks/out/sample_cost.json``; a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import resource
import statistics
import subprocess
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

from gmask_cost import REPO, TRUNCATION, build_generator, model_name, random_net  # noqa: E402

from synthsod.core.images import nhwc_gray, to_uint8_nhwc  # noqa: E402
from synthsod.core.io import file_sha256  # noqa: E402
from synthsod.core.progress import progress_to  # noqa: E402
from synthsod.generators.biggan import BigGANGenerator  # noqa: E402
from synthsod.generators.latents import LatentSource  # noqa: E402
from synthsod.sodgan.dq import QualityDiscriminator, pair_input  # noqa: E402
from synthsod.sodgan.gmask import GMask, foreground_probability  # noqa: E402
from synthsod.synthesis.biggan_sampling import _nhwc, dq_scorer, gmask_proposer, renderer  # noqa: E402
from synthsod.synthesis.filters import drop_small_components, histogram_ok, mask_size_ok  # noqa: E402
from synthsod.synthesis.runs import Backend, RunFiles, Sampler, write_run_shard  # noqa: E402
from synthsod.synthesis.sampling import Candidate, FilterSpec, judge, shard_row, shift_proposer  # noqa: E402
from synthsod.synthesis.shards import LEGACY_PNG, write_shard  # noqa: E402

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


# the writer settings compared: name -> write_shard keyword arguments
WRITERS: dict[str, dict] = {
    "png": {"image_format": "png"},  # the default PNG settings (DEFAULT_PNG)
    "png_zlib6": {"image_format": "png", "png": LEGACY_PNG},  # the encoding before: zlib level 6
    "jpeg95": {"image_format": "jpeg", "jpeg_quality": 95},
    "png_2threads": {"image_format": "png", "workers": 2},  # the default PNG on two encoding threads
}


def write_rates(rows: list[dict], repeats: int) -> dict[str, dict[str, float]]:
    """Per :data:`WRITERS` entry: pairs/s of write_shard (one OpenCV and one Arrow thread; the encoding
    threads its ``workers`` say, 1 unless given) and the encoded kB per image and per mask. In rounds
    (one warm-up): every setting writes the rows once per round, the best round counts."""
    threads = cv2.getNumThreads(), pa.cpu_count(), pa.io_thread_count()
    cv2.setNumThreads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = {name: Path(tmp) / f"{name}.parquet" for name in WRITERS}
            fns = {name: lambda _, n=name: write_shard(paths[n], rows, **WRITERS[n]) for name in WRITERS}
            times = rounds(fns, [range(len(rows))] * (repeats + 1))
            result = {}
            for name, path in paths.items():
                table = pq.read_table(path, columns=["image", "mask"])
                result[name] = {
                    "pairs_per_s": 1 / min(times[name]),  # rounds() gives seconds per row
                    "image_kB": sum(len(v["bytes"]) for v in table["image"].to_pylist()) / len(rows) / 1e3,
                    "mask_kB": sum(len(v["bytes"]) for v in table["mask"].to_pylist()) / len(rows) / 1e3,
                }
    finally:
        cv2.setNumThreads(threads[0])
        pa.set_cpu_count(threads[1])
        pa.set_io_thread_count(threads[2])
    return result


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
    for name, rate in write_rates(rows, repeats).items():
        per = "" if name.endswith("threads") else "_core"  # 2 threads: pairs/s, not per core
        row[f"writer_{name}_pairs_per_s{per}"] = rate["pairs_per_s"]
        row[f"writer_{name}_image_kB"], row[f"writer_{name}_mask_kB"] = rate["image_kB"], rate["mask_kB"]
    return row


def markdown(rows: dict[int, dict], batch: int) -> str:
    lines = [
        "Ratios: best round / best bare round; in brackets the median of the per-round ratios.",
        "",
        "| model | bare pairs/s | G_mask pipeline pairs/s | x bare | same + histogram filter pairs/s | x bare"
        " | direction pipeline pairs/s | x bare | x 2 bare | writer PNG pairs/s/core (image kB)"
        " | writer PNG zlib 6 (before) pairs/s/core (image kB) | writer JPEG95 pairs/s/core (image kB)"
        " | writer PNG, 2 threads, pairs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
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
            f"{r['writer_png_pairs_per_s_core']:.0f} ({r['writer_png_image_kB']:.1f})",
            f"{r['writer_png_zlib6_pairs_per_s_core']:.0f} ({r['writer_png_zlib6_image_kB']:.1f})",
            f"{r['writer_jpeg95_pairs_per_s_core']:.0f} ({r['writer_jpeg95_image_kB']:.1f})",
            f"{r['writer_png_2threads_pairs_per_s']:.0f}",
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


# --- a sample job: generation overlapped with the rest, and its memory -------------------------------------
TINY_DQ_INPUT = 224  # the paper's D_q input size: on the CPU about as slow per pair as tiny + G_mask
JOB_FILES = ("shard", "stats", "rejected")


def tiny_sampler(rows: int, batch: int, dq_input: int | None) -> Sampler:
    """:func:`job_sampler` on the random-init tiny generator (64 px, the demo's architecture), on the CPU."""
    return job_sampler(BigGANGenerator(random_net("tiny"), "tiny"), rows, batch, dq_input)


def job_sampler(gen: BigGANGenerator, rows: int, batch: int, dq_input: int | None) -> Sampler:
    """A one-shard sample job's :class:`Sampler` on ``gen`` (on its device) with a random G_mask cut at the
    first batch's median probability, the components and size [0, 1] filters and, with ``dq_input``, a
    random D_q (threshold 0) at that input size on the same device: every candidate is kept, so a job of
    ``rows`` pairs judges ``rows`` candidates."""
    torch.manual_seed(0)
    gmask = GMask(gen.feature_shapes, gen.resolution).to(gen.device).eval()
    latents = LatentSource(SEED, gen.z_dim, TRUNCATION, np.arange(gen.num_classes))
    with torch.no_grad():
        probs = foreground_probability(gmask(gen.generate(*latents.draw(range(batch)), TRUNCATION).features))
    dq = None if dq_input is None else {"threshold": DQ["threshold"], "keep_top": None, "calibration": 1}
    filters = {"components": COMPONENTS, "size": SIZE, "histogram": None, "dq": dq}
    run = {
        "seed": SEED,
        "rows_per_shard": rows,
        "max_candidates_factor": 2,
        "batch_size": batch,
        "image_format": "png",
        "jpeg_quality": 95,
        "filters": filters,
    }
    scorer = None
    if dq_input is not None:
        scorer = dq_scorer(QualityDiscriminator(input_size=dq_input).to(gen.device).eval())
    return Sampler(
        "bench",
        run,
        Backend(gen.name, gen.z_dim, gen.num_classes, gen),
        TRUNCATION,
        gmask_proposer(gen, gmask, latents, TRUNCATION, float(probs.median())),
        FilterSpec.from_config(filters),
        scorer,
    )


def sample_job(sampler: Sampler, rows: int, folder: Path, overlap: bool, workers: int = 1) -> dict:
    """:func:`synthsod.synthesis.runs.write_run_shard` of shard 0 into ``folder`` (``workers`` encoding
    threads), quietly."""
    out = {name: folder / f"{name}.{'json' if name == 'stats' else 'parquet'}" for name in JOB_FILES}
    with progress_to(io.StringIO()):
        return write_run_shard(sampler, 0, rows, RunFiles(), out, workers=workers, overlap=overlap)


def overlap(rows: int, batch: int, repeats: int) -> dict[str, object]:
    """Pairs/s of one sample job with generation overlapped (``end_to_end``) against its two halves alone:
    ``generation`` (the job's batches through the proposer: generator with taps, G_mask, masks) and
    ``rest`` (the same job fed those candidates, generated beforehand: filters, D_q, PNG encoding, the
    shard, stats and rejected files), and against the job without overlap (``sequential``). One torch,
    OpenCV and encoding thread each; rounds as in :func:`rounds`. The shards of the three jobs must be
    byte-identical (``identical``)."""
    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        sampler = tiny_sampler(rows, batch, TINY_DQ_INPUT)
        job_batches = [range(lo, min(lo + batch, rows)) for lo in range(0, rows, batch)]
        generated = {b.start: sampler.propose(b) for b in job_batches}
        replay = dataclasses.replace(sampler, propose=lambda b: [dataclasses.replace(c) for c in generated[b[0]]])
        with tempfile.TemporaryDirectory() as tmp:
            folders = {name: Path(tmp) / name for name in ("rest", "end_to_end", "sequential")}
            fns = {
                "generation": lambda _: [sampler.propose(b) for b in job_batches],
                "rest": lambda _: sample_job(replay, rows, folders["rest"], overlap=False),
                "end_to_end": lambda _: sample_job(sampler, rows, folders["end_to_end"], overlap=True),
                "sequential": lambda _: sample_job(sampler, rows, folders["sequential"], overlap=False),
            }
            times = rounds(fns, [range(rows)] * (repeats + 1))  # seconds per pair
            digests = {name: file_sha256(folder / "shard.parquet") for name, folder in folders.items()}
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
    rates = {f"{name}_pairs_per_s": 1 / min(t) for name, t in times.items()}
    slower = min(rates["generation_pairs_per_s"], rates["rest_pairs_per_s"])
    return {
        "model": "tiny (64 px) + G_mask; D_q input 224",
        "rows": rows,
        "batch": batch,
        "repeats": repeats,
        **rates,
        "ratio_to_slower_half": rates["end_to_end_pairs_per_s"] / slower,
        "ratio_to_sequential": rates["end_to_end_pairs_per_s"] / rates["sequential_pairs_per_s"],
        "identical": len(set(digests.values())) == 1,
        "rounds_s_per_pair": times,
    }


def peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM of /proc/self/status where there is one. Not getrusage's ru_maxrss:
    Linux carries into it the RSS of the parent a child was forked (or vforked) from before its exec."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024  # kB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_child(rows: int, batch: int) -> dict[str, object]:
    """In a fresh process: one sample job of ``rows`` pairs in one shard (:func:`tiny_sampler` without D_q,
    overlap on, one torch / OpenCV / encoding thread) and the process's peak RSS after the setup and at the end."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sampler = tiny_sampler(rows, batch, None)
    setup = peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        stats = sample_job(sampler, rows, Path(tmp), overlap=True)
        seconds = time.perf_counter() - start
        shard_mb = (Path(tmp) / "shard.parquet").stat().st_size / 1e6
    return {
        "rows": rows,
        "kept": stats["kept"],
        "seconds": seconds,
        "shard_MB": shard_mb,
        "setup_peak_rss_MiB": setup,
        "peak_rss_MiB": peak_rss_mib(),
    }


def memory(rows: Sequence[int], batch: int) -> dict[str, object]:
    """Peak RSS of one sample job per entry of ``rows`` (pairs in its one shard), each in a fresh process
    (:func:`rss_child`); ``growth``: the last peak over the first."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import sample_cost;"
        " print(json.dumps(sample_cost.rss_child(int(sys.argv[1]), int(sys.argv[2]))))"
    )
    jobs = []
    for count in rows:
        done = subprocess.run(
            [sys.executable, "-c", code, str(count), str(batch)], capture_output=True, text=True, cwd=REPO
        )
        if done.returncode != 0:
            raise RuntimeError(f"the sample job of {count} pairs failed:\n{done.stderr[-3000:]}")
        jobs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "model": "tiny (64 px) + G_mask, no D_q",
        "batch": batch,
        "jobs": jobs,
        "growth": jobs[-1]["peak_rss_MiB"] / jobs[0]["peak_rss_MiB"],
    }


def job_markdown(jobs: Mapping[str, dict]) -> str:
    """The overlap and memory figures of a sample job as lines of text."""
    lines = []
    if "overlap" in jobs:
        o = jobs["overlap"]
        lines.append(
            f"\nsample job, {o['model']}, {o['rows']} pairs, batch {o['batch']}, 1 thread each: end to end with"
            f" overlap {o['end_to_end_pairs_per_s']:.1f} pairs/s, generation alone {o['generation_pairs_per_s']:.1f},"
            f" the rest alone {o['rest_pairs_per_s']:.1f}, sequential {o['sequential_pairs_per_s']:.1f}:"
            f" {o['ratio_to_slower_half']:.2f} x the slower half, {o['ratio_to_sequential']:.2f} x sequential;"
            f" shards {'identical' if o['identical'] else 'DIFFER'}"
        )
    if "memory" in jobs:
        m = jobs["memory"]
        peaks = ", ".join(f"{j['rows']} pairs {j['peak_rss_MiB']:.0f} MiB ({j['seconds']:.0f} s)" for j in m["jobs"])
        lines.append(f"\npeak RSS of a one-shard sample job, {m['model']}: {peaks}; growth {m['growth']:.3f}")
    return "\n".join(lines)


def busy_jiffies() -> int:
    """Non-idle CPU time of the whole machine, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def own_cpu_s() -> float:
    """CPU seconds of this process and of its children it has waited for (the memory jobs' processes)."""
    return sum(os.times()[:4])


def others_cores(start: float, busy: int, own: float) -> float:
    """Average cores that other processes kept busy since ``start`` (from busy_jiffies() and own_cpu_s())."""
    elapsed = time.perf_counter() - start
    others = (busy_jiffies() - busy) / os.sysconf("SC_CLK_TCK") - (own_cpu_s() - own)
    return round(max(others / elapsed, 0.0), 2)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, write its JSON, print its tables; return what the JSON holds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256], choices=[128, 256, 512])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--writer-rows", type=int, default=64)
    parser.add_argument("--overlap-rows", type=int, default=512, help="pairs of the overlap job (0: skip it)")
    parser.add_argument("--overlap-batch", type=int, default=16)
    parser.add_argument("--overlap-repeats", type=int, default=3)
    parser.add_argument(
        "--memory-rows", type=int, nargs="*", default=[1000, 10000], help="pairs of each memory job (none: skip)"
    )
    parser.add_argument("--memory-batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    cpus = os.cpu_count() or 1
    torch.set_num_threads(cpus)
    print(
        f"torch {torch.__version__}, {cpus} CPUs, {torch.get_num_threads()} torch threads, CPU fp32,"
        f" batch {args.batch}, best of {args.repeats} rounds after a warm-up batch",
        flush=True,
    )
    start, busy0, own0 = time.perf_counter(), busy_jiffies(), own_cpu_s()
    rows = {}
    for res in args.resolutions:
        res_start, res_busy, res_own = time.perf_counter(), busy_jiffies(), own_cpu_s()
        rows[res] = measure(res, args.batch, args.repeats, args.writer_rows)
        rows[res]["other_processes_cores"] = others_cores(res_start, res_busy, res_own)
        print(f"{model_name(res)}: {json.dumps(rows[res])}", flush=True)
    jobs: dict[str, dict] = {}
    if args.overlap_rows:
        job_start, job_busy, job_own = time.perf_counter(), busy_jiffies(), own_cpu_s()
        jobs["overlap"] = overlap(args.overlap_rows, args.overlap_batch, args.overlap_repeats)
        jobs["overlap"]["other_processes_cores"] = others_cores(job_start, job_busy, job_own)
        print(f"overlap: {json.dumps(jobs['overlap'])}", flush=True)
    if args.memory_rows:
        job_start, job_busy, job_own = time.perf_counter(), busy_jiffies(), own_cpu_s()
        jobs["memory"] = memory(args.memory_rows, args.memory_batch)
        jobs["memory"]["other_processes_cores"] = others_cores(job_start, job_busy, job_own)
        print(f"memory: {json.dumps(jobs['memory'])}", flush=True)
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
        **jobs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print()
    print(markdown(rows, args.batch) if rows else "(no pipelines measured)")
    print(job_markdown(jobs))
    busy = ", ".join(f"{model_name(res)} {r['other_processes_cores']}" for res, r in rows.items())
    print(
        f"\nruntime {elapsed:.0f} s; other processes used {machine['other_processes_cores']} of {cpus} cores"
        f" on average meanwhile ({busy}); JSON: {args.out}"
    )
    return result


if __name__ == "__main__":
    main()
