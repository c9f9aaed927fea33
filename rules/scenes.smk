# The scene world (synthsod/data/scenes.py): DUTS-layout splits with exact masks, and the check that a
# global threshold cannot segment it (results/scenes/baseline.json).


rule scene_split:
    output:
        images=directory("results/scenes/{split}/images"),
        masks=directory("results/scenes/{split}/masks"),
    log:
        log_path("scene_split", "{split}"),
    benchmark:
        benchmark_path("scene_split", "{split}")
    wildcard_constraints:
        split=_name_pattern(config["scenes"]["splits"]),
    conda:
        "../envs/data.yaml"
    params:
        world=without(config["scenes"], "splits", "baseline", "quality"),
        split=lambda w: config["scenes"]["splits"][w.split],
    script:
        "../workflow_scripts/scene_split.py"


rule scene_baseline:
    input:
        train=lambda w: f"results/data/{config['scenes']['baseline']['train']}/manifest.parquet",
        test=lambda w: f"results/data/{config['scenes']['baseline']['benchmark']}/manifest.parquet",
    output:
        "results/scenes/baseline.json",
    log:
        log_path("scene_baseline", "world"),
    benchmark:
        benchmark_path("scene_baseline", "world")
    conda:
        "../envs/torch.yaml"
    params:
        baseline=without(config["scenes"]["baseline"], "enabled"),
    script:
        "../workflow_scripts/scene_baseline.py"
