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
    return trained + refined_evaluations() + coop_refine_evaluations() + baseline_evaluations()


def evaluation_names():
    return list(dict.fromkeys(sod for sod, _ in sod_evaluations()))


def prediction_resize():
    """The resize of synthsod.sod.predict that sod_predict uses under evaluation.protocol - squashed to
    eval_size x eval_size (pysodmetrics), or the shorter side to eval_size, aspect kept (ebigbigan)."""
    return "shorter_side" if config["evaluation"]["protocol"] == "ebigbigan" else "square"


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
    pipeline = config["pipeline"]
    gen = PIPELINES[pipeline].generator
    evaluations = sod_evaluations()
    files = {
        "metrics": [f"results/eval/{sod}/{bench}/metrics.json" for sod, bench in evaluations],
        "den": stage_file(pipeline, "den", "train_metrics.json"),
        "inversion": stage_file(pipeline, "den", "inversion_metrics.json"),
        "den_ablations": den_ablation_metrics([pipeline]),
        "gmask": stage_file(pipeline, "gmask", "train_metrics.json"),
        "filter_reports": [f"results/synthetic/{run}/filter_report.json" for run in config["runs"]],
        "audits": [f"results/eval/oracle/{run}.json" for run in oracle_runs()],
    }
    if gen in scene_generators() and config["scenes"]["quality"]["enabled"]:
        files["quality"] = f"results/generators/{gen}/quality.json"
    if gen in searched_generators(config) and not config["directions"]["search"]["candidates"].get(gen):
        files["discovery"] = f"results/directions/{gen}/discover_log.csv"
    if gen in scene_generators() and config["scenes"]["oracle"]["enabled"]:
        files["inversion_audit"] = f"results/eval/inversion/{PIPELINES[pipeline].key('den')}.json"
    if oracle_runs():
        files["oracle"] = oracle_file()
        files["benchmarks"] = [f"results/data/{bench}/manifest.parquet" for bench in config["benchmarks"]]
    return files


def sweep_points(sweep):
    """The points of ``sweep`` as plain dicts (label, values, run, training, and whether the oracle audits the
    run and it has a pipeline's G_mask metrics, as sweep_inputs lists them): the sweep_table's params."""
    audited = set(oracle_runs())
    return [
        {
            "label": p.label,
            "values": p.values,
            "run": p.run,
            "training": p.training,
            "audit": p.run is not None and p.run in audited,
            "gmask": p.run is not None and bool(run_spec(p.run).get("pipeline")),
        }
        for p in SWEEPS[sweep]
    ]


def sweep_benchmarks(sweep):
    """(training, benchmark) of every point training's evaluation, in input order."""
    return [(p.training, bench) for p in SWEEPS[sweep] if p.training for bench in sod_benchmarks(p.training)]


def sweep_inputs(wildcards):
    """Per point: its training's metrics, its run's filter report and oracle audit, and the G_mask metrics of
    the run's pipeline, each where the config produces it."""
    points = sweep_points(wildcards.sweep)
    return {
        "metrics": [f"results/eval/{sod}/{bench}/metrics.json" for sod, bench in sweep_benchmarks(wildcards.sweep)],
        "reports": [f"results/synthetic/{p['run']}/filter_report.json" for p in points if p["run"]],
        "audits": [f"results/eval/oracle/{p['run']}.json" for p in points if p["audit"]],
        "gmask": [
            stage_file(run_spec(p["run"])["pipeline"], "gmask", "train_metrics.json") for p in points if p["gmask"]
        ],
    }
