# Input functions and targets of rules/scenes.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def scene_targets():
    scenes = config["scenes"]
    return [
        *(
            expand("results/generators/{gen}/quality.json", gen=scene_generators())
            if scenes["quality"]["enabled"]
            else []
        ),
    ]
