"""Config cross-checks the schema cannot express (synthsod.workflow: sod_problems, direction_problems)."""

from __future__ import annotations

import dataclasses

import pytest

from synthsod.evaluation.oracle import OracleConfig
from synthsod.sod.train import Recipe
from synthsod.workflow import direction_problems, searched_generators, sod_problems

RECIPE = {f.name for f in dataclasses.fields(Recipe)}


def spec(
    model="unet",
    loss="ce",
    eval_size=64,
    sizes=(64,),
    point_labels=None,
    refine_with=(),
    active=None,
    schedule="constant",
):
    return {
        "model": model,
        "loss": loss,
        "eval_size": eval_size,
        "recipe": {"sizes": list(sizes), "schedule": schedule},
        "point_labels": point_labels,
        "refine_with": list(refine_with),
        "active": active,
    }


def test_a_consistent_coop_setup_has_no_problems():
    sod = {
        "coop": spec("coop", "bce", point_labels={"points": 5, "radius": 1, "seed": 0}),
        "unet": spec(refine_with=["coop"]),
        "atal": spec(loss="bce", active={}, schedule="cyclic"),
    }
    assert sod_problems(sod) == []


def test_coop_constraints_and_refinement_references_are_each_reported():
    sod = {
        "coop": spec("coop", "structure", eval_size=60, sizes=(48, 64)),
        "unet": spec(point_labels={"points": 5, "radius": 1, "seed": 0}, refine_with=["unet", "missing"]),
    }
    problems = sod_problems(sod)
    assert problems == [
        "sod.coop.loss: coop's warm-up loss is bce, not 'structure'",
        "sod.coop.eval_size: coop's EBM needs a multiple of 8, got 60",
        "sod.coop.recipe.sizes: coop trains at its EBM's size, eval_size (set sizes: [60])",
        "sod.unet.point_labels: only coop learns from point labels (learning while recovering)",
        "sod.unet.refine_with: 'unet' is not a coop training under sod:",
        "sod.unet.refine_with: 'missing' is not a coop training under sod:",
    ]


def test_atal_needs_the_partial_bce_and_the_cyclic_schedule():
    assert sod_problems({"atal": spec(loss="ce", active={})}) == [
        "sod.atal.active: ATAL trains f3net or unet with the partial BCE (loss: bce)",
        "sod.atal.active: ATAL's snapshots need recipe.schedule: cyclic",
    ]


def direction_config(run_direction="search", generators=(), candidates=None, model="bigbigan"):
    return {
        "generators": {"big": {"model": model}, "tiny": {"model": "tiny"}},
        "runs": {"r": {"generator": "big", "mask": {"method": "direction", "direction": run_direction}}},
        "directions": {"search": {"generators": list(generators), "candidates": candidates or {}}},
    }


def test_direction_search_targets_and_bigbigan_candidates():
    # a run taking `search` puts its generator under the search; BigBiGAN needs a candidates file
    config = direction_config(generators=["tiny"])
    assert searched_generators(config) == ["tiny", "big"]
    assert direction_problems(config) == [
        "directions.search.candidates.big: BigBiGAN cannot be differentiated here, so its candidate directions "
        "come from a file (a .npy [K, 120], e.g. from GANLatentDiscovery)"
    ]
    assert direction_problems(direction_config(candidates={"big": "h.npy"})) == []
    assert direction_problems(direction_config(model="biggan-deep-256")) == []
    assert searched_generators(direction_config(run_direction="contrast")) == []
    assert direction_problems(direction_config(run_direction="h.npy", generators=["nope"])) == [
        "directions.search: generator 'nope' is not defined under generators:"
    ]


def test_the_test_scenario_only_shrinks_settings_of_config_yaml():
    """configs/test.yaml overrides keys that config.yaml has, its schema defaults filled in (a typo would
    silently test the full size)."""
    import yaml
    from conftest import REPO, TEST_CONFIG, small_config
    from snakemake.utils import validate

    full = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(full, str(REPO / "schemas" / "config.schema.yaml"))  # fills the defaults in

    # free-form sections (config.yaml: {}, the shipped run's settings), checked against their dataclass instead
    free_form = {"scenes.oracle.train": OracleConfig}

    def missing(small, base, where=""):
        for key, value in small.items():
            if f"{where}{key}" in free_form:
                fields = {f.name for f in dataclasses.fields(free_form[f"{where}{key}"])}
                yield from (f"{where}{key}.{name}" for name in value if name not in fields)
                yield from (f"{where}{key}.recipe.{name}" for name in value.get("recipe", {}) if name not in RECIPE)
            elif key not in base:
                yield f"{where}{key}"
            elif isinstance(value, dict) and isinstance(base[key], dict):
                yield from missing(value, base[key], f"{where}{key}.")

    assert not list(missing(TEST_CONFIG, full))
    typos = {"scenes": {"oracle": {"train": {"scenes": 1, "stpes": 2, "recipe": {"setps": 1}}}}}
    assert list(missing(typos, full)) == ["scenes.oracle.train.stpes", "scenes.oracle.train.recipe.setps"]
    assert small_config()["den"]["steps"] == TEST_CONFIG["den"]["steps"] < full["den"]["steps"]
    small_oracle = TEST_CONFIG["scenes"]["oracle"]["train"]
    assert small_oracle["scenes"] < OracleConfig().scenes
    assert small_oracle["recipe"]["steps"] < OracleConfig().recipe["steps"]


@pytest.mark.parametrize(
    "files, dens, gmasks, sweeps",
    [
        (("configs/demo-ablation.yaml",), 2, 6, 3),
        (("configs/paper/sodgan.yaml", "configs/paper/sodgan-ablation.yaml"), 2, 10, 3),
    ],
)
def test_the_ablation_configs_resolve_to_one_model_per_distinct_setting(files, dens, gmasks, sweeps):
    """The ablation configs pass every check, and their Table 2 rows share what they agree on."""
    from conftest import merged_config

    from synthsod.pipelines import complete_runs, resolve_pipelines, stage_keys
    from synthsod.sweeps import expand_sweeps
    from synthsod.workflow import canonicalise_config, config_problems

    config = merged_config(*files)
    canonicalise_config(config)
    points = expand_sweeps(config)
    pipelines = resolve_pipelines(config)
    assert complete_runs(config, pipelines) == [] and config_problems(config) == []
    assert len(stage_keys(pipelines, "den")) == dens and len(stage_keys(pipelines, "gmask")) == gmasks
    assert len(points) == sweeps and not config["den"]["ablations"]
