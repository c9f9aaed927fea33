# Input functions and targets of rules/generators.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def bigbigan_module_file(name):
    """The file a BigBiGAN generator's rules depend on: the SavedModel in its weights directory."""
    return f"{config['generators'][name]['weights']}/saved_model.pb"


def bigbigan_generator():
    """The BigBiGAN generator that embeds datasets (results/bigbigan/ holds one module's embeddings)."""
    names = [name for name, spec in config["generators"].items() if spec["model"] == BIGBIGAN]
    if len(names) != 1:
        raise WorkflowError(f"BigBiGAN embeddings need exactly one generator with model: bigbigan, found {names}")
    return names[0]


def bigbigan_source(name):
    """The image-only source ``name`` of bigbigan.sources, or None for a dataset (a prepared manifest)."""
    source = config["bigbigan"]["sources"].get(name)
    if source is not None and name in config["datasets"]:
        raise WorkflowError(f"bigbigan.sources.{name}: '{name}' is also a dataset under datasets:; rename one")
    return source


def bigbigan_embed_inputs(wildcards):
    """A dataset's prepared manifest, or a source's image folder; and the module."""
    files = {"module": bigbigan_module_file(bigbigan_generator())}
    source = bigbigan_source(wildcards.dataset)
    if source is None:
        return {"manifest": f"results/data/{wildcards.dataset}/manifest.parquet", **files}
    if not Path(source["images"]).is_dir():
        raise WorkflowError(
            f"bigbigan.sources.{wildcards.dataset}.images: folder {source['images']} does not exist "
            "(put the images there, e.g. ImageNet's train folder, or set the path)"
        )
    return {"images": source["images"], **files}


def bigbigan_embed_params(name):
    """What bigbigan_embed reads: the batch size, plus a source's settings (a dataset's params stay as they were
    before sources existed, so its embeddings are not re-made)."""
    params = without(config["bigbigan"], "sources")
    source = bigbigan_source(name)
    return params if source is None else {**params, "source": source}


def bigbigan_embed_threads(name):
    source = bigbigan_source(name)
    return 1 if source is None else source["threads"]
