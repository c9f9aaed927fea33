"""What pays on a GPU for biggan-deep-256 + G_mask sampling: the tuning variants of issue 22, in one run.

Usage: ``python benchmarks/cuda_tuning.py [--batch 32] [--repeats 10] [--rows 2048] [--out OUT.json]``
(``benchmarks/run.py`` runs it too, on a machine with CUDA)

Everything is measured on one random-init biggan-deep-256 of the released architecture and one random
G_mask (costs do not depend on the weights' values), CUDA-synchronised, best of ``--repeats`` calls
after a warm-up call (compiled variants: after their compilation, which is reported apart).

* **compute variants**: generator forward with feature taps + G_mask's masks (what the sampling stage
  computes per batch, left on the device), pairs/s and the fraction of the bf16 peak
  (:data:`PEAK_BF16_FLOPS`, FLOPs from torch's counter). ``bf16-autocast`` is what the code does
  today (:func:`synthsod.core.gpu.autocast`), the *before*; the others replace that precision rule
  for the generator (by patching it where the generator looks it up) and add:

  - ``fp32`` and ``tf32``: no autocast (TF32 matrix units off / on), the references;
  - ``bf16-channels-last``: the network's weights in channels-last layout;
  - ``bf16-compile``: the generator and G_mask each under ``torch.compile`` (default mode);
  - ``bf16-compile-cudagraphs``: the same with ``mode="reduce-overhead"``, CUDA graphs at the fixed batch;
  - ``bf16-batch-<2b>``: today's rule at twice the batch.

  Each variant's masks are compared with the fp32 masks (share of equal pixels) and its images (max
  absolute difference in [-1, 1]), so a variant that is fast because it is wrong shows. A variant that
  fails (compilation is the likely one) is reported with its error; the others still run.
* **host copies**: one batch's images and masks from the device to numpy as the proposer does it today
  (float32 images, then uint8 and grey on the CPU) against uint8 images converted on the device and
  copied into pinned memory without blocking; pairs/s of the copy and conversion alone.
* **sample job**: :func:`synthsod.synthesis.runs.write_run_shard` end to end on the GPU (today's code:
  generation on its own thread, D_q at 224 on the GPU, PNG on every core), ``--rows`` pairs; its pairs/s
  over the compute alone says whether the CPU side keeps up.

Without CUDA it runs the same code on the tiny 64 px generator on the CPU, without the compiled and
bf16 variants (that is what the tests check); its figures say nothing about a GPU.
Writes ``--out`` (JSON) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sample_cost  # noqa: E402
from gmask_cost import REPO, TRUNCATION, model_name, random_net, timed  # noqa: E402
from pytorch_pretrained_biggan import BigGAN  # noqa: E402

from synthsod.core.images import LUMA, nhwc_gray, to_uint8_nhwc  # noqa: E402
from synthsod.generators.biggan import BigGANGenerator  # noqa: E402
from synthsod.generators.latents import sample_latents  # noqa: E402
from synthsod.sodgan.gmask import GMask, foreground_probability  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "cuda_tuning.json"
BEFORE = "bf16-autocast"
PRECISION_RULE = "synthsod.generators.biggan.autocast"  # where BigGANGenerator looks its precision up
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, FLOP/s; the first name that is
# a substring of torch's device name wins, so the more specific names come first.
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835.5e12),
    ("H100", 989.4e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200 NVL", 835.5e12),
    ("H200", 989.4e12),
    ("A100", 312e12),
    ("L40S", 362.05e12),
    ("L40", 181.05e12),
    ("L4", 121e12),
)


def peak_bf16_flops(device_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a GPU by torch's device name; None when it is not in the table."""
    return next((peak for name, peak in PEAK_BF16_FLOPS if name.lower() in device_name.lower()), None)


def fraction_of_peak(device_name: str, flops_per_s: float) -> float | None:
    """Achieved FLOP/s as a fraction of the device's dense bf16 peak; None for a device not in the table."""
    peak = peak_bf16_flops(device_name)
    return None if peak is None else flops_per_s / peak


def counted_gflop(fn) -> float:
    """GFLOP of one call of ``fn`` by torch's FLOP counter (convolutions, matmuls, attention bmm)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


GPU_MODEL = model_name(256)  # what the GPU figures are of; without CUDA the variants run on "tiny"


TF32_DEFAULTS = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)  # torch's, as the code runs


def precision(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of a precision mode (``fp32``, ``tf32``, ``bf16``) on ``device``; sets the TF32
    switches for it (``bf16``: torch's defaults, as the sampling stage runs)."""
    tf32 = {"fp32": (False, False), "tf32": (True, True)}.get(mode, TF32_DEFAULTS)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    if mode == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class PairStep:
    """One variant's pair computation: ``step(z, class_ids)`` -> (images [N, 3, R, R] float32, bool masks
    [N, R, R]) on the device, with the generator's precision rule replaced by the variant's."""

    def __init__(
        self,
        net: BigGAN,
        name: str,
        device: torch.device,
        mode: str,
        channels_last: bool = False,
        compile_mode: str | None = None,
    ):
        net = copy.deepcopy(net)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.gen = BigGANGenerator(net, name, device=device)
        torch.manual_seed(0)
        self.gmask = GMask(self.gen.feature_shapes, self.gen.resolution).to(device).eval()
        if compile_mode is not None:  # the two networks, not this step: the precision patch stays outside
            self.gen.net = torch.compile(self.gen.net, mode=compile_mode)  # its feature hooks are traced in
            self.gmask = torch.compile(self.gmask, mode=compile_mode)
        self.device, self.mode = device, mode

    @torch.no_grad()
    def __call__(self, z: torch.Tensor, class_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with mock.patch(PRECISION_RULE, lambda device: precision(self.mode, device)):
            out = self.gen.generate(z, class_ids, TRUNCATION)
        with precision(self.mode, self.device):
            logits = self.gmask(out.features)
        return out.images, foreground_probability(logits.float())[:, 0] > 0.5


def flop_counts(step: PairStep) -> dict[str, float]:
    """GFLOP of one image of the bare generator and of one pair (``step``), by torch's FLOP counter: a count
    of the architecture, the same on any device."""
    z, ids = latents(1, step.gen)
    return {
        "generator_gflop_per_image": counted_gflop(lambda: step.gen.generate(z, ids, TRUNCATION, with_features=False)),
        "pair_gflop": counted_gflop(lambda: step(z, ids)),
    }


def variants(batch: int, cuda: bool) -> dict[str, dict]:
    """Name -> (mode, channels_last, compile mode or None, batch); CPU: the fp32 reference only."""
    table = {"fp32": {"mode": "fp32"}}
    if cuda:
        table |= {
            "tf32": {"mode": "tf32"},
            BEFORE: {"mode": "bf16"},
            "bf16-channels-last": {"mode": "bf16", "channels_last": True},
            "bf16-compile": {"mode": "bf16", "channels_last": True, "compile": "default"},
            "bf16-compile-cudagraphs": {"mode": "bf16", "channels_last": True, "compile": "reduce-overhead"},
            f"bf16-batch-{2 * batch}": {"mode": "bf16", "batch": 2 * batch},
        }
    return {name: {"channels_last": False, "compile": None, "batch": batch} | v for name, v in table.items()}


def latents(batch: int, gen: BigGANGenerator) -> tuple[torch.Tensor, torch.Tensor]:
    z, ids = sample_latents(0, range(batch), gen.z_dim, TRUNCATION, np.arange(gen.num_classes))
    return torch.as_tensor(z, device=gen.device), torch.as_tensor(ids, device=gen.device)


def synced(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    def call():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return call


def compute_variants(net, name, device, batch: int, repeats: int, pair_gflop: float, gpu: str | None) -> dict:
    """Each variant's pairs/s, fraction of the bf16 peak and agreement with fp32 (module docstring)."""
    results, reference = {}, None
    for vname, v in variants(batch, device.type == "cuda").items():
        try:
            step = PairStep(net, name, device, v["mode"], v["channels_last"], v["compile"])
            z, ids = latents(v["batch"], step.gen)
            start = time.perf_counter()
            images, masks = step(z, ids)
            n = min(batch, v["batch"])  # kept now: CUDA graphs overwrite their outputs on the next call
            images, masks = images[:n].float().cpu(), masks[:n].cpu()
            first_call_s = time.perf_counter() - start
            seconds = timed(synced(lambda step=step, z=z, ids=ids: step(z, ids), device), repeats)
        except Exception as error:  # one variant's failure (a compiler's, most likely) is a finding
            results[vname] = {"error": f"{type(error).__name__}: {error}"[:500]}
            print(f"{vname}: failed: {results[vname]['error']}", flush=True)
            continue
        reference = reference or (images, masks)
        pairs_per_s = v["batch"] / seconds
        results[vname] = {
            **v,
            "pairs_per_s": pairs_per_s,
            "first_call_s": first_call_s,
            "fraction_of_peak": None if gpu is None else fraction_of_peak(gpu, pairs_per_s * pair_gflop * 1e9),
            "mask_agreement_with_fp32": float((masks == reference[1]).float().mean()),
            "image_max_abs_diff_to_fp32": float((images - reference[0]).abs().max()),
        }
        print(f"{vname}: {json.dumps(results[vname])}", flush=True)
    if BEFORE in results and "pairs_per_s" in results[BEFORE]:
        base = results[BEFORE]["pairs_per_s"]
        for r in results.values():
            if "pairs_per_s" in r:
                r["x_before"] = r["pairs_per_s"] / base
    return results


def host_copies(step: PairStep, batch: int, repeats: int) -> dict:
    """Pairs/s of bringing one batch to numpy: today's float32 path against uint8 on the device + pinned."""
    z, ids = latents(batch, step.gen)
    images, masks = step(z, ids)
    pinned = step.device.type == "cuda"
    host = torch.empty((batch, *images.shape[2:], 3), dtype=torch.uint8, pin_memory=pinned)

    def today():  # as gmask_proposer: float32 NHWC to the host, then uint8 and grey there
        nhwc = images.permute(0, 2, 3, 1).float().cpu().numpy()
        return to_uint8_nhwc(nhwc), nhwc_gray(nhwc), masks.cpu().numpy()

    def on_device():  # uint8 and grey on the device, copied without blocking into pinned memory
        uint8 = ((images.permute(0, 2, 3, 1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        host.copy_(uint8, non_blocking=pinned)
        luma = torch.as_tensor(LUMA, dtype=torch.float32, device=images.device)
        gray = ((images.permute(0, 2, 3, 1).clamp(-1, 1) + 1.0) * 127.5) @ luma / 255.0
        out = gray.cpu().numpy(), masks.cpu().numpy()
        if pinned:
            torch.cuda.synchronize()
        return host.numpy(), *out

    rates = {name: batch / timed(fn, repeats) for name, fn in (("today", today), ("on_device_pinned", on_device))}
    same = bool(np.array_equal(today()[0], on_device()[0]))
    return rates | {"ratio": rates["on_device_pinned"] / rates["today"], "uint8_identical": same, "pinned": pinned}


def sample_job(net, name, device, rows: int, batch: int) -> dict:
    """Today's sample job end to end on ``device``: pairs/s, against the compute alone."""
    gen = BigGANGenerator(copy.deepcopy(net), name, device=device)
    sampler = sample_cost.job_sampler(gen, rows, batch, sample_cost.TINY_DQ_INPUT)
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sample_cost.sample_job(sampler, rows, Path(tmp), overlap=True, workers=workers)
        seconds = time.perf_counter() - start
    return {"rows": rows, "batch": batch, "workers": workers, "pairs_per_s": rows / seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rows", type=int, default=2048, help="pairs of the end-to-end sample job")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    name = GPU_MODEL if cuda else "tiny"
    net = random_net(name)
    gpu = torch.cuda.get_device_name(0) if cuda else None
    peak = peak_bf16_flops(gpu) if cuda else None
    report = {
        "device": gpu or "cpu",
        "model": name,
        **flop_counts(PairStep(net, name, device, "fp32")),
        "peak_bf16_tflops": None if peak is None else peak / 1e12,
        "settings": vars(args) | {"out": str(args.out)},
    }
    try:
        report["compute"] = compute_variants(net, name, device, args.batch, args.repeats, report["pair_gflop"], gpu)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = TF32_DEFAULTS
    report["host_copies"] = host_copies(
        PairStep(net, name, device, "bf16" if cuda else "fp32"), args.batch, args.repeats
    )
    report["sample_job"] = sample_job(net, name, device, args.rows, args.batch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(markdown(report))
    return report


def markdown(report: dict) -> str:
    lines = [
        f"{report['model']} + G_mask on {report['device']} ({report['pair_gflop']:.1f} GFLOP/pair)",
        "",
        "| variant | batch | pairs/s | x before | of bf16 peak | masks = fp32 | image diff | first call s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["compute"].items():
        if "error" in r:
            lines.append(f"| {name} | | failed: {r['error'][:120]} | | | | | |")
            continue
        peak = "—" if r["fraction_of_peak"] is None else f"{r['fraction_of_peak']:.3f}"
        lines.append(
            f"| {name} | {r['batch']} | {r['pairs_per_s']:.1f} | {r.get('x_before', float('nan')):.2f} | {peak}"
            f" | {r['mask_agreement_with_fp32']:.4f} | {r['image_max_abs_diff_to_fp32']:.3f}"
            f" | {r['first_call_s']:.1f} |"
        )
    h, s = report["host_copies"], report["sample_job"]
    lines += [
        "",
        f"host copies, batch {report['settings']['batch']}: today {h['today']:.0f} pairs/s, uint8 on the device"
        f"{' + pinned' if h['pinned'] else ''} {h['on_device_pinned']:.0f} ({h['ratio']:.2f}x;"
        f" uint8 {'identical' if h['uint8_identical'] else 'DIFFERENT'})",
        f"sample job end to end ({s['rows']} pairs, batch {s['batch']}, {s['workers']} PNG threads):"
        f" {s['pairs_per_s']:.1f} pairs/s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
