"""Rule directions_discover: Voynov & Babenko's unsupervised direction discovery on a PyTorch generator
(resumable: a killed job continues from its checkpoint)."""

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.core.settings import from_section
from synthsod.directions.discovery import DiscoveryConfig, discover_directions, save_directions
from synthsod.generators.latents import resolve_classes
from synthsod.workflow import checkpoint_path, load_generator, run_rule


def main(smk):
    params, gen = smk.params.discover, smk.wildcards.gen
    cfg = from_section(DiscoveryConfig, params, where="directions.discover", ignore=("classes",))
    checkpoint = checkpoint_path(smk.output.directions, smk.params)
    with gpu_lease() as lease:
        generator = load_generator(smk, torch_device(lease))
        classes = resolve_classes(params["classes"], generator.num_classes)
        result = discover_directions(generator, cfg, classes, checkpoint_path=checkpoint, log_path=smk.output.history)
    save_directions(smk.output.directions, result, gen)
    checkpoint.unlink(missing_ok=True)
    final = result.history[-1]
    return (
        f"{gen}: {cfg.directions} directions after {cfg.steps} steps (reconstructor accuracy "
        f"{final['accuracy']:.2f}, shift error {final['shift_error']:.2f})"
    )


run_rule(snakemake, main)  # noqa: F821
