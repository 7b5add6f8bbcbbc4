"""``vilem bench``: run a benchmark matrix, then print its leaderboards."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SPEC = Path("benchmarks") / "default.yaml"


def _cmd_bench(args: argparse.Namespace) -> int:
    from vilem.bench.runner import Runner
    from vilem.bench.spec import load_spec

    spec = load_spec(args.spec, quick=args.quick, out=str(args.out) if args.out else None)
    summary = Runner(spec, rerun=args.rerun, quiet=args.quiet, device=args.device).run()
    print(
        f"[bench] {spec.name}: {len(summary.done)} run, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed, {len(summary.not_applicable)} not applicable, "
        f"{len(summary.busy)} busy in another run; {summary.seconds:.0f} s"
    )
    results = Path(spec.out) / "results"
    try:
        from vilem.report.leaderboard import collect, leaderboard
    except ModuleNotFoundError:
        return 1 if summary.failed else 0
    records, _ = collect(results)
    for task in spec.tasks:
        if any(r["task"] == task for r in records):
            print(f"\n## {task}\n")
            print(leaderboard(records, task, baseline=args.baseline))
    if args.report:
        from vilem.report.report import build_report

        path = build_report(results, Path(args.report), baseline=args.baseline, title=spec.name)
        print(f"\nreport written to {path}")
    return 1 if summary.failed else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark matrix (models x datasets x tasks)")
    p.add_argument("spec", nargs="?", default=str(DEFAULT_SPEC), help="spec YAML")
    p.add_argument("--out", type=Path, help="results folder (default: the spec's `out`)")
    p.add_argument("--rerun", action="store_true", help="rerun finished cells")
    p.add_argument("--quick", action="store_true", help="the spec's reduced version")
    p.add_argument("--baseline", help="model row to compare against in the printed tables")
    p.add_argument("--report", type=Path, metavar="DIR", help="also write report.md/html here")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_bench)
