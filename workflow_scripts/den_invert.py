"""Rule den_invert: invert the training images (all, or the first ``images`` by id) into (z⁺, class) with the
trained DEN (+ refinement)."""

import numpy as np
import pandas as pd

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.core.io import write_json_atomic
from synthsod.data.datasets import ManifestDataset
from synthsod.generators.latent_table import write_latent_table
from synthsod.sodgan.den import invert, load_den
from synthsod.workflow import load_generator, run_rule


def main(smk):
    spec = smk.params.invert
    with gpu_lease() as lease:
        device = torch_device(lease)
        generator = load_generator(smk, device)
        den = load_den(smk.input.model, generator, device)
        manifest = pd.read_parquet(smk.input.manifest).sort_values("id", ignore_index=True)
        if spec["images"] is not None:
            manifest = manifest.head(spec["images"])
        result = invert(
            den,
            generator,
            ManifestDataset(manifest, generator.resolution),
            truncation=den.truncation,
            batch_size=spec["batch_size"],
            refine_steps=spec["refine_steps"],
            refine_lr=spec["refine_lr"],
            refine_lowpass=spec["refine_lowpass"],
        )
    write_latent_table(
        smk.output.latents,
        manifest["id"],
        result.z,
        image=manifest["image"],
        mask=manifest["mask"],
        **{"class": result.class_id},
        truncation=np.full(len(manifest), den.truncation),
        recon_error=result.recon_error,
        encoder_error=result.encoder_error,
    )
    summary = {
        "images": len(manifest),
        "truncation": den.truncation,
        "refine_steps": spec["refine_steps"],
        "recon_error_encoder": float(result.encoder_error.mean()),
        "recon_error_refined": float(result.recon_error.mean()),
        "classes": int(len(np.unique(result.class_id))),
    }
    write_json_atomic(smk.output.metrics, summary)
    return f"DEN inversion: {summary}"


run_rule(snakemake, main)  # noqa: F821
