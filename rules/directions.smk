# Latent directions for the direction-shift mask method (mask.direction of a run):
#   contrast  the built unsupervised direction (synthsod/directions/contrast.py)
#   search    Voynov & Babenko discovery (K directions, synthsod/directions/discovery.py), then E-BigBiGAN's
#             appendix B.2 search ranks them (synthsod/directions/search.py); rank 1 is the direction.
# BigBiGAN cannot be differentiated here: its candidates come from directions.search.candidates.


rule direction_contrast:
    input:
        weights=lambda w: generator_weight_files(w.gen),
    output:
        direction="results/directions/{gen}/contrast.npy",
    log:
        log_path("direction_contrast", "{gen}"),
    benchmark:
        benchmark_path("direction_contrast", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(torch_generators()),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        contrast=config["directions"]["contrast"],
        generator=lambda w: generator_params(w.gen),
    script:
        "../workflow_scripts/direction_contrast.py"


rule directions_discover:
    input:
        weights=lambda w: generator_weight_files(w.gen),
    output:
        directions="results/directions/{gen}/directions.pt",
        history="results/directions/{gen}/discover_log.csv",
    log:
        log_path("directions_discover", "{gen}"),
    benchmark:
        benchmark_path("directions_discover", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(torch_generators()),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        discover=config["directions"]["discover"],
        generator=lambda w: generator_params(w.gen),
    script:
        "../workflow_scripts/directions_discover.py"


rule directions_rank:
    input:
        weights=lambda w: search_weight_files(w.gen),
        candidates=lambda w: candidate_directions(w.gen),
    output:
        ranking="results/directions/{gen}/ranking.csv",
        direction="results/directions/{gen}/search.npy",
        summary="results/directions/{gen}/search.json",
        figures=report(
            directory("results/directions/{gen}/top"),
            patterns=["rank-{rank}.png"],
            caption="../report/directions.rst",
            category=REPORT_DIRECTIONS,
            labels={"generator": "{gen}", "rank": "{rank}"},
        ),
    log:
        log_path("directions_rank", "{gen}"),
    benchmark:
        benchmark_path("directions_rank", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(torch_generators()),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        search=without(config["directions"]["search"], "candidates", "generators"),
        generator=lambda w: generator_params(w.gen),
    script:
        "../workflow_scripts/directions_rank.py"


use rule directions_rank as directions_rank_bigbigan with:
    log:
        log_path("directions_rank_bigbigan", "{gen}"),
    benchmark:
        benchmark_path("directions_rank_bigbigan", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(bigbigan_generators()),
    conda:
        "../envs/tf.yaml"
