# Downloads (config downloads:, fetch:): one rule per download, fetch_<name>, whose outputs are its target
# paths, so a job runs only where a rule needs a missing one (synthsod/data/fetch.py: resumable, checksummed,
# unpacked safely and atomically). Local: compute nodes of a cluster often cannot reach the internet.


for _name in fetched_downloads():

    rule:
        name:
            fetching.rule_name(_name)
        output:
            targets=fetch_targets(_name),
            inside=fetch_inside_files(_name),
        log:
            log_path("fetch", _name),
        benchmark:
            benchmark_path("fetch", _name)
        localrule: True
        conda:
            "../envs/data.yaml"
        params:
            name=_name,
            download=config["downloads"][_name],
            fetch=without(config["fetch"], "enabled"),
        script:
            "../workflow_scripts/fetch.py"
