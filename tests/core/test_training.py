"""The shared resume check names every nested setting that differs, except the ones a training may change."""

from __future__ import annotations

from synthsod.core.training import changed_settings, same_settings


def test_changed_settings_are_named_by_their_path_and_free_ones_are_allowed():
    saved = {"den_config": {"steps": 4, "lr": 0.1}, "seed": 0, "classes": [1, 2]}
    wanted = {"den_config": {"steps": 8, "lr": 0.2}, "seed": 0, "classes": [1, 3]}
    assert changed_settings(saved, wanted) == ["classes", "den_config.lr", "den_config.steps"]
    assert changed_settings(saved, wanted, {"den_config.steps", "classes"}) == ["den_config.lr"]
    check = same_settings(wanted, free={"den_config.steps"})
    assert check(saved, 4) == "classes, den_config.lr differ"
    assert check({**wanted, "den_config": {"steps": 1, "lr": 0.2}}, 1) is None
    assert same_settings({"a": 1})(None, 0) == "settings differ"  # a checkpoint without settings
