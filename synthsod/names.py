"""Names the rules need to build the DAG, with nothing but the standard library.

The Snakefile imports this module (and :mod:`synthsod.workflow`) while it parses, so ``snakemake -n``
and ``--lint`` never load torch, TensorFlow, matplotlib or OpenCV. Library modules import these names
from here too: each is defined once.
"""

from __future__ import annotations

import math

# --- generator models ----------------------------------------------------------------------------------
PRETRAINED_MODELS = ("biggan-deep-128", "biggan-deep-256", "biggan-deep-512")  # pytorch-pretrained-biggan
TINY = "tiny"  # a random-init small BigGAN-deep built from a seed (fast tests)
SCENE = "scene"  # the small BigGAN-deep trained on the scene world (shipped, or trained in the DAG)
BUILT_MODELS = (TINY, SCENE)  # models the workflow builds itself when no weights are given
BIGBIGAN = "bigbigan"  # the TensorFlow generator (synthsod/generators/bigbigan.py)
MODELS = (*PRETRAINED_MODELS, *BUILT_MODELS)  # the PyTorch generators of create_generator
WEIGHT_FILES = ("pytorch_model.bin", "config.json")  # the from_pretrained layout

# --- SODGAN ----------------------------------------------------------------------------------------------
DEN_MODES = ("den", "vae")  # the DEN and the paper's VAE ablation (synthsod/sodgan/den.py)

# --- built latent directions ------------------------------------------------------------------------------
# `contrast` (synthsod/directions/contrast.py) and `search`, the rank-1 direction of the segmenting-direction search
# (synthsod/directions/search.py) among the discovered ones.
CONTRAST, SEARCH = "contrast", "search"
BUILT_DIRECTIONS = (CONTRAST, SEARCH)

# --- SOD models and report figures ---------------------------------------------------------------------
COOP = "coop"  # the cooperative SOD model, which has its own training and prediction rules
DATASET_FIGURES = ("centre_bias", "object_size", "colour_contrast", "classes")  # report_dataset's panels


# --- shards of a sampling run --------------------------------------------------------------------------
def shard_count(pairs: int, rows_per_shard: int) -> int:
    return math.ceil(pairs / rows_per_shard)


def shard_rows(pairs: int, rows_per_shard: int, shard: int) -> int:
    """Rows of shard ``shard``: ``rows_per_shard``, the last one the remainder."""
    from synthsod.errors import SynthsodError

    if not 0 <= shard < shard_count(pairs, rows_per_shard):
        raise SynthsodError(f"shard {shard} is outside the run's {shard_count(pairs, rows_per_shard)} shards")
    return min(rows_per_shard, pairs - shard * rows_per_shard)
