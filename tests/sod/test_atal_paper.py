"""configs/paper/atal.yaml expresses ATAL's paper setting (F3Net, 2 -> 10 points per image, K = 3 %, L = 5
snapshots) and its budget curve (one training per budget, Fig. 8a), read as the trainer reads it."""

from __future__ import annotations

from conftest import merged_config

from synthsod.core.settings import from_section
from synthsod.sod.atal.train import ActiveSpec
from synthsod.sod.schedules import snapshot_steps
from synthsod.sod.train import Recipe, training_steps
from synthsod.sweeps import expand_sweeps

DUTS_TR = 10553  # training images


def paper_trainings() -> dict:
    """configs/paper/atal.yaml's trainings (its budget sweep expanded), as the workflow reads them."""
    config = merged_config("configs/paper/atal.yaml")
    expand_sweeps(config)
    return config["sod"]


def test_the_paper_setting_reads_as_atal_with_f3net_2_to_10_points_k_3_percent_and_5_snapshots():
    spec = paper_trainings()["f3net-atal"]
    assert spec["model"] == "f3net" and spec["loss"] == "bce"
    active = from_section(ActiveSpec, spec["active"], where="sod.active")
    assert active.budgets() == [2, 4, 6, 8, 10]
    assert active.candidate_fraction == 0.03
    recipe = from_section(Recipe, spec["recipe"], where="sod.recipe")
    assert recipe.schedule == "cyclic" and len(snapshot_steps(training_steps(recipe, DUTS_TR), recipe.cycles)) == 5


def test_the_budget_curve_is_one_training_per_budget_whose_rounds_extend_the_smaller_ones():
    sod = paper_trainings()
    curve = {
        name: from_section(ActiveSpec, spec["active"], where=name)
        for name, spec in sod.items()
        if name.startswith("f3net-atal")
    }
    ends = sorted(spec.budgets()[-1] for spec in curve.values())
    assert ends == [2, 4, 6, 8, 10, 20]
    longest = curve["f3net-atal.budget-20"].budgets()
    for spec in curve.values():  # same rounds up to its budget: the same seed reproduces them
        assert longest[: len(spec.budgets())] == spec.budgets()
    others = {
        name: {k: v for k, v in spec.items() if k != "active"}
        for name, spec in sod.items()
        if name.startswith("f3net-atal")
    }
    assert all(rest == others["f3net-atal"] for rest in others.values())
