"""Config layers: an experiment file's `replace:` drops the demo's entries (synthsod.workflow.layer_config)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthsod.errors import SynthsodError
from synthsod.workflow import layer_config

BASE = {
    "train_dataset": "DEMO-TR",
    "runs": {"sodgan": {"pairs": 1024, "truncation": 1.0}, "ebigbigan": {"pairs": 256}},
    "den": {"steps": 300, "mode": "den"},
}


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _layered(tmp_path: Path, *layers: dict, overrides: dict | None = None) -> dict:
    base = _write(tmp_path / "config.yaml", BASE)
    files = [_write(tmp_path / f"layer{i}.yaml", layer) for i, layer in enumerate(layers)]
    config = yaml.safe_load(base.read_text())
    for layer in layers:  # what Snakemake hands over: every layer merged key by key
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
    layer_config(config, base, files, overrides)
    return config


def test_without_replace_the_merge_is_left_as_snakemake_made_it(tmp_path: Path) -> None:
    config = _layered(tmp_path, {"runs": {"sodgan": {"pairs": 10}}})
    assert config["runs"]["sodgan"] == {"pairs": 10}  # the shallow stand-in merge above, untouched
    assert "ebigbigan" in config["runs"]


def test_replaced_sections_keep_only_the_files_entries_and_the_rest_still_merges(tmp_path: Path) -> None:
    paper = {"replace": ["runs"], "runs": {"sodgan": {"pairs": 12460}}, "den": {"steps": 20000}}
    config = _layered(tmp_path, paper)
    assert config["runs"] == {"sodgan": {"pairs": 12460}}  # no demo run, no demo key inside sodgan
    assert config["den"] == {"steps": 20000, "mode": "den"}  # merged key by key
    assert "replace" not in config and config["train_dataset"] == "DEMO-TR"


def test_a_later_layer_adds_to_a_replaced_section_and_config_overrides_come_last(tmp_path: Path) -> None:
    paper = {"replace": ["runs"], "runs": {"sodgan": {"pairs": 12460}}}
    ablation = {"runs": {"sodgan-t": {"pairs": 100}}}
    config = _layered(tmp_path, paper, ablation, overrides={"runs": {"sodgan": {"pairs": 7}}})
    assert config["runs"] == {"sodgan": {"pairs": 7}, "sodgan-t": {"pairs": 100}}


@pytest.mark.parametrize(
    "layer, match",
    [
        ({"replace": ["sod"], "runs": {}}, "names sod, which the file does not set"),
        ({"replace": "runs", "runs": {}}, "must be a list"),
    ],
)
def test_a_bad_replace_is_explained_with_the_file(tmp_path: Path, layer: dict, match: str) -> None:
    with pytest.raises(SynthsodError, match=match) as err:
        _layered(tmp_path, layer)
    assert "layer0.yaml" in str(err.value)
