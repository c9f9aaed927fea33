# The tiny demo generator, built from a seed in from_pretrained layout so that every stage loads it
# through the same code path as the released BigGAN weights.


rule tiny_generator:
    output:
        weights="results/generators/{gen}/pytorch_model.bin",
        config="results/generators/{gen}/config.json",
    params:
        generator=lambda w: config["generators"][w.gen],
    wildcard_constraints:
        gen=_name_pattern(built_generators()),
    log:
        log_path("tiny_generator", "{gen}"),
    benchmark:
        benchmark_path("tiny_generator", "{gen}")
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/tiny_generator.py"
