"""The one resumable training loop: checkpoint cadence, resume check, progress bar and the last-step rule.

Every trainer (the DEN, G_mask, direction discovery, the SOD models, the scene GAN) iterates a
:class:`TrainingLoop` and does its own update inside. The loop restores the trainer's ``parts`` (models,
optimisers) from the checkpoint, refuses to resume one written with settings the trainer cannot continue
from, yields the remaining step indices, and writes a checkpoint after every ``every``-th step and after
the last one (so a finished training always leaves its final state). Trainers draw each step's
randomness from ``step_generator(seed, step)``, never from a running stream, which is what makes a resumed
training end exactly where an uninterrupted one ends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from synthsod.core.checkpoint import Stateful, load_checkpoint, save_checkpoint
from synthsod.core.progress import LineBar, progress
from synthsod.errors import SynthsodError

log = logging.getLogger(__name__)

Check = Callable[[Any, int], "str | None"]  # (saved settings, saved step) -> why it cannot resume, or None


def changed_settings(saved: Any, wanted: Any, free: Iterable[str] = (), prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ, nested dicts compared key by key; names in ``free`` may."""
    if not (isinstance(saved, dict) and isinstance(wanted, dict)):
        return [] if saved == wanted or prefix.rstrip(".") in free else [prefix.rstrip(".") or "settings"]
    changed = []
    for key in sorted(set(saved) | set(wanted), key=str):
        name = f"{prefix}{key}"
        if name not in free:
            changed += changed_settings(saved.get(key), wanted.get(key), free, f"{name}.")
    return changed


def same_settings(settings: Any, free: Iterable[str] = ()) -> Check:
    """The default resume check: the saved settings equal ``settings``, except those named in ``free``."""

    def check(saved: Any, step: int) -> str | None:
        changed = changed_settings(saved, settings, set(free))
        return ", ".join(changed) + " differ" if changed else None

    return check


class TrainingLoop:
    """Steps ``start .. total - 1`` of a training whose state is ``parts``, resumable from ``checkpoint_path``.

    ``settings`` are saved with each checkpoint and checked on resume by ``check`` (default: equality);
    ``state`` is the trainer's own record (loss history, running averages), saved and restored with it.
    ``after_save(step)`` runs after each checkpoint. ``bar`` is the progress bar while iterating.
    """

    def __init__(
        self,
        total: int,
        parts: Mapping[str, Stateful],
        checkpoint_path: str | os.PathLike | None,
        every: int,
        *,
        desc: str,
        settings: Any,
        check: Check | None = None,
        state: dict | None = None,
        after_save: Callable[[int], None] | None = None,
    ):
        if every < 1:
            raise SynthsodError(f"{desc}: checkpoint_every must be at least 1, got {every}")
        self.total, self.parts, self.every, self.desc = int(total), parts, int(every), desc
        self.path = None if checkpoint_path is None else Path(checkpoint_path)
        self.settings, self.state, self.after_save = settings, dict(state or {}), after_save
        self.start = 0
        self.bar: LineBar | None = None
        payload = load_checkpoint(self.path, parts) if self.path is not None else None
        if payload is not None:
            problem = (check or same_settings(settings))(payload.get("settings"), int(payload["step"]))
            if problem:
                raise SynthsodError(
                    f"cannot resume from checkpoint {self.path}: it was written with other settings ({problem}); "
                    "delete it to start over"
                )
            self.start = int(payload["step"])
            self.state = dict(payload.get("state", self.state))
            log.info("%s: resuming from step %d of %d (%s)", desc, self.start, self.total, self.path)

    def save(self, step: int) -> None:
        if self.path is not None:
            save_checkpoint(self.path, step, self.parts, settings=self.settings, state=self.state)
            if self.after_save is not None:
                self.after_save(step)

    def __iter__(self) -> Iterator[int]:
        with progress(total=self.total, initial=self.start, desc=self.desc, unit="step") as bar:
            self.bar = bar
            for step in range(self.start, self.total):
                yield step  # the trainer's update of this step runs here
                bar.update()
                done = step + 1
                if done % self.every == 0 or done == self.total:
                    self.save(done)
        if self.path is not None and not self.path.exists():  # nothing to train, nothing saved yet
            self.save(max(self.start, self.total))
