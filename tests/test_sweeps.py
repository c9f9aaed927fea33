"""Sweeps: expansion into named runs and trainings, labels, and errors that name the sweep."""

from __future__ import annotations

import pytest

from synthsod.errors import SynthsodError
from synthsod.sweeps import expand_sweeps, value_label


def _config(**sweeps) -> dict:
    return {
        "runs": {
            "sodgan": {"pipeline": "sodgan", "pairs": 100, "truncation": 1.0, "filters": {"dq": {"keep_top": 0.8}}},
            "other": {"generator": "scene", "pairs": 10, "truncation": 0.5, "filters": {"dq": None}},
        },
        "sod": {
            "unet-sodgan": {
                "loss": "structure",
                "train": {"runs": ["sodgan", "other"], "datasets": []},
                "refine_with": ["coop"],
            },
            "unet-real": {"loss": "structure", "train": {"runs": [], "datasets": ["DEMO-TR"]}, "refine_with": []},
        },
        "sweeps": sweeps,
    }


def test_each_point_is_a_run_and_a_training_that_learns_from_it():
    config = _config(truncation={"run": "sodgan", "training": "unet-sodgan", "keys": {"truncation": [0.2, 0.6, 1.0]}})
    points = expand_sweeps(config)["truncation"]
    assert [(p.label, p.values, p.run, p.training) for p in points] == [
        ("0.2", {"truncation": 0.2}, "sodgan.truncation-0.2", "unet-sodgan.truncation-0.2"),
        ("0.6", {"truncation": 0.6}, "sodgan.truncation-0.6", "unet-sodgan.truncation-0.6"),
        ("1.0", {"truncation": 1.0}, "sodgan", "unet-sodgan"),  # the base's own value: the base itself
    ]
    assert "sodgan.truncation-1.0" not in config["runs"] and "unet-sodgan.truncation-1.0" not in config["sod"]
    run = config["runs"]["sodgan.truncation-0.2"]
    assert run == {**config["runs"]["sodgan"], "truncation": 0.2}
    assert config["runs"]["sodgan"]["truncation"] == 1.0  # the base run is untouched
    training = config["sod"]["unet-sodgan.truncation-0.2"]
    assert training["train"]["runs"] == ["sodgan.truncation-0.2", "other"] and training["refine_with"] == []
    assert config["sod"]["unet-sodgan"]["train"]["runs"] == ["sodgan", "other"]


def test_keys_are_zipped_and_may_reach_into_the_training_and_nested_sections():
    config = _config(
        dq={
            "run": "sodgan",
            "training": "unet-sodgan",
            "keys": {"filters.dq": [None, {"keep_top": 0.5}], "training.loss": ["bce", "structure"]},
        }
    )
    points = expand_sweeps(config)["dq"]
    assert [p.label for p in points] == ["off-bce", "on-structure"]
    assert config["runs"]["sodgan.dq-off-bce"]["filters"]["dq"] is None
    assert config["runs"]["sodgan.dq-on-structure"]["filters"]["dq"] == {"keep_top": 0.5}
    assert config["sod"]["unet-sodgan.dq-off-bce"]["loss"] == "bce"


def test_a_sweep_of_training_keys_trains_on_the_base_run_itself():
    config = _config(loss={"run": "sodgan", "training": "unet-sodgan", "keys": {"training.loss": ["bce", "structure"]}})
    points = expand_sweeps(config)["loss"]
    assert [(p.run, p.training) for p in points] == [("sodgan", "unet-sodgan.loss-bce"), ("sodgan", "unet-sodgan")]
    assert set(config["runs"]) == {"sodgan", "other"}  # nothing to re-sample
    assert config["sod"]["unet-sodgan.loss-bce"]["train"]["runs"] == ["sodgan", "other"]


def test_a_sweep_without_training_adds_runs_only_and_labels_can_be_given():
    config = _config(size={"run": "sodgan", "keys": {"pairs": [50, 200]}, "labels": ["small", "large"]})
    points = expand_sweeps(config)["size"]
    assert [(p.run, p.training) for p in points] == [("sodgan.size-small", None), ("sodgan.size-large", None)]
    assert set(config["sod"]) == {"unet-sodgan", "unet-real"}


def test_a_training_only_sweep_trains_on_real_data_and_samples_nothing():
    """The CAS paper's label-noise sweep: one training on a real dataset, no run."""
    config = _config(noise={"training": "unet-real", "keys": {"training.loss": ["ce", "structure"]}})
    points = expand_sweeps(config)["noise"]
    assert [(p.run, p.training) for p in points] == [(None, "unet-real.noise-ce"), (None, "unet-real")]
    assert set(config["runs"]) == {"sodgan", "other"}
    assert config["sod"]["unet-real.noise-ce"]["train"] == {"runs": [], "datasets": ["DEMO-TR"]}


def test_values_become_name_safe_labels():
    assert [value_label(v) for v in (0.4, "vae", True, False, None, {}, {"a": 1}, "a b/c")] == [
        "0.4",
        "vae",
        "on",
        "off",
        "off",
        "off",
        "on",
        "a_b_c",
    ]


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"run": "nope", "keys": {"pairs": [1]}}, "sweeps.s.run: 'nope' is not under runs:"),
        ({"run": "sodgan", "training": "nope", "keys": {"pairs": [1]}}, "sweeps.s.training: 'nope' is not under sod:"),
        (
            {"run": "sodgan", "training": "unet-real", "keys": {"pairs": [1]}},
            "'unet-real' does not train on run 'sodgan'",
        ),
        ({"run": "sodgan", "keys": {"truncaton": [1]}}, "sweeps.s.keys: the run 'sodgan' has no key 'truncaton'"),
        ({"run": "sodgan", "keys": {"filters.dq.keep": [1]}}, "has no key 'filters.dq.keep'"),
        (
            {"run": "sodgan", "training": "unet-sodgan", "keys": {"training.los": ["bce"]}},
            "the training 'unet-sodgan' has no key 'los'",
        ),
        ({"run": "sodgan", "keys": {"training.loss": ["bce"]}}, "sweeps a training, but the sweep names none"),
        (
            {"training": "unet-real", "keys": {"pairs": [1]}},
            "sweeps.s.keys: 'pairs' sweeps a run, but the sweep names none",
        ),
        ({"keys": {"pairs": [1]}}, "sweeps.s: name a run, a training or both"),
        ({"run": "sodgan", "keys": {"pairs": [1, 2], "truncation": [0.5]}}, "every key needs as many values"),
        ({"run": "sodgan", "keys": {"pairs": [1, 2]}, "labels": ["a"]}, "sweeps.s.labels: 1 labels for 2 points"),
        ({"run": "sodgan", "keys": {"filters.dq": [{"keep_top": 0.5}, {"keep_top": 0.7}]}}, "share the label(s) on"),
    ],
)
def test_bad_sweeps_are_named_in_the_error(sweep, message):
    with pytest.raises(SynthsodError) as err:
        expand_sweeps(_config(s=sweep))
    assert message in str(err.value)


def test_a_point_named_like_a_hand_written_run_is_an_error():
    config = _config(t={"run": "sodgan", "keys": {"truncation": [0.5]}})
    config["runs"]["sodgan.t-0.5"] = dict(config["runs"]["other"])
    with pytest.raises(SynthsodError, match=r"sweeps.t: the point's run name 'sodgan.t-0.5' is already"):
        expand_sweeps(config)
