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


def baseline_evaluations():
    """(baseline, benchmark) pairs: the untrained baselines on every benchmark."""
    return [(name, bench) for name in config["baselines"] for bench in config["benchmarks"]]


def sod_evaluations():
    """(training or baseline, benchmark) pairs the summary covers, refined predictions included."""
    trained = [(sod, bench) for sod in config["sod"] for bench in sod_benchmarks(sod)]
    return trained + refined_evaluations() + baseline_evaluations()


def evaluation_names():
    return list(dict.fromkeys(sod for sod, _ in sod_evaluations()))


def sod_targets():
    return ["results/eval/summary.csv"] if config["sod"] else []


def scorecard_file():
    return ["results/eval/scorecard.json"] if config["scorecard"]["enabled"] and config["sod"] else []


def oracle_runs():
    """Runs whose pairs the reference segmenter scores: those of scene generators, when it is enabled."""
    if not config["scenes"]["oracle"]["enabled"]:
        return []
    return [run for run in config["runs"] if run_generator(run)["model"] == SCENE]


def oracle_audit_inputs(wildcards):
    run = wildcards.run
    files = {
        "oracle": oracle_file(),
        "manifest": f"results/synthetic/{run}/manifest.json",
        "shards": run_shard_files(run),
    }
    calibration = calibration_file(wildcards)
    if calibration:
        files.update(threshold=calibration[0], candidates=calibration[0].replace(".json", ".parquet"))
    return files


def scorecard_inputs(wildcards):
    """Every figure the scorecard reads; each only where the config produces it."""
    gen = config["generator"]
    evaluations = sod_evaluations()
    files = {
        "metrics": [f"results/eval/{sod}/{bench}/metrics.json" for sod, bench in evaluations],
        "den": f"results/den/{gen}/train_metrics.json",
        "inversion": f"results/den/{gen}/inversion_metrics.json",
        "den_ablations": den_ablation_metrics(),
        "gmask": f"results/gmask/{gen}/train_metrics.json",
        "filter_reports": [f"results/synthetic/{run}/filter_report.json" for run in config["runs"]],
        "audits": [f"results/eval/oracle/{run}.json" for run in oracle_runs()],
    }
    if gen in scene_generators() and config["scenes"]["quality"]["enabled"]:
        files["quality"] = f"results/generators/{gen}/quality.json"
    if gen in searched_generators(config) and not config["directions"]["search"]["candidates"].get(gen):
        files["discovery"] = f"results/directions/{gen}/discover_log.csv"
    if gen in scene_generators() and config["scenes"]["oracle"]["enabled"]:
        files["inversion_audit"] = f"results/eval/inversion/{gen}.json"
    if oracle_runs():
        files["oracle"] = oracle_file()
        files["benchmarks"] = [f"results/data/{bench}/manifest.parquet" for bench in config["benchmarks"]]
    return files
