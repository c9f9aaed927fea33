"""Progress bars for the long loops that read well in a rule's log file.

A terminal bar redraws itself with carriage returns, which a log file keeps as one unreadable line.
:func:`progress` returns a tqdm bar that writes whole lines instead: one at most every ``every_s``
seconds while the loop runs, and always one with the final state when it ends (also for a loop of one
item, or none), e.g.::

    f3net training:  45%|####5     | 450/1000 [05:02<06:09,  1.49step/s, loss=0.312]

Lines go to sys.stderr (as it is when the line is written, so pytest's capture sees them), or inside
:func:`progress_to` to a stream or a logger: :func:`synthsod.workflow.run_rule` sends them to the
logger ``synthsod.core.progress``, i.e. timestamped into the rule's log file and stderr, in order with the
other log lines. Bars only count and time, so they cannot change a result. This module needs neither
torch nor TensorFlow (the BigBiGAN env has no torch).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from tqdm.std import tqdm

LINE_EVERY_S = 10.0  # a 10-minute training logs ~60 lines
_clock = time.monotonic  # what bars time themselves with (tests replace it)
_write_line: Callable[[str], None] | None = None  # None: sys.stderr


def _emit(line: str) -> None:
    if _write_line is not None:
        _write_line(line)
    else:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


class _Nowhere:
    """tqdm's own output stream: only padding and newlines reach it, as LineBar writes the lines itself."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class LineBar(tqdm):
    """A tqdm bar that writes one whole line per refresh (see the module docstring)."""

    monitor_interval = 0  # no monitor thread: lines come from the loop's own updates only

    def __init__(self, *args: Any, **kwargs: Any):
        self._creating, self._closing = True, False
        self._shown_n: float | None = None  # the count on the last line written
        self._postfix_values: dict[str, Any] = {}
        super().__init__(*args, **kwargs)
        self._creating = False
        # tqdm times itself with time.time; the monotonic _clock instead, from now on
        self._time = _clock
        self.start_t = self.last_print_t = _clock()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = False, **values: Any) -> None:
        """Values shown at the end of the next line. A callable (``loss=tensor.item``) is read only when a
        line is written, so a loss on the GPU costs one sync per line, not one per step. Unlike tqdm's,
        no refresh by default: a refresh is a line."""
        self._postfix_values = {**(ordered_dict or {}), **values}
        if refresh:
            self.refresh()

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        # tqdm draws the empty bar when created and clears it with ''; neither is progress. The final
        # line is left out when the last one already showed the final count.
        if self._creating or msg == "" or (self._closing and self.n == self._shown_n):
            return True
        if self._postfix_values:
            values = {k: v() if callable(v) else v for k, v in self._postfix_values.items()}
            super().set_postfix(values, refresh=False)
        _emit(msg or self.__str__())
        self._shown_n = self.n
        return True

    def close(self) -> None:
        self._closing = True
        super().close()


def progress(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    initial: int = 0,
    every_s: float = LINE_EVERY_S,
) -> LineBar:
    """A :class:`LineBar` over ``iterable`` (or updated by hand: ``bar.update(n)``, then ``bar.close()`` or
    a ``with`` block). ``total`` defaults to ``len(iterable)``; ``initial`` counts work done before (a
    resumed training)."""
    return LineBar(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        mininterval=every_s,
        miniters=1,  # a fixed count: tqdm's adaptive one would skip lines when a loop slows down
        leave=True,
        ascii=True,
        file=_Nowhere(),
    )


@contextmanager
def progress_to(target: TextIO | logging.Logger) -> Iterator[None]:
    """Within the block, bars write their lines to ``target``: a stream, or a logger (an INFO record per
    line, on the logger's handlers); afterwards to where they went before."""
    global _write_line
    previous = _write_line
    if isinstance(target, logging.Logger):

        def write(line: str) -> None:
            target.info("%s", line)
    else:

        def write(line: str) -> None:
            target.write(line + "\n")
            target.flush()

    _write_line = write
    try:
        yield
    finally:
        _write_line = previous


__all__ = ["LINE_EVERY_S", "LineBar", "progress", "progress_to"]
