"""Tests for the `synthsod` console command: exit codes, printed summary and table, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthsod.cli import main

SIZE = 16


def save_pair(root: Path, stem: str, image_mode: str = "RGB", mask: bool = True) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (SIZE, SIZE), (30, 120, 200)).convert(image_mode).save(root / "images" / f"{stem}.png")
    if mask:
        arr = np.zeros((SIZE, SIZE), np.uint8)
        arr[:4] = 255
        Image.fromarray(arr, "L").save(root / "masks" / f"{stem}.png")


def dirs(root: Path) -> list[str]:
    return [str(root / "images"), str(root / "masks")]


def test_clean_dataset_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_pair(tmp_path, "a")
    save_pair(tmp_path, "b")
    assert main(["check-data", *dirs(tmp_path), "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 pairs found, 2 kept, 0 skipped, 0 converted, 0 binarised" in out
    assert "action" not in out  # no problem table when there is nothing to report


def test_skipped_pair_exits_1_and_prints_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_pair(tmp_path, "a")
    save_pair(tmp_path, "b", image_mode="L")
    save_pair(tmp_path, "c", mask=False)
    assert main(["check-data", *dirs(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "3 pairs found, 2 kept, 1 skipped, 1 converted, 0 binarised" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("action"))
    assert header.split() == ["action", "file", "reason"]
    skipped = next(line for line in lines if line.startswith("skipped"))
    assert skipped.split(None, 2) == ["skipped", str(tmp_path / "images" / "c.png"), "image has no mask"]
    assert any(line.startswith("converted") and "b.png" in line for line in lines)


def test_conversion_only_fails_with_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_pair(tmp_path, "a", image_mode="RGBA")
    assert main(["check-data", *dirs(tmp_path)]) == 0
    assert "converted" in capsys.readouterr().out
    assert main(["check-data", *dirs(tmp_path), "--strict"]) == 1


def test_user_error_exits_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_pair(tmp_path, "a")
    missing = str(tmp_path / "no_such_masks")
    assert main(["check-data", str(tmp_path / "images"), missing]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("synthsod: error: ")
    assert missing in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.parametrize(
    "argv", [[], ["no-such-command"], ["check-data", "only_one_dir"], ["check-data", "a", "b", "--threads", "0"]]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: synthsod" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-data", "--help"]) == 0
    assert "--strict" in capsys.readouterr().out


def console_command() -> list[str]:
    """The installed ``synthsod`` script beside this interpreter, else ``python -m synthsod``."""
    script = Path(sys.executable).parent / "synthsod"
    return [str(script)] if script.exists() else [sys.executable, "-m", "synthsod"]


@pytest.mark.parametrize(
    "command", [console_command(), [sys.executable, "-m", "synthsod"]], ids=["console-script", "python-m"]
)
def test_subprocess(tmp_path: Path, command: list[str]) -> None:
    save_pair(tmp_path, "a")
    save_pair(tmp_path, "b", mask=False)
    done = subprocess.run([*command, "check-data", *dirs(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "2 pairs found, 1 kept, 1 skipped" in done.stdout
    assert "image has no mask" in done.stdout

    done = subprocess.run(
        [*command, "check-data", str(tmp_path / "nope"), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.startswith("synthsod: error: ") and "Traceback" not in done.stderr
