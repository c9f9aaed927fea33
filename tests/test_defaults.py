"""One source of defaults: every schema default equals the default of the dataclass the section becomes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from synthsod.core.settings import from_section
from synthsod.directions.discovery import DiscoveryConfig
from synthsod.errors import SynthsodError
from synthsod.evaluation.oracle import OracleConfig
from synthsod.generators.train import GANTrainConfig
from synthsod.sod.atal.train import ActiveSpec
from synthsod.sod.coop.model import CoopConfig
from synthsod.sod.train import Recipe
from synthsod.sodgan.den import DENConfig
from synthsod.sodgan.gmask_train import GMaskConfig

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].split("/")[-1]]
    return node


def _section(*path: str) -> dict:
    node = SCHEMA
    for key in path:
        props = _resolve(node).get("properties", {})
        node = props[key] if key in props else _resolve(node)["additionalProperties"]
    return _resolve(node)


# (schema path, dataclass, schema keys that are not fields of it: read by another stage or rule)
SECTIONS = {
    "den": (("den",), DENConfig, {"truncation", "seed", "invert", "ablations"}),
    "gmask": (("gmask",), GMaskConfig, {"dq", "eval_pairs", "seed"}),
    "sod.recipe": (("sod", "*", "recipe"), Recipe, set()),
    "sod.active": (("sod", "*", "active"), ActiveSpec, set()),
    "sod.coop": (("sod", "*", "coop"), CoopConfig, set()),
    "directions.discover": (("directions", "discover"), DiscoveryConfig, {"classes"}),
    "generators.train": (("generators", "*", "train"), GANTrainConfig, set()),
}


def _filled(spec: dict):
    """A schema default with the defaults of its own properties filled in (as validate fills them)."""
    default = spec.get("default")
    spec = _resolve(spec)
    if isinstance(default, dict) and "properties" in spec:
        nested = {k: _filled(v) for k, v in spec["properties"].items() if "default" in v}
        return {**nested, **default}
    return default


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@pytest.mark.parametrize("name", list(SECTIONS))
def test_schema_and_dataclass_defaults_agree(name):
    path, cls, other = SECTIONS[name]
    node = _section(*path)
    if "oneOf" in node:  # a nullable section: its object branch
        node = _resolve(next(branch for branch in node["oneOf"] if branch.get("type") == "object"))
    props = node["properties"]
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(props) - other <= fields, f"{name}: schema keys without a field {sorted(set(props) - other - fields)}"
    defaults = _defaults(cls)
    wrong = {
        key: (_filled(spec), defaults.get(key))
        for key, spec in props.items()
        if key not in other and "default" in spec and _filled(spec) != defaults.get(key)
    }
    assert not wrong, f"{name}: (schema, dataclass) defaults differ: {wrong}"
    unsettable = fields - set(props)
    assert not unsettable, f"{name}: dataclass fields no config key sets: {sorted(unsettable)}"


def test_oracle_settings_are_an_oracle_config_with_a_valid_recipe():
    """scenes.oracle.train has no schema properties (rule oracle_train builds OracleConfig from it): its schema
    default is every OracleConfig default, the shipped run's recipe and the configs' recipes are valid, and
    an unknown key is an error naming the section."""
    assert _section("scenes", "oracle")["properties"]["train"]["default"] == {}
    assert from_section(OracleConfig, {}, where="scenes.oracle.train") == OracleConfig()
    sections = [
        yaml.safe_load((REPO / name).read_text())["scenes"]["oracle"]["train"]
        for name in ("config.yaml", "configs/test.yaml")
    ]
    for section in [{}, *sections]:
        config = from_section(OracleConfig, section, where="scenes.oracle.train")
        Recipe(**config.recipe).check()  # a typo in a recipe key raises TypeError here
    with pytest.raises(SynthsodError, match=r"scenes\.oracle\.train: unknown settings stpes"):
        from_section(OracleConfig, {"stpes": 3}, where="scenes.oracle.train")
