"""Named SODGAN pipelines: each stage's settings per pipeline, and which pipelines share a stage's files.

A pipeline (config ``pipelines:``) names its generator and overrides any keys of the shared ``den``,
``fewshot`` and ``gmask`` sections (``gmask.dq`` included). The stages form a chain, DEN -> few-shot set
-> G_mask + D_q, and a stage's files depend on its own settings and on everything upstream. So a stage is
keyed by what its pipeline changes up to that stage: the generator, then each overridden setting that
differs from the shared section, ``<stage>.<path>=<value>``, sorted and joined by commas
(``scene``, ``scene+den.mode=vae``, ``scene+gmask.attention=off``). Pipelines with equal settings up to a
stage share its files (a G_mask ablation never retrains the DEN), the paths stay readable, and a key
depends on its own pipeline only: adding, removing or reordering other pipelines moves no file. A key
whose text would not be a plain file name (or would run past :data:`MAX_KEY`) ends in a digest instead.

Standard library only: the Snakefile calls this while it parses.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synthsod.errors import SynthsodError

STAGES = ("den", "fewshot", "gmask")  # upstream first
# Keys of a stage's section that are no setting of that stage's files: the DEN ablations are trained
# beside the DEN (results/den/<key>/ablation-<mode>/) and change nothing the pipeline's DEN produces.
NOT_KEYED = {"den": ("ablations",)}
MAX_KEY = 80  # characters of a readable key; longer ones end in a digest
KEY_CHARS = re.compile(r"^[A-Za-z0-9_.,+=-]+$")


@dataclass(frozen=True)
class Pipeline:
    """One pipeline's resolved settings (shared sections with its overrides) and its key per stage."""

    name: str
    generator: str
    settings: dict[str, dict[str, Any]]
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, stage: str) -> str:
        return self.keys[stage]


def pipeline_generator(config: Mapping[str, Any], spec: Mapping[str, Any]) -> str | None:
    """The generator a pipeline ``spec`` names, or the config's ``generator`` when it names none."""
    return spec.get("generator", config.get("generator"))


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``base`` with ``overrides`` applied key by key (nested mappings merged); a key ``base`` lacks is an
    error naming ``where``. ``base`` is a section with every default filled in, so it lists every key."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if key not in base:
            known = ", ".join(sorted(base))
            raise SynthsodError(f"{where}: unknown key '{key}' (known: {known})")
        if isinstance(base[key], Mapping) and isinstance(value, Mapping):
            merged[key] = merge_overrides(base[key], value, f"{where}.{key}")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _flat(section: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat = {}
    for key, value in section.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _changes(settings: Mapping[str, Any], shared: Mapping[str, Any], stage: str) -> list[str]:
    """``stage.path=value`` for every setting that differs from the shared section (JSON values)."""
    skip = NOT_KEYED.get(stage, ())
    own = _flat({k: v for k, v in settings.items() if k not in skip}, f"{stage}.")
    base = _flat({k: v for k, v in shared.items() if k not in skip}, f"{stage}.")
    return sorted(
        f"{path}={json.dumps(value, sort_keys=True)}" for path, value in own.items() if base.get(path) != value
    )


def stage_key(generator: str, changes: list[str]) -> str:
    """The readable key of a stage (module docstring): the generator, then the changes up to the stage."""
    text = generator + ("+" + ",".join(c.replace('"', "") for c in changes) if changes else "")
    if len(text) <= MAX_KEY and KEY_CHARS.match(text):
        return text
    digest = hashlib.sha256("\n".join([generator, *changes]).encode()).hexdigest()[:12]
    return f"{generator}+{digest}"


def resolve_pipelines(config: Mapping[str, Any]) -> dict[str, Pipeline]:
    """Every pipeline of ``config`` with its settings and stage keys (see the module docstring).

    Errors (an unknown generator, an unknown key in an override) name the pipeline."""
    generators = config.get("generators", {})
    pipelines: dict[str, Pipeline] = {}
    for name, spec in sorted(config.get("pipelines", {}).items()):
        generator = pipeline_generator(config, spec)
        if generator not in generators:
            raise SynthsodError(
                f"pipelines.{name}: generator '{generator}' is not under generators: "
                f"({', '.join(sorted(generators)) or 'none'})"
            )
        settings = {
            stage: merge_overrides(config[stage], spec.get(stage, {}), f"pipelines.{name}.{stage}") for stage in STAGES
        }
        pipelines[name] = Pipeline(name, generator, settings)
    for pipeline in pipelines.values():
        changes: list[str] = []
        for stage in STAGES:  # upstream first: each key carries the changes of the stages before it
            changes += _changes(pipeline.settings[stage], config[stage], stage)
            pipeline.keys[stage] = stage_key(pipeline.generator, changes)
    return pipelines


def uses_pipeline(run: Mapping[str, Any], generator_model: str | None) -> bool:
    """Whether a sampling run reads a pipeline's files: G_mask masks, a D_q filter, or the DEN's latents
    (BigBiGAN runs take their latents from the BigBiGAN encoder instead)."""
    inverted = run["latents"]["source"] == "inverted" and generator_model != "bigbigan"
    return run["mask"]["method"] == "gmask" or run["filters"].get("dq") is not None or inverted


def complete_runs(config: dict[str, Any], pipelines: Mapping[str, Pipeline]) -> list[str]:
    """Give each run of ``config`` its generator from the pipeline it names (in place); return the
    problems: a run naming neither, an unknown pipeline, a generator other than its pipeline's, or a run
    that needs a pipeline's files (:func:`uses_pipeline`) without naming one."""
    problems = []
    generators = config.get("generators", {})
    for name, run in config.get("runs", {}).items():
        where, pipeline = f"runs.{name}", run.get("pipeline")
        if pipeline is not None:
            if pipeline not in pipelines:
                problems.append(
                    f"{where}.pipeline: '{pipeline}' is not under pipelines: ({', '.join(sorted(pipelines))})"
                )
                continue
            own = pipelines[pipeline].generator
            if run.get("generator") not in (None, own):
                problems.append(f"{where}: generator '{run['generator']}' but its pipeline '{pipeline}' uses '{own}'")
                continue
            run["generator"] = own
        elif run.get("generator") is None:
            problems.append(
                f"{where}: name its pipeline (or, for a run without G_mask, D_q or DEN latents, its generator)"
            )
            continue
        elif uses_pipeline(run, generators.get(run["generator"], {}).get("model")):
            problems.append(f"{where}: it uses G_mask, D_q or the DEN's latents, so it must name its pipeline")
    return problems


def stage_keys(pipelines: Mapping[str, Pipeline], stage: str) -> list[str]:
    """The distinct keys of ``stage``: one set of files each."""
    return sorted({p.key(stage) for p in pipelines.values()})


def stage_owners(pipelines: Mapping[str, Pipeline], stage: str) -> dict[str, Pipeline]:
    """Key of ``stage`` -> a pipeline with that key (the alphabetically first: all have its settings)."""
    owners: dict[str, Pipeline] = {}
    for name in sorted(pipelines):
        owners.setdefault(pipelines[name].key(stage), pipelines[name])
    return owners


__all__ = [
    "NOT_KEYED",
    "STAGES",
    "Pipeline",
    "complete_runs",
    "merge_overrides",
    "pipeline_generator",
    "resolve_pipelines",
    "stage_key",
    "stage_keys",
    "stage_owners",
    "uses_pipeline",
]
