# Input functions and targets of rules/directions.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def torch_generators():
    return [name for name, spec in config["generators"].items() if spec["model"] != BIGBIGAN]


def bigbigan_generators():
    return [name for name, spec in config["generators"].items() if spec["model"] == BIGBIGAN]


def direction_file(gen, direction):
    """A run's mask.direction as a file: the built ones live under results/directions/{gen}/."""
    return f"results/directions/{gen}/{direction}.npy" if direction in (CONTRAST, SEARCH) else direction


def candidate_directions(gen):
    """The directions the search ranks: a user file (BigBiGAN's must be), else the discovered ones."""
    return config["directions"]["search"]["candidates"].get(gen, f"results/directions/{gen}/directions.pt")


def search_weight_files(gen):
    return [bigbigan_module_file(gen)] if gen in bigbigan_generators() else generator_weight_files(gen)


def direction_targets():
    return [f"results/directions/{gen}/ranking.csv" for gen in searched_generators(config)]
