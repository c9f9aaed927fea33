"""The ``synthsod`` console command.

Each subcommand is one ``_add_*`` function that declares its arguments and sets ``run`` to a
handler returning the exit code; list it in ``_SUBCOMMANDS``. Handlers import their heavy
modules themselves, so ``synthsod --help`` stays fast.

Exit codes: 0 success, 1 the command ran and found problems, 2 usage or input error (a
:class:`~synthsod.errors.SynthsodError`, printed as one ``synthsod: error: ...`` message).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from synthsod import __version__
from synthsod.errors import SynthsodError

Handler = Callable[[argparse.Namespace], int]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- check-data ------------------------------------------------------------------------------


def _run_check_data(args: argparse.Namespace) -> int:
    from synthsod.data.prepare import SKIPPED, check_pairs, format_problems, summarise

    manifest, problems = check_pairs(args.images_dir, args.masks_dir, threads=args.threads)
    summary = summarise(args.images_dir, manifest, problems)
    print(summary.line())
    if problems:
        print()
        print(format_problems(problems))
    failed = bool(problems) if args.strict else any(p.action == SKIPPED for p in problems)
    return 1 if failed else 0


def _add_check_data(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-data",
        help="check an images/masks dataset folder pair and list bad files",
        description=(
            "Check every image/mask pair (matched by file stem) the way the workflow's prepare "
            "step does, print a summary and a table of problems. Exit code 1 when a pair would "
            "be skipped (with --strict: when there is any problem), else 0. Writes nothing."
        ),
    )
    parser.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of images")
    parser.add_argument("masks_dir", metavar="MASKS_DIR", help="folder of ground-truth masks")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="decode N files at once (default: 1)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also fail on converted images and binarised masks",
    )
    parser.set_defaults(run=_run_check_data)


# --- shards ----------------------------------------------------------------------------------


def _run_shards_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthsod.synthesis.shards import verify_run

    if not Path(args.run_dir).is_dir():
        raise SynthsodError(f"{args.run_dir}: no such directory")
    try:
        summary = verify_run(args.run_dir)
    except SynthsodError as exc:  # the run exists but fails a check: a finding, not a usage error
        print(f"synthsod: verify failed: {exc}", file=sys.stderr)
        return 1
    print(f"{args.run_dir}: ok, {summary['shards']} shards, {summary['rows']} rows verified")
    return 0


def _run_shards_preview(args: argparse.Namespace) -> int:
    from synthsod.synthesis.shards import preview_grid

    count = preview_grid(args.run_dir, args.out, n=args.n)
    print(f"wrote {args.out} ({count} samples)")
    return 0


def _add_shards(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "shards",
        help="verify or preview a run's Parquet shards",
        description="Work with a run directory of Parquet shards and its manifest.json.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="check shards against manifest.json",
        description=(
            "Check every shard listed in DIR/manifest.json: present, sha256, row count, schema, "
            "unique ids, and that every image and mask decodes. Exit code 1 on the first "
            "problem (printed with the file and reason), else 0. Writes nothing."
        ),
    )
    verify.add_argument("run_dir", metavar="DIR", help="run directory holding manifest.json")
    verify.set_defaults(run=_run_shards_verify)
    preview = actions.add_parser(
        "preview",
        help="write a PNG grid of the first samples",
        description="Write a PNG grid of the first N samples: each image above its mask overlay.",
    )
    preview.add_argument("run_dir", metavar="DIR", help="run directory holding manifest.json")
    preview.add_argument("--out", required=True, metavar="PNG", help="grid image to write")
    preview.add_argument("--n", type=_positive_int, default=16, metavar="N", help="samples to show (default: 16)")
    preview.set_defaults(run=_run_shards_preview)


# --- evaluate --------------------------------------------------------------------------------


def _run_evaluate(args: argparse.Namespace) -> int:
    from synthsod.core.io import write_json_atomic
    from synthsod.evaluation.evaluate import evaluate_folders

    try:
        result = evaluate_folders(args.pred_dir, args.gt_dir, skip_bad=args.skip_bad)
    except SynthsodError as exc:  # problems with the files: a finding, not a usage error
        print(f"synthsod: evaluate failed: {exc}", file=sys.stderr)
        return 1
    for problem in result.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    print(
        f"{result.evaluated} images ({result.resized} predictions resized to their ground truth, "
        f"{len(result.problems)} skipped)"
    )
    for name, value in result.metrics.items():
        print(f"{name:>11s}  {value:.4f}")
    if args.out:
        write_json_atomic(
            args.out,
            {
                "metrics": result.metrics,
                "evaluated": result.evaluated,
                "resized": result.resized,
                "skipped": result.problems,
            },
        )
    return 0


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="SOD metrics of a folder of saliency maps against ground-truth masks",
        description="Evaluate saliency maps (PRED_DIR) against masks (GT_DIR), paired by file stem, with the "
        "protocol of synthsod.evaluation.metrics. Exit status 1 when files are missing or corrupt "
        "(unless --skip-bad), 2 on usage errors.",
    )
    parser.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predicted saliency maps")
    parser.add_argument("gt_dir", metavar="GT_DIR", help="folder of ground-truth masks")
    parser.add_argument("--out", metavar="JSON", help="also write the metrics to this file")
    parser.add_argument("--skip-bad", action="store_true", help="evaluate the rest; list what was skipped")
    parser.set_defaults(run=_run_evaluate)


# --- wiring ----------------------------------------------------------------------------------

_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_check_data, _add_shards, _add_evaluate]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthsod",
        description="Synthetic salient-object-detection datasets from pretrained GANs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors; argparse already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler: Handler = args.run
    try:
        return handler(args)
    except SynthsodError as exc:
        print(f"synthsod: error: {exc}", file=sys.stderr)
        return 2
