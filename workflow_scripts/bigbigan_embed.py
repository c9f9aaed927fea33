"""Rule bigbigan_embed: encode a prepared dataset's images with the BigBiGAN encoder (envs/tf.yaml)."""

import pandas as pd

from synthsod.core.io import atomic_path
from synthsod.generators.bigbigan import BigBiGAN, embed_dataset
from synthsod.workflow import run_rule


def main(smk):
    batch_size = smk.params.embed["batch_size"]
    model = BigBiGAN(smk.params.generator["weights"], batch_size=batch_size)
    embeddings = embed_dataset(model, pd.read_parquet(smk.input.manifest), batch_size=batch_size)
    with atomic_path(smk.output.embeddings) as tmp:
        embeddings.to_parquet(tmp, engine="pyarrow", index=False)
    return (
        f"{len(embeddings)} images of {smk.input.manifest} encoded to {model.z_dim}-d BigBiGAN z_mean "
        f"(module {model.module_dir})"
    )


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
