# The demo world: DUTS-layout folders of tiny-generator samples with masks from a fixed rule.


rule demo_split:
    input:
        weights=generator_weight_files(config["demo"]["generator"]),
    output:
        images=directory("results/demo/{split}/images"),
        masks=directory("results/demo/{split}/masks"),
    log:
        log_path("demo_split", "{split}"),
    benchmark:
        benchmark_path("demo_split", "{split}")
    wildcard_constraints:
        split=_name_pattern(config["demo"]["splits"]),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        demo={k: v for k, v in config["demo"].items() if k != "splits"},
        split=lambda w: config["demo"]["splits"][w.split],
        generator=config["generators"][config["demo"]["generator"]],
    script:
        "../workflow_scripts/demo_split.py"
