"""Rule bigbigan_embed: encode a prepared dataset's images with the BigBiGAN encoder (envs/tf.yaml)."""

import numpy as np
import pandas as pd

from synthsod.generators.bigbigan import BigBiGAN, embed_dataset
from synthsod.generators.latent_table import write_latent_table
from synthsod.workflow import run_rule


def main(smk):
    batch_size = smk.params.embed["batch_size"]
    model = BigBiGAN(smk.params.generator["weights"], batch_size=batch_size)
    embeddings = embed_dataset(model, pd.read_parquet(smk.input.manifest), batch_size=batch_size)
    write_latent_table(smk.output.embeddings, embeddings["id"], np.stack(embeddings["z"].to_numpy()))
    return (
        f"{len(embeddings)} images of {smk.input.manifest} encoded to {model.z_dim}-d BigBiGAN z_mean "
        f"(module {model.module_dir})"
    )


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
