"""Rules directions_rank / directions_rank_bigbigan: E-BigBiGAN's segmenting-direction search (appendix
B.2) over the candidate directions -> ranking.csv, the rank-1 direction (search.npy), search.json and a
picture per ranked direction. Imports stay backend-neutral (BigBiGAN's env has no torch)."""

import logging
from pathlib import Path

from synthsod.core.gpu import gpu_lease
from synthsod.core.io import write_json_atomic
from synthsod.core.settings import from_section
from synthsod.directions.files import save_direction
from synthsod.directions.search import (
    SearchConfig,
    load_candidates,
    search_directions,
    shortlist_figures,
    write_ranking,
)
from synthsod.errors import SynthsodError
from synthsod.generators.latents import LatentSource, resolve_classes
from synthsod.synthesis.runs import backend_renderer, open_backend
from synthsod.synthesis.shards import write_png
from synthsod.workflow import run_rule

log = logging.getLogger("synthsod")


def main(smk):
    params, gen = smk.params.search, smk.wildcards.gen
    cfg = from_section(SearchConfig, params, where="directions.search", ignore=("classes", "truncation"))
    candidates = load_candidates(smk.input.candidates)
    with gpu_lease() as lease:
        device = "cpu" if lease.device == "cpu" else "cuda:0"
        weights = list(smk.input.weights)  # the weights directory's files; none for the package cache
        backend = open_backend(smk.params.generator, str(Path(weights[0]).parent) if weights else None, device)
        conditional = backend.num_classes is not None
        truncation = params["truncation"] if conditional else None
        classes = resolve_classes(params["classes"], backend.num_classes) if conditional else None
        z, ids = LatentSource(cfg.seed, backend.z_dim, truncation, classes).draw(range(cfg.samples))
        render = backend_renderer(backend, truncation)
        result = search_directions(render, z, ids, candidates, cfg)
        figures = shortlist_figures(render, z, ids, candidates, result, cfg)
    ranking = result.ranking
    log.info(
        "%s: %d candidate directions, %d discarded (>= %.0f%% of pixels in one class)\n%s",
        gen,
        len(ranking),
        int(ranking["discarded"].sum()),
        100 * cfg.discard_share,
        ranking.to_string(index=False),
    )
    if result.chosen is None:
        raise SynthsodError(
            f"{gen}: every candidate direction puts >= {cfg.discard_share:.0%} of the pixels in one "
            "class, so none segments; train the discovery longer or give other candidates"
        )
    out_dir = Path(smk.output.figures)
    out_dir.mkdir(parents=True, exist_ok=True)
    for rank, picture in figures.items():
        write_png(out_dir / f"rank-{rank:02d}.png", picture)
    ranked = ranking.dropna(subset=["rank"]).sort_values("rank")
    chosen = int(ranked["direction"].iloc[0])
    save_direction(smk.output.direction, result.chosen)
    write_ranking(smk.output.ranking, ranking)
    write_json_atomic(
        smk.output.summary,
        {
            "generator": gen,
            "candidates": str(smk.input.candidates),
            "chosen": chosen,
            "sign": result.sign,
            "brighter_share": result.brighter_share,
            "scale": cfg.scale,
            "ranked": [
                {"rank": int(r), "direction": int(k), **result.pairs[int(k)].to_dict()}
                for r, k in zip(ranked["rank"], ranked["direction"])
            ],
        },
    )
    return (
        f"{gen}: direction {chosen} chosen (sign {result.sign:+d}; its shift brightens "
        f"{100 * result.brighter_share:.0f}% of the pixels)"
    )


run_rule(snakemake, main)  # noqa: F821
