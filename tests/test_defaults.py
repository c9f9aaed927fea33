"""One source of defaults: every schema default equals the default of the dataclass the section becomes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from synthsod.directions.discovery import DiscoveryConfig
from synthsod.generators.train import GANTrainConfig
from synthsod.sod.atal.train import ActiveSpec
from synthsod.sod.coop.model import CoopConfig
from synthsod.sod.train import Recipe
from synthsod.sodgan.den import DENConfig
from synthsod.sodgan.gmask_train import GMaskConfig
from synthsod.synthesis.demo import MaskRule

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml").read_text())


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
    "den": (("den",), DENConfig, {"truncation", "seed", "invert"}),
    "gmask": (("gmask",), GMaskConfig, {"dq", "eval_pairs", "seed"}),
    "sod.recipe": (("sod", "*", "recipe"), Recipe, set()),
    "sod.active": (("sod", "*", "active"), ActiveSpec, set()),
    "sod.coop": (("sod", "*", "coop"), CoopConfig, set()),
    "directions.discover": (("directions", "discover"), DiscoveryConfig, {"classes"}),
    "demo.mask": (("demo", "mask"), MaskRule, set()),
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
