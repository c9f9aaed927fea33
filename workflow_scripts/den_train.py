"""Rule den_train: train the diffusion embedding network on the real training set; report its
reconstruction error before and after training."""

import torch

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.core.io import write_json_atomic
from synthsod.core.settings import from_section
from synthsod.data.datasets import ManifestDataset
from synthsod.sodgan.den import DENConfig, build_den, fit_den, invert, save_den
from synthsod.workflow import checkpoint_path, load_generator, run_rule

EVAL_IMAGES = 64  # the first images of the manifest measure the error before and after training


def main(smk):
    spec = smk.params.den
    cfg = from_section(DENConfig, spec, where="den", ignore=("truncation", "seed", "invert"))
    truncation, seed = spec["truncation"], spec["seed"]
    checkpoint = checkpoint_path(smk.output.model, smk.params)
    with gpu_lease() as lease:
        device = torch_device(lease)
        generator = load_generator(smk, device)
        images = ManifestDataset(smk.input.manifest, generator.resolution)
        probe = torch.stack([images[i]["image"] for i in range(min(EVAL_IMAGES, len(images)))])

        def encoder_error(den):
            return float(invert(den, generator, probe, truncation=truncation).encoder_error.mean())

        before = encoder_error(build_den(generator, cfg, truncation, seed=seed, device=device))
        den, metrics = fit_den(
            generator, images, cfg, truncation=truncation, device=device, checkpoint_path=checkpoint, seed=seed
        )
        after = encoder_error(den)
    save_den(smk.output.model, den, cfg, truncation)
    checkpoint.unlink(missing_ok=True)
    write_json_atomic(
        smk.output.metrics,
        {
            "mode": cfg.mode,
            "train_images": len(images),
            "eval_images": len(probe),
            "recon_error_untrained": before,
            "recon_error_trained": after,
            "error_ratio": after / before,
            "training": metrics,
            "device": lease.device,
        },
    )
    return (
        f"DEN ({cfg.mode}): reconstruction error {before:.4f} untrained -> {after:.4f} trained on {len(probe)} images"
    )


run_rule(snakemake, main)  # noqa: F821
