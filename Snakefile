# synthsod: synthetic salient-object-detection data from pretrained GANs.
# Run: snakemake --cores 8 --resources gpu=2        (see README.md)

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from synthsod.errors import SynthsodError
from synthsod.workflow import canonicalise_config, layer_config

min_version("9.27")


configfile: "config.yaml"


# an experiment file's `replace: [sections]` drops the demo's entries there (synthsod.workflow.layer_config)
try:
    layer_config(
        config,
        "config.yaml",
        workflow.config_settings.configfiles,
        workflow.config_settings.config,
    )
except SynthsodError as err:
    raise WorkflowError(f"config: {err}") from None


validate(config, "schemas/config.schema.yaml")


canonicalise_config(config)  # key-sorted params: reordering config.yaml re-runs nothing


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/inputs/directions.smk"
include: "rules/inputs/evaluation.smk"
include: "rules/inputs/fetch.smk"
include: "rules/inputs/generators.smk"
include: "rules/inputs/report.smk"
include: "rules/inputs/sampling.smk"
include: "rules/inputs/scenes.smk"
include: "rules/inputs/sod.smk"
include: "rules/inputs/sodgan.smk"
include: "rules/fetch.smk"
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
