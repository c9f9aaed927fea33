"""Sampling runs on the tiny PyTorch generator: G_mask and direction-shift shards, D_q calibration, resume."""

from __future__ import annotations

import copy
import hashlib
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from synthsod.core.images import LUMA
from synthsod.directions.contrast import contrast_direction
from synthsod.directions.files import save_direction
from synthsod.errors import SynthsodError
from synthsod.generators import create_generator
from synthsod.generators.biggan import save_pretrained
from synthsod.generators.latents import LatentSource
from synthsod.generators.tiny import build_tiny_biggan
from synthsod.sod.datasets import ShardDataset
from synthsod.sodgan.dq import QualityDiscriminator, save_dq
from synthsod.sodgan.gmask import GMask
from synthsod.sodgan.gmask_infer import save_gmask
from synthsod.sodgan.gmask_train import GMaskConfig
from synthsod.synthesis.filters import quantile_threshold
from synthsod.synthesis.runs import RunFiles, calibrate, open_run, write_run_shard
from synthsod.synthesis.sampling import calibration_indices, candidate_block, cheap_filters, sample_id, shard_rows
from synthsod.synthesis.shards import iter_shard_rows, read_shard, verify_run, write_manifest

TRUNCATION = 0.4
RUN = {
    "generator": "tiny",
    "pairs": 7,
    "rows_per_shard": 3,
    "truncation": TRUNCATION,
    "classes": {"include": "all", "discard": []},
    "latents": {"source": "prior", "alpha": 0.2, "dataset": None},
    "mask": {"method": "gmask", "threshold": 0.5, "direction": "contrast", "shift": 5.0, "compare": "base"},
    "filters": {
        "components": {"fraction": 0.2, "connectivity": 4},
        "size": {"min": 0.0, "max": 1.0},
        "histogram": None,
        "dq": {"threshold": 0.0, "keep_top": None, "calibration": 16},
    },
    "image_format": "png",
    "jpeg_quality": 95,
    "batch_size": 4,
    "max_candidates_factor": 20,
    "seed": 3,
}
GENERATOR = {"model": "tiny", "taps": None}


def run_config(**changes) -> dict:
    run = copy.deepcopy(RUN)
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            run[section][sub] = value
        else:
            run[section] = value
    return run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny generator on disk with a random-init G_mask and D_q, a latent table and a direction."""
    root = tmp_path_factory.mktemp("run_world")
    save_pretrained(build_tiny_biggan(seed=0), root / "tiny")
    generator = create_generator("tiny", str(root / "tiny"))
    torch.manual_seed(0)
    gmask = GMask(generator.feature_shapes, generator.resolution)
    gmask.head[-1].bias.data = torch.tensor([0.0, 0.0])
    save_gmask(root / "gmask.pt", gmask.eval(), GMaskConfig(), generator="tiny", truncation=TRUNCATION)
    save_dq(root / "dq.pt", QualityDiscriminator(input_size=64), "mobilenetv3_small_100")
    save_dq(root / "no_dq.pt", None, "mobilenetv3_small_100")
    z = np.random.default_rng(0).standard_normal((5, generator.z_dim)).astype(np.float32) * 0.5
    pq.write_table(
        pa.table({"id": [f"im{i}" for i in range(5)], "z": list(z), "class": [7, 7, 9, 9, 9], "truncation": [0.6] * 5}),
        root / "latents.parquet",
    )
    save_direction(
        root / "contrast.npy", contrast_direction(generator, TRUNCATION, np.arange(1000), samples=4, iterations=3)
    )
    files = RunFiles(
        weights=str(root / "tiny"),
        gmask=str(root / "gmask.pt"),
        dq=str(root / "dq.pt"),
        latents=str(root / "latents.parquet"),
        direction=str(root / "contrast.npy"),
    )
    return root, files, generator


def write_shards(name, run, files, out_dir, shards, sampler=None, **options):
    sampler = sampler or open_run(name, run, GENERATOR, files)
    for k in shards:
        stem = f"shard-{k:05d}"
        write_run_shard(
            sampler,
            k,
            shard_rows(run["pairs"], run["rows_per_shard"], k),
            files,
            {
                "shard": out_dir / f"{stem}.parquet",
                "stats": out_dir / "stats" / f"{stem}.json",
                "rejected": out_dir / "rejected" / f"{stem}.parquet",
            },
            **options,
        )
    return sampler


def digests(folder, pattern="shard-*.parquet"):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob(pattern))}


def outputs(folder):
    """Every file a sample job writes: shards and rejected examples by sha256, stats without the timing."""
    stats = {p.name: json.loads(p.read_text()) for p in sorted((folder / "stats").glob("*.json"))}
    for entry in stats.values():
        del entry["seconds"]
    return digests(folder), digests(folder / "rejected", "*.parquet"), stats


def test_one_job_or_three_jobs_write_the_same_shards_and_a_verified_run(world, tmp_path):
    root, files, _ = world
    run = run_config()
    write_shards("r", run, files, tmp_path / "one", [0, 1, 2])  # one job writes every shard
    for k in (2, 0, 1):  # three jobs, any order
        write_shards("r", run, files, tmp_path / "three", [k])
    assert digests(tmp_path / "one") == digests(tmp_path / "three") and len(digests(tmp_path / "one")) == 3

    shards = sorted((tmp_path / "one").glob("shard-*.parquet"))
    write_manifest(tmp_path / "one", shards, {"run": "r"})
    assert verify_run(tmp_path / "one") == {"shards": 3, "rows": 7}
    table = pa.concat_tables([read_shard(p) for p in shards])
    assert table.num_rows == 7 and len(set(table.column("id").to_pylist())) == 7
    row = table.slice(0, 1).to_pylist()[0]
    assert row["generator"] == "tiny" and row["truncation"] == TRUNCATION and row["seed"] == 3
    assert row["filters"] == ["components", "size", "dq"] and row["dq_score"] is not None
    assert row["direction"] is None and len(row["latent"]) == 128
    assert min(table.column("index").to_pylist()[3:6]) >= 3 * 20  # shard 1 draws from its own block
    item = ShardDataset(tmp_path / "one")[6]
    assert item["image"].shape == (3, 64, 64) and set(item["mask"].unique().tolist()) <= {0.0, 1.0}


def test_overlap_and_encoding_threads_change_no_byte(world, tmp_path):
    """A sample job's files are the same with the generator on a producer thread or not, and with 1 or 2
    encoding threads (the size filter rejects some candidates, so the rejected file is not empty)."""
    root, files, _ = world
    probe = open_run("r", run_config(), GENERATOR, files)
    fractions = [float(np.mean(c.mask)) for c in probe.propose(range(12))]
    run = run_config(filters__size={"min": 0.0, "max": float(np.median(fractions))})
    run["rows_per_shard"], run["batch_size"] = 5, 3
    sampler = open_run("r", run, GENERATOR, files)
    for overlap, workers in ((False, 1), (True, 1), (True, 2), (False, 2)):
        write_shards(
            "r", run, files, tmp_path / f"{overlap}-{workers}", [0, 1], sampler, overlap=overlap, workers=workers
        )
    results = [outputs(tmp_path / f"{o}-{w}") for o, w in ((False, 1), (True, 1), (True, 2), (False, 2))]
    assert all(result == results[0] for result in results[1:])
    shards, rejected, stats = results[0]
    assert len(shards) == 2 and len(rejected) == 2 and stats["shard-00000.json"]["rejected"]["size"] > 0


def test_a_failing_job_leaves_no_partial_shard_and_its_rerun_writes_the_same_bytes(world, tmp_path):
    """An error part-way through a shard (here: the generator, on the producer thread) leaves no shard and no
    temporary file; the rerun writes what an uninterrupted job writes."""
    root, files, _ = world
    run = run_config(batch_size=1)
    write_shards("r", run, files, tmp_path / "full", [1])
    sampler = open_run("r", run, GENERATOR, files)
    propose = sampler.propose

    def failing(indices):  # the shard's third candidate: after two rows went to the writer
        if indices[0] >= candidate_block(1, 3, 20)[2]:
            raise SynthsodError("the GPU fell off the bus")
        return propose(indices)

    sampler.propose = failing
    rerun = tmp_path / "rerun"
    with pytest.raises(SynthsodError, match="fell off"):
        write_shards("r", run, files, rerun, [1], sampler, workers=2)
    assert not [p for p in rerun.rglob("*") if p.is_file()]
    sampler.propose = propose
    write_shards("r", run, files, rerun, [1], sampler, workers=2)
    assert outputs(rerun) == outputs(tmp_path / "full")


def test_a_killed_run_resumes_to_the_same_bytes(world, tmp_path):
    root, files, _ = world
    run = run_config()
    write_shards("r", run, files, tmp_path / "full", [0, 1, 2])
    resumed = tmp_path / "resumed"
    write_shards("r", run, files, resumed, [0])
    (resumed / "shard-00001.parquet.tmp-killed").write_bytes(b"half a shard")  # what a kill leaves behind
    write_shards("r", run, files, resumed, [1, 2])
    assert digests(resumed) == digests(tmp_path / "full")


def test_keep_top_calibration_fixes_the_threshold_and_the_shards_respect_it(world, tmp_path):
    root, files, _ = world
    run = run_config(filters__dq={"threshold": None, "keep_top": 0.5, "calibration": 16})
    sampler = open_run("r", run, GENERATOR, files)
    threshold = calibrate(sampler, tmp_path / "calibration.json", tmp_path / "calibration.parquet")
    record = json.loads((tmp_path / "calibration.json").read_text())
    assert record["threshold"] == threshold and record["scored"] == 16  # size [0, 1] passes every one
    survivors = sampler.propose(range(2**50, 2**50 + 16))
    assert all(cheap_filters(c, sampler.filters) is None for c in survivors)  # cleans the masks as calibrate did
    scores = sampler.score([c.image for c in survivors], [c.mask for c in survivors])
    assert threshold == pytest.approx(quantile_threshold(scores, 0.5))
    files = RunFiles(**{**files.__dict__, "calibration": str(tmp_path / "calibration.json")})
    write_shards("r", run, files, tmp_path, [0], sampler)
    rows = read_shard(tmp_path / "shard-00000.parquet").to_pylist()
    assert all(row["dq_score"] >= threshold for row in rows)
    stats = json.loads((tmp_path / "stats/shard-00000.json").read_text())
    # D_q is the only filter that rejects here (size [0, 1]): every candidate not kept is its rejection
    assert stats["rejected"]["dq"] == stats["candidates"] - stats["kept"] and stats["kept"] == len(rows)


def test_calibration_writes_every_scored_survivor_with_its_score(world, tmp_path):
    """The calibration's candidates file: exactly the candidates that passed the cheaper filters, in order,
    as shard rows with their D_q scores, split by the threshold into the keep_top share and the rest."""
    root, files, _ = world
    keep_top = 0.75
    # a size limit at the median mask fraction, so that the cheaper filters reject some candidates
    probe = open_run("r", run_config(), GENERATOR, files)
    fractions = [float(np.mean(c.mask)) for c in probe.propose(calibration_indices(16))]
    limit = float(np.median(fractions))
    run = run_config(
        filters__size={"min": 0.0, "max": limit},
        filters__dq={"threshold": None, "keep_top": keep_top, "calibration": 16},
    )
    sampler = open_run("r", run, GENERATOR, files)
    threshold = calibrate(sampler, tmp_path / "calibration.json", tmp_path / "candidates.parquet")

    indices, batch = calibration_indices(16), run["batch_size"]
    proposed = [c for lo in range(0, 16, batch) for c in sampler.propose(indices[lo : lo + batch])]  # as calibrate
    survivors = [c for c in proposed if cheap_filters(c, sampler.filters) is None]
    assert 0 < len(survivors) < 16, "the size limit should reject some candidates, not all"
    scores = sampler.score([c.image for c in survivors], [c.mask for c in survivors])
    rows = list(iter_shard_rows([tmp_path / "candidates.parquet"]))
    assert json.loads((tmp_path / "calibration.json").read_text())["scored"] == len(rows) == len(survivors)
    assert [row["id"] for row in rows] == [sample_id("r", c.index) for c in survivors]
    for row, candidate, score in zip(rows, survivors, scores):
        assert row["dq_score"] == pytest.approx(float(score), abs=1e-6)
        assert np.array_equal(row["image"], candidate.image) and np.array_equal(row["mask"], candidate.mask)
        assert row["filters"] == ["components", "size"]  # the filters it passed; D_q only scored it
        assert row["mask_fraction"] <= limit
    kept = sum(row["dq_score"] >= threshold for row in rows)
    assert kept == math.ceil(keep_top * len(rows))  # distinct scores: exactly the top share
    assert threshold == pytest.approx(min(row["dq_score"] for row in rows if row["dq_score"] >= threshold))


def test_direction_run_on_inverted_latents_records_its_provenance(world, tmp_path):
    root, files, _ = world
    run = run_config(
        truncation=None,
        latents__source="inverted",
        mask={"method": "direction", "threshold": 0.5, "direction": "contrast", "shift": 5.0, "compare": "base"},
        filters={"components": {"fraction": 0.2, "connectivity": 4}, "size": None, "histogram": None, "dq": None},
        classes={"include": [9], "discard": []},
    )
    write_shards("e", run, files, tmp_path, [0])
    rows = read_shard(tmp_path / "shard-00000.parquet").to_pylist()
    assert len(rows) == 3
    assert {row["class"] for row in rows} == {9}  # class 7's latents are excluded by `classes`
    assert all(row["direction"] == "contrast" and row["shift"] == 5.0 for row in rows)
    assert all(row["truncation"] == 0.6 for row in rows)  # null: the inversion's truncation
    assert rows[0]["filters"] == ["components"]


def test_a_too_strict_filter_stops_the_shard_with_a_clear_error(world, tmp_path):
    root, files, _ = world
    run = run_config(
        filters__size={"min": 0.0, "max": 1.0}, filters__dq={"threshold": 0.999, "keep_top": None, "calibration": 16}
    )
    run["max_candidates_factor"] = 1
    with pytest.raises(SynthsodError, match="only .* pairs kept after 3 candidates"):
        write_shards("r", run, files, tmp_path, [0])  # a random D_q scores ~0.5: 0.999 keeps none


def test_run_without_a_trained_dq_fails_plainly(world):
    root, files, _ = world
    files = RunFiles(**{**files.__dict__, "dq": str(root / "no_dq.pt")})
    with pytest.raises(SynthsodError, match="trained without D_q"):
        open_run("r", run_config(), GENERATOR, files)


def test_contrast_direction_is_unit_deterministic_and_lights_the_image_unevenly(world):
    _, _, generator = world
    classes = np.arange(1000)
    h = contrast_direction(generator, TRUNCATION, classes, samples=6, iterations=5, seed=1)
    assert h.shape == (generator.z_dim,) and np.linalg.norm(h) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(
        h, contrast_direction(generator, TRUNCATION, classes, samples=6, iterations=5, seed=1)
    )
    z, ids = LatentSource(1, generator.z_dim, TRUNCATION, classes).draw(range(6))  # the search's samples
    luma = torch.tensor(LUMA, dtype=torch.float32)[None, :, None, None]

    def gray_change(direction, eps=1e-2):
        """d gray(G(z + t direction)) / dt at t = 0, by a central difference: [6, H, W]."""

        def gray(t):
            images = generator.generate(z + t * direction, ids, TRUNCATION, with_features=False).images
            return (images * luma).sum(dim=1)

        return (gray(eps) - gray(-eps)) / (2 * eps)

    change = gray_change(h)
    random_h = np.random.default_rng(0).standard_normal(generator.z_dim).astype(np.float32)
    random_change = gray_change(random_h / np.linalg.norm(random_h))
    assert change.mean(dim=(1, 2)).abs().max() < 0.1 * change.std()  # no whole-image brightening
    assert change.std() > 2 * random_change.std()  # far more uneven than chance
