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
