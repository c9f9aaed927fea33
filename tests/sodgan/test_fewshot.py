"""Few-shot set selection strategies and the class file."""

import pandas as pd
import pytest

from synthsod.errors import SynthsodError
from synthsod.sodgan.fewshot import apply_class_file, select_fewshot


@pytest.fixture()
def latents():
    # class 0: a (0.3), b (0.1); class 1: c (0.2); class 2: d (0.9), e (0.05)
    return pd.DataFrame(
        {
            "id": ["d", "b", "a", "e", "c"],
            "class": [2, 0, 0, 2, 1],
            "recon_error": [0.9, 0.1, 0.3, 0.05, 0.2],
        }
    )


def test_best_per_class_keeps_the_best_pair_of_each_class(latents):
    chosen = select_fewshot(latents, "best_per_class", size=10, seed=0)
    assert chosen["id"].tolist() == ["b", "c", "e"]
    capped = select_fewshot(latents, "best_per_class", size=2, seed=0)
    assert capped["id"].tolist() == ["b", "e"]  # the two classes with the best pairs


def test_best_ignores_classes(latents):
    assert select_fewshot(latents, "best", size=3, seed=0)["id"].tolist() == ["b", "c", "e"]
    assert select_fewshot(latents, "best", size=2, seed=0)["id"].tolist() == ["b", "e"]


def test_random_per_class_gives_one_pair_per_class_reproducibly(latents):
    first = select_fewshot(latents, "random_per_class", size=10, seed=3)
    assert sorted(first["class"]) == [0, 1, 2]
    assert first.equals(select_fewshot(latents, "random_per_class", size=10, seed=3))
    picks = {tuple(select_fewshot(latents, "random_per_class", size=10, seed=s)["id"]) for s in range(20)}
    assert len(picks) > 1  # the seed matters
    assert len(select_fewshot(latents, "random_per_class", size=2, seed=0)) == 2


def test_random_draws_the_requested_number(latents):
    chosen = select_fewshot(latents, "random", size=3, seed=1)
    assert len(chosen) == 3 and chosen["id"].is_unique and chosen["id"].is_monotonic_increasing


def test_bad_strategy_and_size_are_explained(latents):
    with pytest.raises(SynthsodError, match="strategy"):
        select_fewshot(latents, "smart", size=3, seed=0)
    with pytest.raises(SynthsodError, match="size"):
        select_fewshot(latents, "best", size=0, seed=0)


def test_class_file_overrides_inferred_classes(latents, tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("id,class\na,7\nb,7\nc,8\nd,9\ne,9\n")
    relabelled = apply_class_file(latents, path)
    assert dict(zip(relabelled["id"], relabelled["class"])) == {"a": 7, "b": 7, "c": 8, "d": 9, "e": 9}
    assert select_fewshot(relabelled, "best_per_class", size=10, seed=0)["id"].tolist() == ["b", "c", "e"]
    path.write_text("id,class\na,7\n")
    with pytest.raises(SynthsodError, match="no class for 4 pairs"):
        apply_class_file(latents, path)
    path.write_text("name,label\na,7\n")
    with pytest.raises(SynthsodError, match="columns id and class"):
        apply_class_file(latents, path)
