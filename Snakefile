# synthsod: synthetic salient-object-detection data from pretrained GANs.
# Run: snakemake --cores 8 --resources gpu=2        (see README.md)

from snakemake.utils import min_version, validate

from synthsod.workflow import canonicalise_config

min_version("9.27")


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


canonicalise_config(config)  # key-sorted params: reordering config.yaml re-runs nothing


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/inputs/directions.smk"
include: "rules/inputs/evaluation.smk"
include: "rules/inputs/generators.smk"
include: "rules/inputs/report.smk"
include: "rules/inputs/sampling.smk"
include: "rules/inputs/scenes.smk"
include: "rules/inputs/sod.smk"
include: "rules/inputs/sodgan.smk"
include: "rules/generators.smk"
include: "rules/scenes.smk"
include: "rules/data.smk"
include: "rules/sodgan.smk"
include: "rules/directions.smk"
include: "rules/sampling.smk"
include: "rules/sod.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        prepared_manifests(),
        scene_targets(),
        sodgan_targets(),
        direction_targets(),
        sampling_targets(),
        sod_targets(),
        scorecard_file(),
        report_targets(),
