"""The latent table: one writer and one reader for the DEN's latents and BigBiGAN's embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from synthsod.errors import SynthsodError
from synthsod.generators.latent_table import (
    class_map,
    latent_arrays,
    read_latent_table,
    table_truncation,
    write_latent_table,
)


def test_a_den_table_round_trips(tmp_path):
    z = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    write_latent_table(
        tmp_path / "l.parquet",
        ["a", "b", "c"],
        z,
        **{"class": np.array([5, 1, 5])},
        truncation=np.full(3, 0.4),
        recon_error=[0.1, 0.2, 0.3],
    )
    rows = read_latent_table(tmp_path / "l.parquet")
    back, classes = latent_arrays(rows)
    assert list(rows["id"]) == ["a", "b", "c"] and back.dtype == np.float32 and np.array_equal(back, z)
    assert classes.tolist() == [5, 1, 5] and table_truncation(rows) == 0.4
    assert class_map(rows) == {"a": 5, "b": 1, "c": 5}
    assert list(read_latent_table(tmp_path / "l.parquet", ["class"]).columns) == ["id", "z", "class"]


def test_an_embeddings_table_has_no_classes_or_truncation(tmp_path):
    write_latent_table(tmp_path / "e.parquet", ["x"], np.ones((1, 120)))
    rows = read_latent_table(tmp_path / "e.parquet")
    z, classes = latent_arrays(rows)
    assert z.shape == (1, 120) and classes is None and table_truncation(rows) is None


def test_bad_tables_are_named(tmp_path):
    with pytest.raises(SynthsodError, match="cannot read the latent table"):
        read_latent_table(tmp_path / "missing.parquet")
    import pandas as pd

    pd.DataFrame({"id": ["a"]}).to_parquet(tmp_path / "noz.parquet")
    with pytest.raises(SynthsodError, match="noz.parquet: a latent table needs"):
        read_latent_table(tmp_path / "noz.parquet")
    with pytest.raises(SynthsodError, match="latents must be"):
        write_latent_table(tmp_path / "w.parquet", ["a", "b"], np.ones((3, 4)))
