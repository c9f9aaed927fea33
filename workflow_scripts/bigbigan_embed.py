"""Rule bigbigan_embed: encode a prepared dataset's images, or an image-only source folder's
(bigbigan.sources), with the BigBiGAN encoder (envs/tf.yaml)."""

import numpy as np
import pandas as pd

from synthsod.generators.bigbigan import BigBiGAN, embed_dataset, embed_folder
from synthsod.generators.latent_table import write_latent_table
from synthsod.workflow import run_rule


def main(smk):
    batch_size = smk.params.embed["batch_size"]
    source = smk.params.embed.get("source")
    model = BigBiGAN(smk.params.generator["weights"], batch_size=batch_size)
    if source is None:
        embeddings = embed_dataset(model, pd.read_parquet(smk.input.manifest), batch_size=batch_size)
        origin, skipped = smk.input.manifest, []
    else:
        embeddings, skipped = embed_folder(
            model,
            smk.input.images,
            limit=source["limit"],
            max_bad_fraction=source["max_bad_fraction"],
            batch_size=batch_size,
            threads=smk.threads,
            name=f"bigbigan.sources.{smk.wildcards.dataset}",
        )
        origin = smk.input.images
    write_latent_table(smk.output.embeddings, embeddings["id"], np.stack(embeddings["z"].to_numpy()))
    return (
        f"{len(embeddings)} images of {origin} encoded to {model.z_dim}-d BigBiGAN z_mean "
        f"(module {model.module_dir})" + (f", {len(skipped)} unreadable skipped" if skipped else "")
    )


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
