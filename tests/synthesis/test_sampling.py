"""The backend-neutral sampling core: shard plan, latents, direction-shift masks, the filter chain."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from synthsod.directions.files import load_direction, save_direction
from synthsod.directions.shift import shift_masks, unit_shift
from synthsod.errors import SynthsodError
from synthsod.generators.latents import LatentSource, restrict_table, sample_latents
from synthsod.synthesis.sampling import (
    QUEUE_BATCHES,
    REJECTED_EXAMPLES_PER_FILTER,
    Candidate,
    FilterSpec,
    candidate_block,
    judge,
    merge_stats,
    proposals,
    sample_shard,
    shard_count,
    shard_rows,
    shift_proposer,
)

SIZE = 8


def test_shard_plan_splits_pairs_and_gives_disjoint_candidate_blocks():
    assert shard_count(10, 4) == 3
    assert [shard_rows(10, 4, k) for k in range(3)] == [4, 4, 2]
    with pytest.raises(SynthsodError, match="outside"):
        shard_rows(10, 4, 3)
    blocks = [set(candidate_block(k, 4, 5)) for k in range(3)]
    assert all(len(b) == 20 for b in blocks)
    assert not (blocks[0] & blocks[1]) and not (blocks[1] & blocks[2])
    # raising `pairs` only appends shards: the earlier blocks and row counts do not move
    assert candidate_block(1, 4, 5) == range(20, 40) and shard_rows(100, 4, 1) == 4


def test_prior_latents_depend_only_on_seed_and_index():
    classes = np.array([3, 7, 11])
    source = LatentSource(seed=5, z_dim=6, truncation=0.4, classes=classes)
    z, ids = source.draw([10, 11, 12])
    z_one, ids_one = source.draw([11])
    np.testing.assert_array_equal(z[1], z_one[0])
    assert ids[1] == ids_one[0] and set(ids) <= set(classes)
    assert np.abs(z).max() <= 0.4 * 2.0  # truncation x the [-2, 2] truncated normal
    z_old, ids_old = sample_latents(5, [10, 11, 12], 6, 0.4, classes)  # the same stream as before
    np.testing.assert_array_equal(z, z_old)
    np.testing.assert_array_equal(ids, ids_old)


def test_untruncated_prior_is_unconditional_standard_normal():
    z, ids = LatentSource(seed=0, z_dim=64, truncation=None).draw(range(200))
    assert ids is None
    assert abs(z.std() - 1.0) < 0.05 and np.abs(z).max() > 2.0  # not truncated


def test_inverted_latents_are_table_rows_plus_alpha_noise():
    table = np.stack([np.full(32, 10.0), np.full(32, -10.0)]).astype(np.float32)
    source = LatentSource(seed=1, z_dim=32, table=table, table_classes=np.array([4, 9]), alpha=0.2)
    z, ids = source.draw(range(100))
    rows = np.where(ids == 4, 0, 1)
    noise = z - table[rows]
    assert set(ids) == {4, 9}
    assert abs(noise.std() - 0.2) < 0.01 and abs(noise.mean()) < 0.01


def test_restrict_table_keeps_allowed_classes_and_fails_when_none_is_left():
    table = np.arange(6, dtype=np.float32).reshape(3, 2)
    kept, classes = restrict_table(table, np.array([1, 2, 1]), np.array([1]))
    np.testing.assert_array_equal(kept, table[[0, 2]])
    assert classes.tolist() == [1, 1]
    with pytest.raises(SynthsodError, match="no inverted latent"):
        restrict_table(table, np.array([1, 2, 1]), np.array([5]))


def test_shift_masks_compare_with_base_or_with_own_mean():
    shifted = np.array([[[0.2, 0.8], [0.5, 0.1]]])
    base = np.array([[[0.3, 0.1], [0.5, 0.0]]])
    assert shift_masks(shifted, base, "base").tolist() == [[[False, True], [False, True]]]
    assert shift_masks(shifted, None, "mean").tolist() == [[[False, True], [True, False]]]  # mean 0.4
    with pytest.raises(SynthsodError, match="unshifted"):
        shift_masks(shifted, None, "base")


def test_unit_shift_scales_to_the_norm_and_rejects_zero():
    assert np.linalg.norm(unit_shift(np.array([3.0, 4.0]), 5.0)) == pytest.approx(5.0)
    np.testing.assert_allclose(unit_shift(np.array([3.0, 4.0]), 5.0), [3.0, 4.0])
    with pytest.raises(SynthsodError, match="zero"):
        unit_shift(np.zeros(3), 5.0)


def test_direction_file_round_trip_and_clear_errors(tmp_path):
    path = tmp_path / "h.npy"
    save_direction(path, np.arange(4, dtype=np.float64))
    np.testing.assert_array_equal(load_direction(path), np.arange(4, dtype=np.float32))
    np.save(tmp_path / "bad.npy", np.zeros((2, 3)))
    with pytest.raises(SynthsodError, match="bad.npy.*one float vector"):
        load_direction(tmp_path / "bad.npy")
    with pytest.raises(SynthsodError, match="missing.npy"):
        load_direction(tmp_path / "missing.npy")


def test_shift_proposer_uses_the_shifted_render_for_masks_and_stores_the_base_image():
    def render(z, ids):  # brightness = z[0]; pixels of the left column also follow z[1]
        images = np.full((len(z), SIZE, SIZE, 3), 0.0, np.float32) + z[:, :1, None, None]
        images[:, :, 0, :] += z[:, 1:2, None]
        return np.clip(images, -1, 1)

    source = LatentSource(seed=0, z_dim=2, truncation=0.01)
    propose = shift_proposer(render, source, np.array([0.0, 1.0]), shift=0.5)
    candidate = propose([0])[0]
    assert candidate.mask[:, 0].all() and not candidate.mask[:, 1:].any()  # only the left column brightened
    assert candidate.direction == "h" and candidate.shift == 0.5
    np.testing.assert_array_equal(
        candidate.image, np.clip(np.rint((render(candidate.z[None], None)[0] + 1) * 127.5), 0, 255).astype(np.uint8)
    )
    with pytest.raises(SynthsodError, match="3 dimensions"):
        shift_proposer(render, source, np.ones(3), shift=1.0)


# --- the filter chain and the shard loop, with a hand-made proposer ------------------------------------
def _mask(fraction_rows: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[:fraction_rows] = True
    return mask


def fake_proposer(log=None):
    """Candidate i: empty mask when i % 3 == 0 (rejected by size), a two-blob mask otherwise."""

    def propose(indices):
        if log is not None:
            log.append(list(indices))
        out = []
        for i in indices:
            mask = np.zeros((SIZE, SIZE), bool) if i % 3 == 0 else _mask(4)
            if i % 3 == 2:
                mask[7, 7] = True  # a one-pixel speck the components filter removes
            out.append(
                Candidate(
                    index=int(i),
                    z=np.full(2, i, np.float32),
                    class_id=1,
                    image=np.full((SIZE, SIZE, 3), i % 256, np.uint8),
                    mask=mask,
                    histogram_gray=np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE),
                )
            )
        return out

    return propose


SPEC = FilterSpec(components={"fraction": 0.2, "connectivity": 4}, size={"min": 0.1, "max": 0.9})


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_shard_keeps_the_first_passing_candidates_whatever_the_batch_size(batch_size):
    result = sample_shard(fake_proposer(), SPEC, rows=5, block=range(100, 200), batch_size=batch_size)
    assert [c.index for c in result.kept] == [100, 101, 103, 104, 106]  # 102 and 105 have empty masks
    assert result.candidates == 7  # up to the last kept one, not the end of the batch
    assert result.rejections == {"size": 2}
    assert all(c.components == 1 for c in result.kept)
    assert not result.kept[1].mask[7, 7] and result.kept[1].mask.sum() == 4 * SIZE  # 101's speck removed


def test_shard_fails_clearly_when_the_block_runs_out():
    with pytest.raises(
        SynthsodError,
        match=r"run r shard 0: only 6 of 50 pairs kept after 9 candidates \(kept rate "
        r"66.7%.*raise max_candidates_factor",
    ):
        sample_shard(fake_proposer(), SPEC, rows=50, block=range(9), batch_size=4, where="run r shard 0")


def test_rejected_examples_are_capped_per_filter_and_stats_count_all():
    result = sample_shard(fake_proposer(), SPEC, rows=20, block=range(0, 100), batch_size=8)
    assert result.rejections["size"] == 10
    assert [name for _, name in result.rejected] == ["size"] * REJECTED_EXAMPLES_PER_FILTER
    stats = result.stats()
    assert stats["kept"] == 20 and stats["candidates"] == 30
    assert stats["rejected"] == {"components": 0, "size": 10, "histogram": 0, "dq": 0}
    merged = merge_stats([stats, stats])
    assert merged["kept"] == 40 and merged["kept_rate"] == pytest.approx(2 / 3)
    assert merged["rejected"]["size"] == 20


def producers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sample-producer"]


def summary(result):
    return (
        [(c.index, c.components, c.mask.tobytes()) for c in result.kept],
        result.stats(),
        [(c.index, name, c.mask.tobytes(), c.histogram_gray) for c, name in result.rejected],
    )


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_overlap_gives_the_sequential_result_from_the_same_batches(batch_size):
    """The producer thread calls propose with the sequential loop's batches, in order; every verdict, count
    and example is the same; it stops a bounded number of batches past the last kept pair and is joined."""
    logs = {False: [], True: []}
    results = {
        overlap: sample_shard(
            fake_proposer(logs[overlap]), SPEC, rows=20, block=range(0, 300), batch_size=batch_size, overlap=overlap
        )
        for overlap in (False, True)
    }
    assert summary(results[True]) == summary(results[False])
    assert results[True].stats()["kept"] == 20 and results[True].candidates == 30
    sequential, overlapped = logs[False], logs[True]
    assert overlapped[: len(sequential)] == sequential  # the same batches, in order
    assert len(overlapped) <= len(sequential) + QUEUE_BATCHES + 1  # at most what the queue held, plus one
    assert not producers()
    assert all(c.histogram_gray is None for c, _ in results[True].rejected)  # examples keep the pair only


def test_kept_candidates_go_to_keep_as_they_are_found_in_index_order():
    seen = []
    result = sample_shard(
        fake_proposer(), SPEC, rows=5, block=range(100, 200), batch_size=3, keep=seen.append, overlap=True
    )
    assert [c.index for c in seen] == [100, 101, 103, 104, 106] and result.kept == []
    assert result.stats()["kept"] == 5 and result.kept_count == 5


def test_overlap_raises_the_producers_error_and_stops_it():
    inner = fake_proposer()

    def propose(indices):
        if indices[0] >= 8:
            raise SynthsodError("generator broke")
        return inner(indices)

    with pytest.raises(SynthsodError, match="generator broke"):
        sample_shard(propose, SPEC, rows=50, block=range(100), batch_size=4, overlap=True)
    assert not producers()


def test_a_consumer_error_stops_a_producer_blocked_on_a_full_queue():
    calls = []

    def propose(indices):
        calls.append(indices[0])
        return fake_proposer()(indices)

    def keep(candidate):
        time.sleep(0.05)  # the producer fills the queue meanwhile
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        sample_shard(propose, SPEC, rows=50, block=range(1000), batch_size=2, keep=keep, overlap=True)
    assert not producers() and len(calls) <= QUEUE_BATCHES + 2
    assert list(proposals(fake_proposer(), [], overlap=True)) == []  # nothing to generate: ends at once


def test_dq_scores_only_cheap_survivors_and_rejects_below_threshold():
    scored = []

    def score(images, masks):
        scored.extend(int(image[0, 0, 0]) for image in images)
        return np.array([0.9 if image[0, 0, 0] % 2 else 0.1 for image in images])

    spec = FilterSpec(size={"min": 0.1, "max": 0.9}, dq={"threshold": 0.5})
    verdicts = judge(fake_proposer(), range(6), spec, score, 0.5)
    assert scored == [1, 2, 4, 5]  # 0 and 3 have empty masks: size rejects them before D_q
    assert [reason for _, reason in verdicts] == ["size", None, "dq", "size", "dq", None]
    assert verdicts[1][0].dq_score == 0.9 and verdicts[0][0].dq_score is None


def test_histogram_filter_rejects_interior_peaks_in_the_chain():
    def propose(indices):
        peaked = np.full((SIZE, SIZE), 0.5)  # one interior bucket holds everything
        extremes = np.where(np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % 2, 0.0, 1.0)
        return [
            Candidate(
                index=i,
                z=np.zeros(2, np.float32),
                class_id=None,
                image=np.zeros((SIZE, SIZE, 3), np.uint8),
                mask=_mask(4),
                histogram_gray=peaked if i == 0 else extremes,
            )
            for i in indices
        ]

    spec = FilterSpec(histogram={"bins": 12, "window": 3, "strict": False})
    assert [reason for _, reason in judge(propose, [0, 1], spec, None, None)] == ["histogram", None]


def test_filter_spec_checks_its_sections():
    assert FilterSpec.from_config({"size": {"min": 0, "max": 1}, "dq": None}).enabled() == ["size"]
    with pytest.raises(SynthsodError, match="unknown filters"):
        FilterSpec.from_config({"colour": {}})
    with pytest.raises(SynthsodError, match="exactly one of threshold and keep_top"):
        FilterSpec.from_config({"dq": {"threshold": 0.5, "keep_top": 0.8}})
    with pytest.raises(SynthsodError, match="needs a D_q model"):
        judge(fake_proposer(), [1], FilterSpec(dq={"threshold": 0.5}), None, None)
