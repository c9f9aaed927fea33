# Generators the workflow builds in from_pretrained layout, so that every stage loads them through the
# same code path as the released BigGAN weights: the random-init tiny generator (from a seed) and the
# scene generator (trained on the scene world when its weights are null; shipped otherwise); the scene
# generators' quality evaluation; and BigBiGAN's encoder embeddings of a dataset or of an image-only
# source (bigbigan.sources: its inversion).


rule tiny_generator:
    output:
        weights="results/generators/{gen}/pytorch_model.bin",
        config="results/generators/{gen}/config.json",
    log:
        log_path("tiny_generator", "{gen}"),
    benchmark:
        benchmark_path("tiny_generator", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(built_generators(TINY)),
    conda:
        "../envs/torch.yaml"
    params:
        generator=lambda w: generator_params(w.gen),
    script:
        "../workflow_scripts/tiny_generator.py"


rule generator_train:
    output:
        weights="results/generators/{gen}/pytorch_model.bin",
        config="results/generators/{gen}/config.json",
        discriminator="results/generators/{gen}/discriminator.pt",
        train_log="results/generators/{gen}/train_log.csv",
    log:
        log_path("generator_train", "{gen}"),
    benchmark:
        benchmark_path("generator_train", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(built_generators(SCENE)),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        train=lambda w: config["generators"][w.gen]["train"],
        world=scene_world(),
        checkpoint_dir=lambda w: f"results/generators/{w.gen}/train",
    script:
        "../workflow_scripts/generator_train.py"


rule generator_quality:
    input:
        weights=lambda w: generator_weight_files(w.gen),
    output:
        quality="results/generators/{gen}/quality.json",
        samples="results/generators/{gen}/samples.png",
    log:
        log_path("generator_quality", "{gen}"),
    benchmark:
        benchmark_path("generator_quality", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(scene_generators()),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        generator=lambda w: generator_params(w.gen),
        quality=without(config["scenes"]["quality"], "enabled"),
        world=scene_world(),
    script:
        "../workflow_scripts/generator_quality.py"


rule bigbigan_embed:
    input:
        unpack(bigbigan_embed_inputs),
    output:
        embeddings="results/bigbigan/{dataset}/embeddings.parquet",
    log:
        log_path("bigbigan_embed", "{dataset}"),
    benchmark:
        benchmark_path("bigbigan_embed", "{dataset}")
    wildcard_constraints:
        dataset=_name_pattern([*config["datasets"], *config["bigbigan"]["sources"]]),
    conda:
        "../envs/tf.yaml"
    threads: lambda w: bigbigan_embed_threads(w.dataset)
    resources:
        gpu=1,
    params:
        generator=lambda w: generator_params(bigbigan_generator()),
        embed=lambda w: bigbigan_embed_params(w.dataset),
    script:
        "../workflow_scripts/bigbigan_embed.py"
