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
    from synthsod.prepare import SKIPPED, check_pairs, format_problems, summarise

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
        "--threads", type=_positive_int, default=1, metavar="N",
        help="decode N files at once (default: 1)",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help="also fail on converted images and binarised masks",
    )
    parser.set_defaults(run=_run_check_data)


# --- wiring ----------------------------------------------------------------------------------

_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_check_data]


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
