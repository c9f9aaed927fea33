# The scene world (synthsod/data/scenes.py): DUTS-layout splits with exact masks (the demo's real data), and
# the reference segmenter that scores generated images against the world's ground truth.


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
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/data.yaml"
    params:
        world=scene_world("jpeg_quality"),
        split=lambda w: config["scenes"]["splits"][w.split],
    script:
        "../workflow_scripts/scene_split.py"


rule oracle_train:
    output:
        oracle=ORACLE_BUILT,
    log:
        log_path("oracle_train", "oracle"),
    benchmark:
        benchmark_path("oracle_train", "oracle")
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        train=config["scenes"]["oracle"]["train"],
        world=scene_world(),
    script:
        "../workflow_scripts/oracle_train.py"
