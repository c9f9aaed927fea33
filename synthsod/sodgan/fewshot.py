"""The few-shot set D_m = {(z⁺_i, y_i)}: which inverted real pairs train the mask generator.

SODGAN classifies DUTS-TR into 522 ImageNet classes and keeps one random pair per class. The class of
a pair is the DEN's inferred class unless a class file (CSV ``id,class``, e.g. from an ImageNet
classifier) overrides it. Strategies:

``random_per_class``  one random pair per class (the paper's choice)
``best_per_class``    per class, the pair the generator reconstructs best (lowest ``recon_error``),
                      so that the mask y lines up with G(z⁺) as well as possible
``best``              the pairs with the lowest reconstruction error, whatever their class
``random``            pairs drawn uniformly
``uncertain``         ATAL's choice of which images deserve full labels: the pairs a trained SOD model
                      is most uncertain about under attack, spread by a k-centre cover
                      (:func:`synthsod.sod.atal.train.select_uncertain_images`; the caller scores them)

When a per-class strategy yields more pairs than ``size``, the kept classes are drawn at random
(``random_per_class``) or are those with the best pairs (``best_per_class``). Ties break by id, and
all randomness comes from ``seed``, so a selection is reproducible.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from synthsod.errors import SynthsodError

STRATEGIES = ("random_per_class", "best_per_class", "best", "random", "uncertain")


def apply_class_file(latents: pd.DataFrame, class_file: str | os.PathLike) -> pd.DataFrame:
    """Replace the inferred ``class`` by the one in ``class_file`` (CSV with columns id, class)."""
    try:
        classes = pd.read_csv(class_file, dtype={"id": str})
    except (OSError, ValueError) as err:
        raise SynthsodError(f"cannot read class file {class_file}: {err}") from err
    if not {"id", "class"} <= set(classes.columns):
        raise SynthsodError(f"class file {class_file} needs the columns id and class, has {list(classes.columns)}")
    mapping = classes.drop_duplicates("id").set_index("id")["class"]
    missing = sorted(set(latents["id"]) - set(mapping.index))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise SynthsodError(f"class file {class_file} has no class for {len(missing)} pairs: {shown}")
    return latents.assign(**{"class": latents["id"].map(mapping).astype("int64")})


def select_fewshot(
    latents: pd.DataFrame, strategy: str, size: int, seed: int, chosen_ids: list[str] | None = None
) -> pd.DataFrame:
    """Rows of ``latents`` (columns id, class, recon_error, ...) forming the few-shot set, sorted by id.
    ``uncertain`` takes the ids its caller chose (``chosen_ids``)."""
    if strategy == "uncertain":
        if chosen_ids is None:
            raise SynthsodError("the 'uncertain' few-shot strategy needs the ids its uncertainty model chose")
        return latents[latents["id"].isin(chosen_ids)].sort_values("id", kind="stable").reset_index(drop=True)
    if strategy not in STRATEGIES:
        raise SynthsodError(f"unknown few-shot strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}")
    if size < 1:
        raise SynthsodError(f"few-shot size must be at least 1, got {size}")
    rng = np.random.default_rng(seed)
    rows = latents.sort_values("id", kind="stable").reset_index(drop=True)
    if strategy == "random":
        chosen = rows.iloc[np.sort(rng.permutation(len(rows))[:size])]
    elif strategy == "best":
        chosen = rows.sort_values(["recon_error", "id"], kind="stable").head(size)
    elif strategy == "random_per_class":
        picks = rows.assign(_key=rng.random(len(rows))).sort_values("_key", kind="stable")
        per_class = picks.drop_duplicates("class").drop(columns="_key")
        chosen = per_class.iloc[np.sort(rng.permutation(len(per_class))[:size])]
    else:  # best_per_class
        per_class = rows.sort_values(["recon_error", "id"], kind="stable").drop_duplicates("class")
        chosen = per_class.head(size)
    return chosen.sort_values("id", kind="stable").reset_index(drop=True)
