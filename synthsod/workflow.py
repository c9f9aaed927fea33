"""Glue between Snakemake and the library: the script entry point and the start-up checks.

Workflow scripts stay thin: ``run_rule(snakemake, main)`` sends logging to the rule's log file and
turns a :class:`SynthsodError` into one plain line on stderr (and in the log) with exit status 1,
never a traceback. Scripts read ``snakemake.params`` / ``input`` / ``output`` only, never the config.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import SynthsodError

log = logging.getLogger("synthsod")


def run_rule(smk: Any, main: Callable[[Any], None]) -> None:
    """Run ``main(smk)`` with logging to ``smk.log[0]``; exit 1 with a plain message on SynthsodError."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if smk.log:
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(smk.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        main(smk)
    except SynthsodError as err:
        log.error("%s", err)
        sys.exit(1)


def missing_inputs(config: dict, datasets: Iterable[str], generators: Iterable[str],
                   produced: Callable[[str], bool]) -> list[str]:
    """One line per user-supplied input that is not on disk: dataset folders and generator weights.

    ``produced(path)`` tells whether the workflow itself makes a path (the demo world, the tiny
    generator), which then need not exist yet.
    """
    from .generators import TINY
    from .generators.biggan import locate_weights, missing_weights_message

    lines = []
    for name in datasets:
        spec = config["datasets"].get(name)
        if spec is None:
            lines.append(f"dataset '{name}' is used but not defined under datasets:")
            continue
        for role in ("images", "masks"):
            folder = spec[role]
            if not produced(folder) and not Path(folder).is_dir():
                lines.append(f"dataset {name}: {role} folder {folder} does not exist"
                             f" (put the {name} {role} there, or set datasets.{name}.{role})")
    for name in generators:
        spec = config["generators"].get(name)
        if spec is None:
            lines.append(f"generator '{name}' is used but not defined under generators:")
        elif spec["model"] != TINY and locate_weights(spec["model"], spec.get("weights")) is None:
            lines.append(f"generator {name}: " + missing_weights_message(spec["model"], spec.get("weights")))
    return lines


def format_missing(lines: list[str]) -> str:
    return "synthsod cannot start; these inputs are missing:\n" + "\n".join(f"  - {line}" for line in lines)
