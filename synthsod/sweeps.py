"""Sweeps: a base sampling run (and the SOD training that learns from it) repeated over values of some keys.

A sweep (config ``sweeps:``) names a base ``run``, optionally a base ``training`` that trains on it (or a
``training`` alone, whose keys then are all ``training.`` keys: a training on real data only), and
``keys``: dotted paths with one list of values each (all lists of one length; point i takes the i-th
value of every key). A path is a key of the run (``truncation``, ``pairs``, ``pipeline``,
``filters.dq``, ...) or, prefixed ``training.``, of the training (``training.loss``). Each point becomes
a run ``<run>.<sweep>-<label>`` and, with a training, a training ``<training>.<sweep>-<label>`` that
learns from that run instead of the base run; both are ordinary runs and trainings from then on, so a
point's value change re-runs that point alone. A point whose run (or training) equals the base's (its
own truncation, say) reuses the base run (or training). Labels are the values themselves (``0.4``, ``vae``,
``on`` / ``off`` for booleans and null) unless the sweep gives ``labels``.

Standard library only: the Snakefile expands the sweeps while it parses, before anything reads the runs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthsod.errors import SynthsodError

TRAINING_PREFIX = "training."
LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its label, the value of each swept key, and the run and training it made."""

    label: str
    values: dict[str, Any]
    run: str | None
    training: str | None


def value_label(value: Any) -> str:
    """A readable, name-safe label of a swept value."""
    if value is None or value is False:
        return "off"
    if value is True:
        return "on"
    if isinstance(value, (Mapping, list)):
        return "on" if value else "off"
    return LABEL_CHARS.sub("_", str(value)).strip("_") or "empty"


def _path_exists(spec: Mapping[str, Any], path: list[str]) -> bool:
    node: Any = spec
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _set(spec: dict[str, Any], path: list[str], value: Any) -> None:
    node = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = copy.deepcopy(value)


def _point_labels(name: str, sweep: Mapping[str, Any], values: Mapping[str, list]) -> list[str]:
    count = len(next(iter(values.values())))
    labels = sweep.get("labels")
    if labels is not None:
        if len(labels) != count:
            raise SynthsodError(f"sweeps.{name}.labels: {len(labels)} labels for {count} points")
        labels = [value_label(label) for label in labels]
    else:
        labels = ["-".join(value_label(v[i]) for v in values.values()) for i in range(count)]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise SynthsodError(f"sweeps.{name}: points share the label(s) {', '.join(duplicates)}; give `labels`")
    return labels


def _point_name(base: str | None, spec: Any, existing: Mapping[str, Any], suffix: str) -> str | None:
    """A point's run (or training) name: none without a base; the base's own name when the point equals it
    (its own truncation, say, re-samples nothing); else ``<base>.<suffix>``."""
    if base is None:
        return None
    return base if spec == existing[base] else f"{base}.{suffix}"


def expand_sweeps(config: dict[str, Any]) -> dict[str, list[SweepPoint]]:
    """Add every sweep point's run and training to ``config`` (in place); return the points per sweep.

    Errors name the sweep: an unknown base run or training, a training that does not learn from the base
    run, a key the run or training does not have, lists of different lengths, and a point name that is
    already a run or training of the config."""
    runs, trainings = config.setdefault("runs", {}), config.setdefault("sod", {})
    expanded: dict[str, list[SweepPoint]] = {}
    for name, sweep in sorted(config.get("sweeps", {}).items()):
        where, base_run, base_training = f"sweeps.{name}", sweep.get("run"), sweep.get("training")
        if base_run is None and base_training is None:
            raise SynthsodError(f"{where}: name a run, a training or both")
        if base_run is not None and base_run not in runs:
            raise SynthsodError(f"{where}.run: '{base_run}' is not under runs:")
        if base_training is not None:
            if base_training not in trainings:
                raise SynthsodError(f"{where}.training: '{base_training}' is not under sod:")
            if base_run is not None and base_run not in trainings[base_training]["train"]["runs"]:
                raise SynthsodError(f"{where}.training: '{base_training}' does not train on run '{base_run}'")
        values = dict(sweep["keys"])
        if not values:
            raise SynthsodError(f"{where}.keys: no key to sweep")
        if len({len(v) for v in values.values()}) != 1:
            raise SynthsodError(f"{where}.keys: every key needs as many values ({', '.join(map(str, values))})")
        paths = {}  # key -> (on the training?, its path)
        for key in values:
            on_training = key.startswith(TRAINING_PREFIX)
            path = key.removeprefix(TRAINING_PREFIX).split(".")
            if on_training and base_training is None:
                raise SynthsodError(f"{where}.keys: '{key}' sweeps a training, but the sweep names none")
            if not on_training and base_run is None:
                raise SynthsodError(f"{where}.keys: '{key}' sweeps a run, but the sweep names none")
            if not _path_exists(trainings[base_training] if on_training else runs[base_run], path):
                what = f"training '{base_training}'" if on_training else f"run '{base_run}'"
                raise SynthsodError(f"{where}.keys: the {what} has no key '{'.'.join(path)}'")
            paths[key] = (on_training, path)
        points = []
        for i, label in enumerate(_point_labels(name, sweep, values)):
            point_values = {key: options[i] for key, options in values.items()}
            run = copy.deepcopy(runs[base_run]) if base_run is not None else None
            training = copy.deepcopy(trainings[base_training]) if base_training else None
            for key, (on_training, path) in paths.items():
                _set(training if on_training else run, path, point_values[key])
            run_name = _point_name(base_run, run, runs, f"{name}-{label}")
            if training is not None and base_run is not None:
                training["train"]["runs"] = [run_name if r == base_run else r for r in training["train"]["runs"]]
            training_name = _point_name(base_training, training, trainings, f"{name}-{label}")
            for new, base, existing, kind in (
                (run_name, base_run, runs, "run"),
                (training_name, base_training, trainings, "training"),
            ):
                if new is not None and new != base and new in existing:
                    raise SynthsodError(f"{where}: the point's {kind} name '{new}' is already under the config")
            if run_name is not None and run_name != base_run:
                runs[run_name] = run
            if training_name is not None and training_name != base_training:
                training["refine_with"] = []  # a point is a row of its sweep table, not of the refinements
                trainings[training_name] = training
            points.append(SweepPoint(label, point_values, run_name, training_name))
        expanded[name] = points
    return expanded


__all__ = ["SweepPoint", "expand_sweeps", "value_label"]
