# Input functions and targets of rules/evaluation.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def refined_evaluations():
    """(base+coop, benchmark) pairs: a training's predictions refined by a coop model's EBM."""
    return [
        (f"{base}+{coop}", bench)
        for base, spec in config["sod"].items()
        for coop in spec["refine_with"]
        for bench in sod_benchmarks(base)
    ]


def sod_evaluations():
    """(training, benchmark) pairs the summary covers, refined predictions included."""
    return [(sod, bench) for sod in config["sod"] for bench in sod_benchmarks(sod)] + refined_evaluations()


def evaluation_names():
    return list(dict.fromkeys(sod for sod, _ in sod_evaluations()))


def sod_targets():
    return ["results/eval/summary.csv"] if config["sod"] else []
