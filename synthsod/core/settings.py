"""Config sections as dataclasses: the one way a rule's settings become the library's settings object.

Defaults live in the config schema (``schemas/config.schema.yaml``), which Snakemake's ``validate`` fills in;
the dataclasses repeat them for library callers, and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from synthsod.errors import SynthsodError

T = TypeVar("T")


def from_section(cls: type[T], section: Mapping[str, Any] | None, *, where: str, ignore: Iterable[str] = ()) -> T:
    """``cls`` built from the config section ``where``; keys in ``ignore`` belong to other readers, and any
    other key that is not a field of ``cls`` is an error naming it."""
    section = dict(section or {})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - fields - set(ignore))
    if unknown:
        raise SynthsodError(f"{where}: unknown settings {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    return cls(**{key: value for key, value in section.items() if key in fields})
