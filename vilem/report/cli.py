"""``vilem leaderboard`` and ``vilem report``: parse flags here, call the library with plain
values."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vilem.errors import DataError
from vilem.io import check_writable

_SHOWN_PROBLEMS = 5


def _warn_problems(problems: list) -> None:
    """Tell the user, on stderr, which files were skipped (the first few) and how many."""
    if not problems:
        return
    print(f"vilem: skipped {len(problems)} file(s) that are not readable results:", file=sys.stderr)
    for p in problems[:_SHOWN_PROBLEMS]:
        print(f"  {p}", file=sys.stderr)
    if len(problems) > _SHOWN_PROBLEMS:
        print(f"  ... and {len(problems) - _SHOWN_PROBLEMS} more", file=sys.stderr)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from vilem.io import atomic_write_text
    from vilem.report.tables import check_baseline, collect, leaderboard

    if args.out:
        check_writable(args.out, "file", "--out")
    records, problems = collect(args.results_dir)
    _warn_problems(problems)
    if not records:
        raise DataError(f"no vilem result files found under {args.results_dir}")
    check_baseline(records, args.baseline)
    text = leaderboard(
        records, task=args.task, dataset=args.dataset, baseline=args.baseline, fmt=args.format
    )
    if args.out:
        atomic_write_text(args.out, text)
        print(f"leaderboard written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from vilem.report.report import build_report

    check_writable(args.out, "dir", "--out")
    path = build_report(args.results_dir, args.out, baseline=args.baseline, title=args.title)
    print(f"report written to {path} and {path.with_suffix('.html')}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``leaderboard`` and ``report`` commands to the ``vilem`` parser."""
    from vilem.report.render import FORMATS

    p = subparsers.add_parser("leaderboard", help="tabulate result files per dataset and task")
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="folder of result JSONs")
    p.add_argument("--format", default="md", choices=FORMATS, help="output format (default: md)")
    p.add_argument("--baseline", metavar="MODEL", help="add a delta column against this model")
    p.add_argument("--task", help="only this task (retrieval, probe, proofread)")
    p.add_argument("--dataset", help="only this dataset (NAME or NAME/SPLIT)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_cmd_leaderboard)

    p = subparsers.add_parser("report", help="write report.md + report.html with tables and plots")
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="folder of result JSONs")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    p.add_argument("--baseline", metavar="MODEL", help="compare every model with this one")
    p.add_argument("--title", default="ViLEM benchmark report")
    p.set_defaults(func=_cmd_report)
