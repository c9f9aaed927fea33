"""The HTML report of the small demo run: `snakemake --report`, its sections, and a real browser opening it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DemoRun

pytestmark = pytest.mark.workflow

RUNS = ("sodgan", "ebigbigan")
DATASET_FIGURES = ("centre_bias", "object_size", "colour_contrast", "classes")
# category -> the results it must hold (the demo searches the scene generator's directions)
SECTIONS = {
    "Synthetic samples": {f"results/report/runs/{run}/samples.png" for run in RUNS},
    "Filters": {"results/report/filter_counts.png", *(f"results/report/runs/{run}/rejected.png" for run in RUNS)},
    "Dataset statistics": {f"results/report/dataset/{name}.png" for name in DATASET_FIGURES},
    "Training": {"results/report/training_curves.png"},
    "Benchmark": {"results/eval/pr_curves.png", "results/eval/summary.html"},
    "Directions": None,  # the ranked pictures: checked by pattern below
}
BROWSER_TIMEOUT_S = 120


def _script_value(page: str, name: str):
    """The JSON a report assigns in ``var <name> = {...};``."""
    match = re.search(rf"\bvar {name} = (\{{.*?\}});\s*</script>", page, re.S)
    assert match, f"the report defines no `var {name}`"
    return json.loads(match[1])


@pytest.fixture(scope="module")
def report_html(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = demo_run.workdir.run("--report", str(out))
    assert result.returncode == 0 and out.is_file(), result.describe()
    return out


def test_report_holds_every_section_with_its_figures(report_html: Path, demo_run: DemoRun) -> None:
    page = report_html.read_text()
    categories = _script_value(page, "categories")
    assert set(categories) == set(SECTIONS)
    files = {category: {f for sub in subs.values() for f in sub} for category, subs in categories.items()}
    for category, expected in SECTIONS.items():
        if expected is not None:
            assert files[category] == expected, category
    ranked = sorted(files["Directions"])
    gen = demo_run.workdir.config["generator"]
    assert ranked and all(re.fullmatch(rf"results/directions/{gen}/top/rank-\d\d\.png", f) for f in ranked)
    results = _script_value(page, "results")
    for path in set().union(*files.values()):
        entry = results[path]
        assert entry["caption"].strip(), f"{path} has no caption"
        data = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
        if path.endswith(".png"):
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.std() > 0, path
        else:
            # the scorecard's two tables (its targets, more figures), the metrics and the ratio tables
            assert data.count(b"<table") == 4, path
            assert b"Scorecard" in data, path
    # captions are rendered with the job's wildcards
    assert "run <strong>sodgan</strong>" in results["results/report/runs/sodgan/samples.png"]["caption"]


def _chromium() -> str | None:
    return next(
        (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
    )


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root; the virtual time budget lets the report's JavaScript finish rendering
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=15000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)


def test_report_opens_in_headless_chromium(report_html: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no Chromium here (Debian package `chromium`, which .ci/run installs as root): "
            "the report is not opened in a browser"
        )
    dom = _headless(browser, "--dump-dom", report_html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = re.sub(r"<script\b.*?</script>", "", dom.stdout, flags=re.S)  # what the page built, not its code
    menu = re.findall(r">\s*([^<>]+?)\s*<", rendered)
    for section in ["Workflow", "Statistics", "Results", *SECTIONS]:
        assert section in menu, f"the rendered report has no menu entry {section!r}"
    assert "synthsod turns a pretrained GAN" in rendered  # the workflow description, rendered from report/workflow.rst

    shot = tmp_path / "report.png"
    result = _headless(browser, "--window-size=1400,900", f"--screenshot={shot}", report_html.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (900, 1400)
    # the navigation column on the left: its 11 lines of menu text (its background shade varies from run
    # to run as the page's styles settle) put ink on well over 100 pixel rows; an unrendered page has one
    # "Loading" line at most
    ink_rows = (cv2.cvtColor(image[:, :250], cv2.COLOR_BGR2GRAY) < 100).any(axis=1)
    assert ink_rows.sum() > 100
