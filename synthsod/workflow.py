"""Glue between Snakemake and the library: the script entry point and the start-up checks.

Workflow scripts stay thin: ``run_rule(snakemake, main)`` sends logging and progress bars to the rule's
log file, ends the log with the stage's one-line summary (what ``main`` returns) and wall time, and
turns a :class:`SynthsodError` into one plain line on stderr (and in the log) with exit status 1,
never a traceback. Scripts read ``snakemake.params`` / ``input`` / ``output`` only, never the config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from synthsod.core.progress import progress_to
from synthsod.errors import SynthsodError
from synthsod.names import BIGBIGAN, BUILT_DIRECTIONS, BUILT_MODELS, CONTRAST, COOP, SEARCH, WEIGHT_FILES
from synthsod.pipelines import pipeline_generator

log = logging.getLogger("synthsod")


def run_rule(smk: Any, main: Callable[[Any], str | None]) -> None:
    """Run ``main(smk)`` with logging and progress bars to stderr and ``smk.log[0]``, then log the summary
    line ``main`` returns with the stage's wall time; exit 1 with a plain message on SynthsodError.

    The job's compute threads (torch, OpenCV) are limited to the ``threads`` Snakemake gave it."""
    started = time.perf_counter()
    limit_threads(getattr(smk, "threads", None))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if smk.log:
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(smk.log[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    try:
        # bar lines as log records: timestamped, and in order with the rule's other lines
        with progress_to(logging.getLogger("synthsod.progress")):
            summary = main(smk)
    except SynthsodError as err:
        log.error("%s", err)
        sys.exit(1)
    log.info("%s [%.1f s]", summary or f"{getattr(smk, 'rule', 'stage')} done", time.perf_counter() - started)


def limit_threads(threads: int | None) -> None:
    """Use ``threads`` compute threads in torch and OpenCV, where loaded (None or 0: leave them).

    Snakemake runs as many jobs as ``--cores`` allows, one core each by default, while torch and OpenCV
    start a thread per core in every job; on 2 cores two such jobs took 2.3x as long as with one thread each
    (a small generator's forward and backward passes), so each job keeps to the threads it was given."""
    if not threads:
        return
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(int(threads))


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively (lists keep their order: it means something)."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


REPLACE_KEY = "replace"


def layer_config(config: dict, base_file: str | Path, files: Iterable[str | Path], overrides: Any = None) -> None:
    """Rebuild ``config`` from ``base_file``, the ``--configfile`` ``files`` and the ``--config`` ``overrides``,
    honouring each file's top-level ``replace: [section, ...]``.

    Snakemake merges config files key by key, so an experiment file could only ever add to the demo's
    named entries (its runs, trainings, datasets). A file that lists a section under ``replace`` drops
    what the layers below it put there before its own content is merged, so it stands alone on top of
    the defaults. Without any ``replace``, the result is Snakemake's own merge (nothing is rebuilt).
    """
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config

    layers = [load_configfile(str(path)) for path in files]
    if not any(REPLACE_KEY in layer for layer in layers):
        return
    merged = load_configfile(str(base_file)) if Path(base_file).exists() else {}  # as Snakemake: optional
    for path, layer in zip(files, layers):
        layer = dict(layer)
        sections = layer.pop(REPLACE_KEY, [])
        if not isinstance(sections, list) or not all(isinstance(name, str) for name in sections):
            raise SynthsodError(f"{path}: 'replace' must be a list of top-level section names, got {sections!r}")
        unknown = [name for name in sections if name not in layer]
        if unknown:
            raise SynthsodError(f"{path}: 'replace' names {', '.join(unknown)}, which the file does not set")
        for name in sections:
            merged.pop(name, None)
        update_config(merged, layer)
    update_config(merged, dict(overrides or {}))
    config.clear()
    config.update(merged)


def canonicalise_config(config: dict) -> None:
    """Sort the workflow's config in place. Snakemake compares a rule's params by their repr, which for a
    dict depends on key order; sorted, moving or re-commenting keys in config.yaml re-runs nothing."""
    ordered = canonical(config)
    config.clear()
    config.update(ordered)


def load_generator(smk: Any, device: Any):
    """The generator a rule names in ``params.generator``, weights from ``input.weights`` (or the cache)."""
    from synthsod.generators import create_generator

    spec = smk.params.generator
    weights = str(Path(smk.input.weights[0]).parent) if smk.input.weights else None
    return create_generator(spec["model"], weights, spec["taps"], device, spec.get("sha256"))


def checkpoint_path(output: str, params: Any) -> Path:
    """A resumable checkpoint beside ``output``, named by a hash of the training settings, so that a
    killed run resumes while a run with other settings starts afresh."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(output).parent / f"checkpoint-{digest}.pt"


def missing_inputs(
    config: dict, datasets: Iterable[str], generators: Iterable[str], produced: Callable[[str], bool]
) -> list[str]:
    """One line per user-supplied input that is not on disk: dataset folders and generator weights.

    ``produced(path)`` tells whether the workflow itself makes a path (the scene world's splits, the tiny
    generator, a download's targets), which then need not exist yet; it is asked about every path checked.
    """
    from synthsod.generators.weights import bigbigan_module_problem, locate_weights, missing_weights_message

    lines = []
    for name in datasets:
        spec = config["datasets"].get(name)
        if spec is None:
            lines.append(f"dataset '{name}' is used but not defined under datasets:")
            continue
        for role in ("images", "masks"):
            folder = spec[role]
            if not produced(folder) and not Path(folder).is_dir():
                lines.append(
                    f"dataset {name}: {role} folder {folder} does not exist"
                    f" (put the {name} {role} there, or set datasets.{name}.{role})"
                )
    for name in generators:
        spec = config["generators"].get(name)
        if spec is None:
            lines.append(f"generator '{name}' is used but not defined under generators:")
        elif spec["model"] == BIGBIGAN:
            weights = spec.get("weights")
            problem = None if weights and produced(weights) else bigbigan_module_problem(weights)
            if problem:
                lines.append(f"generator {name}: {problem}")
        elif (
            not (spec["model"] in BUILT_MODELS and spec.get("weights") is None)
            and not _weights_produced(spec.get("weights"), produced)
            and locate_weights(spec["model"], spec.get("weights")) is None
        ):
            lines.append(f"generator {name}: " + missing_weights_message(spec["model"], spec.get("weights")))
    for key, path in optional_files(config):
        if path is not None and not produced(path) and not Path(path).is_file():
            lines.append(f"{key}: file {path} does not exist (put it there, or set {key}: null)")
    for key, path in direction_files(config):
        if not produced(path) and not Path(path).is_file():
            lines.append(
                f"{key}: file {path} does not exist (put the direction there as a .npy vector, "
                f"or set {key} to another file or to one of {', '.join(BUILT_DIRECTIONS)})"
            )
    for gen, path in config["directions"]["search"]["candidates"].items():
        if not produced(path) and not Path(path).is_file():
            lines.append(
                f"directions.search.candidates.{gen}: file {path} does not exist (a .npy matrix "
                "[K, z_dim] of directions)"
            )
    return lines


def _weights_produced(weights_dir: str | None, produced: Callable[[str], bool]) -> bool:
    """Whether the workflow makes every file of a weights directory (asking about each, so that all are seen)."""
    if weights_dir is None:
        return False
    answers = [produced(str(Path(weights_dir) / name)) for name in WEIGHT_FILES]
    return all(answers)


def optional_files(config: dict) -> list[tuple[str, str | None]]:
    """Config keys that name a user file (backbone weights, class lists, direction files)."""
    return [
        ("den.backbone_weights", config["den"]["backbone_weights"]),
        ("gmask.dq.backbone_weights", config["gmask"]["dq"]["backbone_weights"]),
        ("fewshot.class_file", config["fewshot"]["class_file"]),
        *[(f"sod.{name}.backbone_weights", spec["backbone_weights"]) for name, spec in config["sod"].items()],
    ]


def direction_files(config: dict) -> list[tuple[str, str]]:
    """Config keys that name a direction file the user supplies (the built ones excepted)."""
    return [
        (f"runs.{name}.mask.direction", run["mask"]["direction"])
        for name, run in config["runs"].items()
        if run["mask"]["method"] == "direction" and run["mask"]["direction"] not in BUILT_DIRECTIONS
    ]


def searched_generators(config: dict) -> list[str]:
    """Generators the direction search runs on: those listed under directions.search.generators and
    those of runs taking the `search` direction."""
    runs = [
        run["generator"]
        for run in config["runs"].values()
        if run["mask"]["method"] == "direction" and run["mask"]["direction"] == SEARCH
    ]
    return list(dict.fromkeys([*config["directions"]["search"]["generators"], *runs]))


def direction_problems(config: dict) -> list[str]:
    """Discovery needs a differentiable (PyTorch) generator: BigBiGAN's candidates come from a file."""
    lines = []
    candidates = config["directions"]["search"]["candidates"]
    for gen in [*searched_generators(config), *candidates]:
        spec = config["generators"].get(gen)
        if spec is None:
            lines.append(f"directions.search: generator '{gen}' is not defined under generators:")
        elif spec["model"] == BIGBIGAN and gen not in candidates:
            lines.append(
                f"directions.search.candidates.{gen}: BigBiGAN cannot be differentiated here, so its "
                "candidate directions come from a file (a .npy [K, 120], e.g. from GANLatentDiscovery)"
            )
    return list(dict.fromkeys(lines))


def config_problems(config: dict) -> list[str]:
    """Settings the schema cannot check: cross-references between sections and per-run combinations."""
    from synthsod.synthesis.filter_spec import FilterSpec

    lines = []
    generators = config["generators"]
    pipelines = config["pipelines"]
    for pipeline, spec in pipelines.items():
        name = pipeline_generator(config, spec)
        if generators.get(name, {}).get("model") == BIGBIGAN:
            lines.append(
                f"pipelines.{pipeline}: generator '{name}' is BigBiGAN, which only sampling runs can use "
                "(SODGAN needs BigGAN)"
            )
    if config["pipeline"] is None:
        if config["scorecard"]["enabled"] and config["sod"]:
            lines.append(
                "scorecard.enabled: the scorecard describes a pipeline; set pipeline: or scorecard.enabled: false"
            )
    elif config["pipeline"] not in pipelines:
        lines.append(f"pipeline: '{config['pipeline']}' is not under pipelines: ({', '.join(sorted(pipelines))})")
    for name, run in config["runs"].items():
        where = f"runs.{name}"
        spec = generators.get(run["generator"])
        if spec is None:
            lines.append(f"{where}.generator: '{run['generator']}' is not defined under generators:")
            continue
        try:
            FilterSpec.from_config(run["filters"])
        except SynthsodError as err:
            lines.append(f"{where}: {err}")
        dq = run["filters"]["dq"]
        if spec["model"] == BIGBIGAN:
            if run["mask"]["method"] != "direction":
                lines.append(f"{where}: BigBiGAN runs take masks from a direction (mask.method: direction)")
            if dq is not None:
                lines.append(f"{where}: the dq filter needs a D_q trained on a BigGAN; BigBiGAN runs have none")
            if run["mask"]["direction"] == CONTRAST:
                lines.append(
                    f"{where}.mask.direction: '{CONTRAST}' is built for PyTorch generators only; give "
                    f"BigBiGAN a direction file (e.g. the published h_bg) or '{SEARCH}'"
                )
        elif run["truncation"] is None and run["latents"]["source"] == "prior":
            lines.append(f"{where}.truncation: a BigGAN run sampling the prior needs a truncation")
    return (
        lines
        + direction_problems(config)
        + sod_problems(config["sod"])
        + fewshot_problems(config["fewshot"], config["sod"])
    )


def fewshot_problems(fewshot: dict, sod: dict) -> list[str]:
    """The uncertainty model of the 'uncertain' strategy must exist and must not learn from synthetic
    runs (those depend on the few-shot set: a cycle)."""
    model = fewshot["uncertainty"]["model"]
    if fewshot["strategy"] != "uncertain":
        return []
    if model not in sod:
        return [f"fewshot.uncertainty.model: the 'uncertain' strategy needs a training under sod:, got {model!r}"]
    if sod[model]["train"]["runs"]:
        return [f"fewshot.uncertainty.model: '{model}' trains on synthetic runs, which need the few-shot set first"]
    return []


def sod_problems(sod: dict) -> list[str]:
    """The cooperative model's constraints and the references of ``refine_with``."""
    lines = []
    for name, spec in sod.items():
        where = f"sod.{name}"
        if spec["model"] == COOP:
            if spec["loss"] != "bce":
                lines.append(f"{where}.loss: coop's warm-up loss is bce, not '{spec['loss']}'")
            if spec["eval_size"] % 8:
                lines.append(f"{where}.eval_size: coop's EBM needs a multiple of 8, got {spec['eval_size']}")
            if spec["recipe"]["sizes"] != [spec["eval_size"]]:
                lines.append(
                    f"{where}.recipe.sizes: coop trains at its EBM's size, eval_size (set sizes: [{spec['eval_size']}])"
                )
        elif spec["point_labels"] is not None:
            lines.append(f"{where}.point_labels: only coop learns from point labels (learning while recovering)")
        if spec["active"] is not None:
            if spec["model"] == COOP or spec["loss"] != "bce":
                lines.append(f"{where}.active: ATAL trains f3net or unet with the partial BCE (loss: bce)")
            if spec["recipe"]["schedule"] != "cyclic":
                lines.append(f"{where}.active: ATAL's snapshots need recipe.schedule: cyclic")
        for other in spec["refine_with"]:
            if sod.get(other, {}).get("model") != COOP:
                lines.append(f"{where}.refine_with: '{other}' is not a coop training under sod:")
    return lines


def format_problems(lines: list[str]) -> str:
    return "synthsod cannot start; the config has these problems:\n" + "\n".join(f"  - {line}" for line in lines)


def format_missing(lines: list[str]) -> str:
    return "synthsod cannot start; these inputs are missing:\n" + "\n".join(f"  - {line}" for line in lines)
