# Input functions and targets of rules/fetch.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def fetched_downloads():
    """The downloads that get a fetch rule: all of downloads: when fetch.enabled, none offline."""
    return config["downloads"] if config["fetch"]["enabled"] else {}


def fetch_targets(name):
    """Download ``name``'s targets: its file, or its folders (directory outputs)."""
    spec = config["downloads"][name]
    paths = fetching.targets(spec)
    return [directory(path) for path in paths] if fetching.is_archive(spec) else paths


def fetch_inside_files(name):
    """Files inside download ``name``'s folders that rules read (a generator's weights or BigBiGAN module):
    outputs of its fetch rule too, so those rules depend on it; fetch checks that the archive has them."""
    targets = fetching.targets(config["downloads"][name])
    return [path for path, owner in DOWNLOAD_PATHS.items() if owner == name and path not in targets]


def fetched_inputs(*paths):
    """The paths among ``paths`` that a download provides (spelled as its fetch job writes them), as inputs of
    the rules that read them (user files that are not otherwise inputs), so the fetch job runs first. [] when
    no download provides any (the demo's); offline (fetch.enabled: false) they are plain files on disk."""
    return [os.path.normpath(p) for p in paths if p is not None and os.path.normpath(p) in DOWNLOAD_PATHS]
