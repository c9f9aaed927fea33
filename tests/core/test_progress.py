"""Progress bars: whole lines, rate-limited, always a final line, and into the rule's log under run_rule."""

from __future__ import annotations

import io
import logging
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from synthsod.core import progress as progress_module
from synthsod.core.progress import progress, progress_to
from synthsod.workflow import run_rule


def lines_of(stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")  # whole lines, no carriage-return redraws
    return text.splitlines()


@pytest.fixture
def fake_clock(monkeypatch):
    """The bars' clock, moved by hand: ``fake_clock.now += seconds``."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(progress_module, "_clock", lambda: clock.now)
    return clock


def test_each_refresh_is_one_whole_line_in_the_configured_stream():
    out = io.StringIO()
    with progress_to(out):
        for _ in progress(range(5), desc="count", unit="step", every_s=0):
            pass
    counts = [re.match(r"count: +\d+%\|[# 0-9]{10}\| (\d)/5 \[", line)[1] for line in lines_of(out)]
    assert counts == list("12345")  # a line per step; the closing line would repeat 5/5, so it is left out


def test_a_fast_loop_writes_only_its_final_line_with_n_equal_to_total():
    out = io.StringIO()
    with progress_to(out):
        for _ in progress(range(10_000), desc="fast"):
            pass
        with progress(total=7, desc="by hand", unit="image") as bar:
            for _ in range(7):
                bar.update()
        for _ in progress([], desc="nothing"):
            pass
    lines = lines_of(out)
    assert len(lines) == 3
    assert lines[0].startswith("fast: 100%|##########| 10000/10000 [")
    assert lines[1].startswith("by hand: 100%|##########| 7/7 [") and "image/s]" in lines[1]
    assert lines[2].startswith("nothing: 0it [")


def test_lines_are_rate_limited_and_show_rate_eta_and_postfix(fake_clock):
    out, reads = io.StringIO(), []

    def loss():  # stands for tensor.item: read only when a line is written
        reads.append(fake_clock.now)
        return 0.25

    with progress_to(out), progress(total=100, desc="training", unit="step", every_s=10) as bar:
        for _ in range(100):
            fake_clock.now += 1.0  # a 1-second step
            bar.set_postfix(loss=loss)
            bar.update()
    lines = lines_of(out)
    counts = [int(re.search(r"\| (\d+)/100 \[", line)[1]) for line in lines]
    assert counts == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]  # one every 10 s; the last is the final one
    assert lines[0] == "training:  10%|#         | 10/100 [00:10<01:30,  1.00step/s, loss=0.25]"
    assert lines[-1] == "training: 100%|##########| 100/100 [01:40<00:00,  1.00step/s, loss=0.25]"
    assert len(reads) == len(lines)  # the postfix was read once per line, not once per step


def test_the_final_line_follows_the_last_timed_one_when_the_count_moved_on(fake_clock):
    out = io.StringIO()
    with progress_to(out), progress(total=15, desc="steps", unit="step", every_s=10) as bar:
        for _ in range(15):
            fake_clock.now += 1.0
            bar.update()
    assert [re.search(r"\| (\d+)/15 \[", line)[1] for line in lines_of(out)] == ["10", "15"]


def test_a_resumed_loop_counts_from_where_it_was():
    out = io.StringIO()
    with progress_to(out):
        for _ in progress(range(6, 10), total=10, initial=6, desc="resumed", unit="step"):
            pass
    lines = lines_of(out)
    assert len(lines) == 1 and re.match(r"resumed: 100%\|##########\| 10/10 \[", lines[0])


def test_by_default_lines_go_to_stderr(capsys):
    for _ in progress(range(3), desc="default"):
        pass
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(r"default: 100%\|##########\| 3/3 \[.*\]\n", captured.err)


def test_progress_to_restores_the_previous_target():
    outer, inner = io.StringIO(), io.StringIO()
    with progress_to(outer):
        with progress_to(inner):
            list(progress(range(1), desc="inner"))
        list(progress(range(1), desc="outer"))
    assert [line.split(":")[0] for line in lines_of(inner)] == ["inner"]
    assert [line.split(":")[0] for line in lines_of(outer)] == ["outer"]
    assert progress_module._write_line is None


@pytest.fixture
def restored_logging():
    """run_rule reconfigures the root logger (as a script's process would); put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


def test_run_rule_writes_bar_lines_and_the_timed_summary_into_the_rule_log(tmp_path, restored_logging, capsys):
    log_file = tmp_path / "logs" / "rule.log"

    def main(smk):
        logging.getLogger("synthsod").info("starting")
        for _ in progress(range(7), desc="things", unit="thing"):
            pass
        return "did 7 things"

    run_rule(SimpleNamespace(log=[str(log_file)], rule="fake"), main)
    lines = log_file.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("synthsod INFO: starting")
    assert re.search(r" synthsod\.progress INFO: things: 100%\|##########\| 7/7 \[.*thing/s\]$", lines[1])
    assert re.search(r" synthsod INFO: did 7 things \[\d+\.\d s\]$", lines[2])
    assert "things: 100%" in capsys.readouterr().err  # and on stderr, as every log line
    assert progress_module._write_line is None  # bars outside the rule write to stderr again


def test_run_rule_without_a_summary_still_ends_with_the_time(tmp_path, restored_logging):
    log_file = tmp_path / "rule.log"
    run_rule(SimpleNamespace(log=[str(log_file)], rule="fake"), lambda smk: None)
    assert re.search(r" synthsod INFO: fake done \[\d+\.\d s\]$", log_file.read_text())


# --- real stages ---------------------------------------------------------------------------------


def test_sod_training_shows_its_steps_and_loss():
    from synthsod.sod.train import Recipe, train_sod

    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    data = [{"image": image, "mask": (image[:1] > 0).float()} for image in images]
    recipe = Recipe(
        optimizer="adam",
        lr=1e-3,
        backbone_lr=1e-3,
        weight_decay=0.0,
        batch_size=2,
        steps=3,
        schedule="step",
        step_size=3,
        gamma=0.2,
        sizes=[16],
    )
    out = io.StringIO()
    with progress_to(out):
        train_sod("unet", "ce", data, recipe, model_kwargs={"base": 4, "depth": 2}, seed=3)
    lines = lines_of(out)
    assert re.match(r"unet training: 100%\|##########\| 3/3 \[.*(step/s|s/step), loss=[0-9.e-]+\]$", lines[-1]), lines


def test_sampling_counts_kept_pairs_and_candidates():
    from synthsod.synthesis.sampling import Candidate, FilterSpec, sample_shard

    def propose(indices):  # every third candidate has an empty mask, which the size filter rejects
        return [
            Candidate(
                index=i,
                z=np.zeros(2, np.float32),
                class_id=0,
                image=np.zeros((8, 8, 3), np.uint8),
                mask=np.zeros((8, 8), bool) if i % 3 == 0 else np.tri(8, dtype=bool),
                histogram_gray=np.zeros((8, 8)),
            )
            for i in indices
        ]

    out = io.StringIO()
    with progress_to(out):
        sample_shard(
            propose,
            FilterSpec(size={"min": 0.1, "max": 0.9}),
            rows=5,
            block=range(100, 200),
            batch_size=3,
            where="run r shard 0",
        )
    lines = lines_of(out)
    assert len(lines) == 1  # a fast shard: its final line only
    assert re.match(r"run r shard 0: 100%\|##########\| 5/5 \[.*(pair/s|s/pair), candidates=7\]$", lines[0]), lines


def test_run_rule_keeps_torch_to_the_jobs_threads(tmp_path, restored_logging):
    import torch

    before = torch.get_num_threads()
    seen = []
    try:
        run_rule(SimpleNamespace(log=[], rule="fake", threads=1), lambda smk: seen.append(torch.get_num_threads()))
        assert seen == [1]
        torch.set_num_threads(2)
        run_rule(SimpleNamespace(log=[], rule="fake"), lambda smk: seen.append(torch.get_num_threads()))
        assert seen == [1, 2]  # no threads given: left as they were
    finally:
        torch.set_num_threads(before)
