"""Rule oracle_train: train the scene world's reference segmenter (resumable) and report its test IoU."""

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.core.settings import from_section
from synthsod.evaluation.oracle import OracleConfig, save_oracle, train_oracle
from synthsod.workflow import checkpoint_path, run_rule


def main(smk):
    world = smk.params.world
    config = from_section(OracleConfig, smk.params.train, where="scenes.oracle.train")
    checkpoint = checkpoint_path(smk.output.oracle, smk.params)
    with gpu_lease() as lease:
        model = train_oracle(world["seed"], world["size"], config, checkpoint, device=torch_device(lease))
    save_oracle(smk.output.oracle, model, config)
    checkpoint.unlink(missing_ok=True)
    return f"reference segmenter: {config.recipe['steps']} steps on {config.scenes} scenes ({lease.device})"


run_rule(snakemake, main)  # noqa: F821
