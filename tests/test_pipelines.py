"""Named SODGAN pipelines: merged settings, shared stage keys, and errors that name the pipeline."""

from __future__ import annotations

import pytest

from synthsod.errors import SynthsodError
from synthsod.pipelines import merge_overrides, resolve_pipelines, stage_key, stage_keys


def _config(**pipelines) -> dict:
    return {
        "generator": "scene",
        "generators": {"scene": {"model": "scene"}, "other": {"model": "tiny"}},
        "train_dataset": "DEMO-TR",
        "den": {"mode": "den", "steps": 300, "ablations": [], "invert": {"refine_steps": 50, "images": 200}},
        "fewshot": {"strategy": "best", "size": 48},
        "gmask": {"attention": "full", "head": "mlp-s", "dq": {"enabled": True, "input_size": 96}},
        "pipelines": pipelines,
    }


def test_pipelines_share_every_stage_up_to_their_first_difference():
    pipelines = resolve_pipelines(
        _config(
            sodgan={},
            vae={"den": {"mode": "vae"}},
            attn_off={"gmask": {"attention": "off"}},
            dq_off={"gmask": {"dq": {"enabled": False}}},
            more_shots={"fewshot": {"size": 96}},
            same={"gmask": {"attention": "full"}},  # an override equal to the shared value changes nothing
        )
    )
    keys = {name: p.keys for name, p in pipelines.items()}
    assert keys["sodgan"] == keys["same"] == {"den": "scene", "fewshot": "scene", "gmask": "scene"}
    assert keys["attn_off"] == {"den": "scene", "fewshot": "scene", "gmask": "scene+gmask.attention=off"}
    assert keys["dq_off"] == {"den": "scene", "fewshot": "scene", "gmask": "scene+gmask.dq.enabled=false"}
    assert keys["more_shots"] == {"den": "scene", "fewshot": "scene+fewshot.size=96", "gmask": "scene+fewshot.size=96"}
    assert keys["vae"] == {"den": "scene+den.mode=vae", "fewshot": "scene+den.mode=vae", "gmask": "scene+den.mode=vae"}
    assert stage_keys(pipelines, "den") == ["scene", "scene+den.mode=vae"]
    assert len(stage_keys(pipelines, "gmask")) == 5


def test_keys_that_are_no_plain_file_names_end_in_a_digest():
    pipelines = resolve_pipelines(_config(w={"den": {"mode": "/models/m v3.pth"}}, x={"den": {"steps": 7}}))
    key = pipelines["w"].key("den")
    assert key.startswith("scene+") and "/" not in key and " " not in key and len(key) == len("scene+") + 12
    assert pipelines["x"].key("den") == "scene+den.steps=7"
    assert stage_key("scene", [f"den.steps={i}" for i in range(40)]).count("+") == 1  # too long: a digest
    assert stage_key("scene", ["den.a=1"]) != stage_key("scene", ["den.a=2"])


def test_overrides_merge_into_the_shared_sections_key_by_key():
    pipelines = resolve_pipelines(_config(sodgan={}, dq_off={"gmask": {"dq": {"enabled": False}}}))
    assert pipelines["dq_off"].settings["gmask"] == {
        "attention": "full",
        "head": "mlp-s",
        "dq": {"enabled": False, "input_size": 96},
    }
    assert pipelines["sodgan"].settings["gmask"]["dq"]["enabled"] is True  # the shared section is untouched
    assert pipelines["dq_off"].generator == "scene"


def test_the_generator_is_part_of_every_key():
    pipelines = resolve_pipelines(_config(a={}, b={"generator": "other"}))
    assert pipelines["b"].keys == {"den": "other", "fewshot": "other", "gmask": "other"}
    assert pipelines["a"].keys == {"den": "scene", "fewshot": "scene", "gmask": "scene"}


def test_den_ablations_and_other_pipelines_change_no_key():
    alone = resolve_pipelines(_config(b={"gmask": {"head": "mlp-l"}}))
    crowded = resolve_pipelines(
        _config(a={"den": {"ablations": ["vae"]}}, b={"gmask": {"head": "mlp-l"}}, c={"gmask": {"head": "mlp-l"}})
    )
    assert crowded["a"].keys == {"den": "scene", "fewshot": "scene", "gmask": "scene"}
    assert crowded["b"].keys == crowded["c"].keys == alone["b"].keys


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"gmask": {"atention": "off"}}, "pipelines.bad.gmask: unknown key 'atention'"),
        ({"gmask": {"dq": {"enable": False}}}, "pipelines.bad.gmask.dq: unknown key 'enable'"),
        ({"den": {"invert": {"steps": 3}}}, "pipelines.bad.den.invert: unknown key 'steps'"),
        ({"generator": "nope"}, "pipelines.bad: generator 'nope' is not under generators:"),
    ],
)
def test_bad_pipelines_are_named_in_the_error(spec, message):
    with pytest.raises(SynthsodError) as err:
        resolve_pipelines(_config(sodgan={}, bad=spec))
    assert message in str(err.value)


def test_merge_overrides_leaves_its_inputs_alone():
    base = {"a": {"b": 1, "c": [1]}}
    merged = merge_overrides(base, {"a": {"b": 2}}, "x")
    merged["a"]["c"].append(2)
    assert base == {"a": {"b": 1, "c": [1]}} and merged == {"a": {"b": 2, "c": [1, 2]}}
