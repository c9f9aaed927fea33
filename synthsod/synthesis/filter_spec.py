"""A sampling run's ``filters:`` section as a checked value (no numpy, no OpenCV: the start-up checks use it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthsod.errors import SynthsodError

FILTER_ORDER = ("components", "size", "histogram", "dq")  # the order a candidate meets the filters in


@dataclass
class FilterSpec:
    """The run's ``filters:`` section; a None entry is off. D_q needs a scorer and a threshold."""

    components: Mapping[str, Any] | None = None  # {fraction, connectivity}
    size: Mapping[str, Any] | None = None  # {min, max}
    histogram: Mapping[str, Any] | None = None  # {bins, window, strict}
    dq: Mapping[str, Any] | None = None  # {threshold} or {keep_top, calibration}

    @classmethod
    def from_config(cls, spec: Mapping[str, Any] | None) -> FilterSpec:
        spec = dict(spec or {})
        unknown = set(spec) - set(FILTER_ORDER)
        if unknown:
            raise SynthsodError(f"unknown filters {sorted(unknown)}; known: {', '.join(FILTER_ORDER)}")
        dq = spec.get("dq")
        if dq is not None and (dq.get("threshold") is None) == (dq.get("keep_top") is None):
            raise SynthsodError("filters.dq: set exactly one of threshold and keep_top")
        return cls(**spec)

    def enabled(self) -> list[str]:
        return [name for name in FILTER_ORDER if getattr(self, name) is not None]
