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
    """Tell the user, on stderr, which files were skipped and why (the first few of each kind:
    files that are not readable results, duplicates of a cell another file measures)."""
    what = {
        "unreadable": "that are not readable results",
        "duplicate": "measuring a cell another file also measures",
    }
    for kind, text in what.items():
        mine = [p for p in problems if p.kind == kind]
        if not mine:
            continue
        print(f"vilem: skipped {len(mine)} file(s) {text}:", file=sys.stderr)
        for p in mine[:_SHOWN_PROBLEMS]:
            print(f"  {p}", file=sys.stderr)
        if len(mine) > _SHOWN_PROBLEMS:
            print(f"  ... and {len(mine) - _SHOWN_PROBLEMS} more", file=sys.stderr)


def results_folders(patterns: list[str]) -> list[Path]:
    """Folders from the command line: paths, or glob patterns (``runs/*/results``) the shell
    did not expand. A pattern that matches nothing is an error naming it."""
    import glob

    out: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_dir())
            if not found:
                raise DataError(f"no results folder matches {pattern!r}")
            out += found
        else:
            out.append(Path(pattern))
    return list(dict.fromkeys(out))


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from vilem.io import atomic_write_text
    from vilem.report.tables import check_baseline, leaderboard
    from vilem.results import collect

    if args.out:
        check_writable(args.out, "file", "--out")
    folders = results_folders(args.results_dirs)
    records, problems = collect(*folders)
    _warn_problems(problems)
    if not records:
        where = " ".join(map(str, folders))
        raise DataError(f"no vilem result files found under {where}")
    check_baseline(records, args.baseline)
    columns = [c for part in args.columns or [] for c in part.split(",") if c]
    text = leaderboard(
        records, task=args.task, dataset=args.dataset, baseline=args.baseline, fmt=args.format,
        metrics=columns or None,
    )  # fmt: skip
    if args.out:
        atomic_write_text(args.out, text)
        print(f"leaderboard written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def parse_pair(text: str) -> tuple[str, str]:
    """``MODEL:BASELINE`` as a (model, baseline) pair; ConfigError for anything else."""
    from vilem.errors import ConfigError

    model, sep, baseline = text.partition(":")
    if not sep or not model.strip() or not baseline.strip() or ":" in baseline:
        raise ConfigError(f"--pair {text!r}: expected MODEL:BASELINE, e.g. vilem:itc")
    return model.strip(), baseline.strip()


def _cmd_report(args: argparse.Namespace) -> int:
    from vilem.report.figure import check_figure_format
    from vilem.report.report import build_report

    pairs = [parse_pair(p) for p in args.pair or []]
    check_figure_format(args.figures)
    check_writable(args.out, "dir", "--out")
    path = build_report(
        args.results_dir, args.out, baseline=args.baseline, title=args.title,
        pairs=pairs or None, figures=args.figures, notes=args.note,
    )  # fmt: skip
    print(f"report written to {path} and {path.with_suffix('.html')}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``leaderboard`` and ``report`` commands to the ``vilem`` parser."""
    from vilem.report.render import FORMATS

    p = subparsers.add_parser(
        "leaderboard",
        help="tabulate result files per dataset, task and protocol",
        description="Tabulate the results of one or more folders (or glob patterns): one table "
        "per dataset/split/task and protocol, one row per model (per folder, with several).",
    )
    p.add_argument(
        "results_dirs", nargs="+", metavar="RESULTS_DIR",
        help="folders of result JSONs, or glob patterns such as 'runs/*/results'",
    )  # fmt: skip
    p.add_argument("--format", default="md", choices=FORMATS, help="output format (default: md)")
    p.add_argument(
        "--columns", action="append", metavar="M1,M2",
        help="metric columns to show, comma-separated (default: the task's metrics)",
    )  # fmt: skip
    p.add_argument("--baseline", metavar="MODEL", help="add a delta column against this model")
    p.add_argument("--task", help="only this task (retrieval, probe, proofread)")
    p.add_argument("--dataset", help="only this dataset (NAME or NAME/SPLIT)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_cmd_leaderboard)

    p = subparsers.add_parser("report", help="write report.md + report.html with tables and plots")
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="folder of result JSONs")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    p.add_argument(
        "--baseline", metavar="MODEL",
        help="the tables' delta column, and every model is compared with it unless --pair is given",
    )  # fmt: skip
    p.add_argument(
        "--pair", action="append", metavar="MODEL:BASELINE",
        help="a comparison for the findings (repeatable), e.g. --pair vilem:itc "
        "--pair vilem-video:itc-video; replaces the every-model-vs-baseline default",
    )  # fmt: skip
    p.add_argument(
        "--figures", default="png", metavar="FORMAT",
        help="figure files: png (default), svg or pdf (paper-ready; the pages show PNG previews)",
    )  # fmt: skip
    p.add_argument("--title", default="ViLEM benchmark report")
    p.add_argument(
        "--note", action="append", default=[], metavar="TEXT",
        help="a paragraph under the title (repeatable; Markdown bold, code and links)",
    )  # fmt: skip
    p.set_defaults(func=_cmd_report)
