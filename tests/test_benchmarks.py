"""benchmarks/run.py --quick end to end (figures present and positive, no timing assertions), and the
bf16 peak table."""

from __future__ import annotations

import contextlib
import importlib.util
import json

import pytest
import torch
from conftest import REPO

spec = importlib.util.spec_from_file_location("benchmarks_run", REPO / "benchmarks" / "run.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
import cuda_tuning  # noqa: E402 (on sys.path once benchmarks/run.py is loaded)

BENCHMARKS = {"sampling", "fusion", "gmask_step", "shard_writer", "overlap", "memory", "evaluation", "cuda_bf16"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    bench.main(["--quick", "--out-dir", str(out)])
    return json.loads((out / "benchmarks.json").read_text()), (out / "benchmarks.md").read_text()


def test_quick_run_has_every_benchmark_with_positive_figures(quick_run):
    report, _ = quick_run
    assert set(report["benchmarks"]) == BENCHMARKS
    for name in BENCHMARKS - {"cuda_bf16"}:
        figures = report["benchmarks"][name]["figures"]
        assert figures, name
        for f in figures:
            assert f["value"] > 0 and f["ratio"] > 0, (name, f)
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["torch"] == torch.__version__ and machine["date"]


def test_quick_run_table_has_one_row_per_figure(quick_run):
    report, table = quick_run
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # minus the header
    figures = [f for b in report["benchmarks"].values() for f in b["figures"]]
    assert len(rows) == len(figures)
    assert all(f["figure"] in row for f, row in zip(figures, rows, strict=True))


def test_quick_run_measures_the_writer_settings_the_overlap_the_memory_and_the_gmask_step(quick_run):
    report, _ = quick_run
    writer = [f["ratio_what"] for f in report["benchmarks"]["shard_writer"]["figures"]]
    assert {"x zlib-6 pairs/s", "default / zlib-6 bytes", "2 threads / 1"} <= set(writer)
    overlap = report["benchmarks"]["overlap"]["result"]
    assert overlap["identical"]  # overlapped, sequential and replayed jobs write the same shard
    slower = min(overlap["generation_pairs_per_s"], overlap["rest_pairs_per_s"])
    assert overlap["ratio_to_slower_half"] == pytest.approx(overlap["end_to_end_pairs_per_s"] / slower)
    memory = report["benchmarks"]["memory"]["result"]
    assert [job["rows"] for job in memory["jobs"]] == bench.SIZES["quick"]["memory"]["rows"]
    for job in memory["jobs"]:
        assert job["kept"] == job["rows"] and job["peak_rss_MiB"] >= job["setup_peak_rss_MiB"] > 0
    step = report["benchmarks"]["gmask_step"]["result"]
    assert step["settings"]["steps"] == bench.SIZES["quick"]["gmask_step"]["steps"]
    assert step["ratio"] == pytest.approx(step["before_s"] / step["after_s"])
    stages = {"sample job overlap (sample_cost.overlap)", "sample job memory (sample_cost.memory)"}
    assert stages <= set(report["stages"])


def test_quick_run_evaluation_agrees_with_plain_pysodmetrics(quick_run):
    agreement = quick_run[0]["benchmarks"]["evaluation"]["result"]["results"]["agreement"]
    assert agreement["agree"], agreement


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU skip")
def test_quick_run_skips_cuda_with_reason_but_counts_flops(quick_run):
    cuda = quick_run[0]["benchmarks"]["cuda_bf16"]
    assert cuda["skipped"] and "CUDA" in cuda["reason"]
    # torch's FlopCounterMode on one biggan-deep-256 forward: a count, not a timing, so it is exact
    assert cuda["result"]["generator_gflop_per_image"] == pytest.approx(52.30, abs=0.01)
    assert cuda["result"]["pair_gflop"] > cuda["result"]["generator_gflop_per_image"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_quick_run_reports_cuda_throughput(quick_run):
    cuda = quick_run[0]["benchmarks"]["cuda_bf16"]
    assert not cuda["skipped"]
    result = cuda["result"]
    assert result["pairs_per_s"] > 0 and result["achieved_tflops"] > 0
    assert result["fraction_of_peak"] is None or 0 < result["fraction_of_peak"] < 1


def test_fraction_of_peak_by_device_name():
    assert cuda_tuning.fraction_of_peak("NVIDIA H100 80GB HBM3", 494.7e12) == pytest.approx(0.5)
    assert cuda_tuning.fraction_of_peak("NVIDIA H100 PCIe", 378e12) == pytest.approx(0.5)
    assert cuda_tuning.fraction_of_peak("NVIDIA H200", 989.4e12) == pytest.approx(1.0)
    assert cuda_tuning.fraction_of_peak("NVIDIA A100-SXM4-80GB", 156e12) == pytest.approx(0.5)
    assert cuda_tuning.fraction_of_peak("NVIDIA GeForce GTX 1080", 1e12) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_cuda_tuning_runs_its_variants_copies_and_sample_job_on_the_cpu(tmp_path):
    report = cuda_tuning.main(["--batch", "2", "--repeats", "1", "--rows", "6", "--out", str(tmp_path / "t.json")])
    assert json.loads((tmp_path / "t.json").read_text())["model"] == "tiny"
    fp32 = report["compute"]["fp32"]  # the reference agrees with itself exactly
    assert fp32["mask_agreement_with_fp32"] == 1.0 and fp32["image_max_abs_diff_to_fp32"] == 0.0
    assert fp32["pairs_per_s"] > 0 and fp32["fraction_of_peak"] is None
    copies = report["host_copies"]  # uint8 made on the device equals today's uint8 from float32 on the host
    assert copies["uint8_identical"] and not copies["pinned"]
    assert report["sample_job"]["pairs_per_s"] > 0 and report["sample_job"]["rows"] == 6
    assert "| fp32 | 2 |" in cuda_tuning.markdown(report)


def test_cuda_tuning_precision_rule_replaces_the_generators(monkeypatch):
    net, name = bench.gmask_cost.random_net("tiny"), "tiny"
    seen = []
    monkeypatch.setattr(cuda_tuning, "precision", lambda mode, device: seen.append(mode) or contextlib.nullcontext())
    step = cuda_tuning.PairStep(net, name, torch.device("cpu"), "tf32")
    z, ids = cuda_tuning.latents(1, step.gen)
    images, masks = step(z, ids)
    assert seen == ["tf32", "tf32"]  # the generator's rule and G_mask's
    assert images.shape[0] == masks.shape[0] == 1 and masks.dtype == torch.bool


def test_only_runs_the_named_stages(tmp_path):
    report = bench.main(["--quick", "--only", "cuda", "--out-dir", str(tmp_path)])
    assert list(report["benchmarks"]) == ["cuda_bf16"] and list(report["stages"]) == [
        "CUDA bf16 throughput and tuning (cuda_tuning)"
    ]
    assert json.loads((tmp_path / "benchmarks.json").read_text())["settings"]["only"] == ["cuda"]
