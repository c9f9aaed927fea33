"""Matplotlib without a display, and figures written atomically (a killed job leaves no half PNG)."""

from __future__ import annotations

import os
from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only; imported late: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_png: str | os.PathLike, dpi: int = 100) -> None:
    """Write ``fig`` as a PNG at ``out_png`` atomically and close it."""
    from synthsod.core.io import atomic_path

    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_png) as tmp, open(tmp, "wb") as file:
        fig.savefig(file, format="png", dpi=dpi)
    pyplot().close(fig)


__all__ = ["pyplot", "save_figure"]
