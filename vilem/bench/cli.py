"""``vilem bench``: run a benchmark matrix, then print its leaderboards (and, for a spec with a
``compare`` section, its headline deltas); ``vilem compare``: those deltas for a results
folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vilem.io import check_writable

DEFAULT_SPEC = "default"  # the main job; packaged, so `vilem bench` works from any folder


def comparison_table(comp: dict[str, Any]) -> str:
    """The deltas and model-only values of a ``comparison`` as a short Markdown table."""
    from tabulate import tabulate

    def num(x: float | None) -> str:
        return "—" if x is None else f"{x:+.1f}".replace("-", "−")

    def ci(c: list[float] | None) -> str:
        return "n/a" if not c else f"[{num(c[0])}, {num(c[1])}]"

    notes: dict[str, list[str]] = {}  # why a value or interval is missing -> its rows

    def delta_row(label: str, d: dict[str, Any]) -> list:
        sig = {True: "yes", False: "no", None: "n/a"}[d["significant"]]
        if d.get("note"):
            notes.setdefault(d["note"], []).append(label)
        return [label, num(d["delta"]), ci(d["ci"]), sig, d["n_seeds"]]

    rows = [delta_row(key, d) for key, d in comp["deltas"].items()]
    for key, v in comp["model_only"].items():
        value = "—" if v["value"] is None else f"{v['value']:.1f}"
        lo_hi = "n/a" if not v["ci"] else f"[{v['ci'][0]:.1f}, {v['ci'][1]:.1f}]"
        rows.append([f"{key} ({comp['model']})", value, lo_hi, "", v["n_seeds"]])
    for name, abl in comp.get("ablations", {}).items():
        for side in (k for k in abl if k.startswith("minus_")):
            rows += [delta_row(f"{name} − {side[6:]}: {key}", d) for key, d in abl[side].items()]
    headers = ["comparison", "Δ / value", "95% CI", "significant", "seeds"]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    # the reasons stay beside the table, not only in the --out JSON
    lines = [f"- {', '.join(labels)}: {note}" for note, labels in notes.items()]
    if comp.get("toy"):
        table = f"{TOY_LINE}\n\n{table}"
    return table + ("\n\nnotes:\n" + "\n".join(lines) if lines else "")


TOY_LINE = "toy scale (a --quick or --limit run): a smoke test, not a benchmark's finding"


def _compare(records: list, names: dict[str, Any]) -> dict[str, Any]:
    from vilem.report.compare import comparison

    present = {r.model.name for r in records}
    return comparison(
        records,
        names["model"],
        names["baseline"],
        video_model=names.get("video_model"),
        video_baseline=names.get("video_baseline"),
        ablations=[a for a in names.get("ablations", []) if a in present],
    )


def _report_pairs(compare: dict[str, str] | None, present: set[str]) -> list | None:
    """The spec's ``compare`` pairs whose models both have results (--quick drops some), for
    the report's findings; None (every model against the baseline) without a ``compare``."""
    if not compare:
        return None
    pairs = [(compare["model"], compare["baseline"])]
    if compare.get("video_model"):
        pairs.append((compare["video_model"], compare["video_baseline"]))
    kept = [p for p in pairs if set(p) <= present]
    return kept or None


def _cmd_bench(args: argparse.Namespace) -> int:
    from vilem.bench.runner import Runner
    from vilem.bench.spec import load_spec

    spec = load_spec(args.spec, quick=args.quick, out=str(args.out) if args.out else None)
    check_writable(
        spec.out, "dir", "--out" if args.out else f"the results folder (spec {args.spec})"
    )
    if args.report:
        check_writable(args.report, "dir", "--report")
    runner = Runner(
        spec, rerun=args.rerun, quiet=args.quiet, device=args.device, baseline=args.baseline
    )
    summary = runner.run()
    print(
        f"[bench] {spec.name}: {len(summary.done)} run, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed, {len(summary.not_applicable)} not applicable, "
        f"{len(summary.busy)} in progress in another run; {summary.seconds:.0f} s"
    )
    for cell in summary.busy:
        print(f"[bench] in progress elsewhere: {cell}")
    results = Path(spec.out) / "results"
    from vilem.report.tables import leaderboard
    from vilem.results import collect

    records, _ = collect(results) if results.is_dir() else ([], [])
    for task in spec.tasks:
        if any(r.task == task for r in records):
            print(f"\n## {task}\n")
            print(leaderboard(records, task, baseline=args.baseline))
    comp = _compare(records, spec.compare) if spec.compare and records else None
    if comp is not None:
        print(f"\n## {comp['model']} vs {comp['baseline']} (seeds {comp['seeds'] or 'n/a'})\n")
        print(comparison_table(comp))
    if args.report:
        from vilem.io import atomic_write_json
        from vilem.report.report import build_report

        path = build_report(
            results, Path(args.report), baseline=args.baseline, title=spec.name,
            pairs=_report_pairs(spec.compare, {r.model.name for r in records}),
            notes=spec.notes,
        )  # fmt: skip
        print(f"\nreport written to {path}")
        if comp is not None:
            atomic_write_json(Path(args.report) / "comparison.json", comp)
            print(f"comparison written to {Path(args.report) / 'comparison.json'}")
    return 1 if summary.failed else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from vilem.errors import ConfigError, DataError
    from vilem.io import atomic_write_json
    from vilem.registry import closest
    from vilem.report.tables import models_in
    from vilem.results import collect

    if args.out:
        check_writable(args.out, "file", "--out")
    records, _ = collect(args.results_dir)
    if not records:
        raise DataError(f"no vilem result files found under {args.results_dir}")
    if (args.video_model is None) != (args.video_baseline is None):
        raise ConfigError("--video-model and --video-baseline go together")
    known = models_in(records)
    flags = ("model", "baseline", "video_model", "video_baseline")
    given = [(f, getattr(args, f)) for f in flags] + [("ablation", a) for a in args.ablation]
    for flag, name in given:
        if name is not None and name not in known:
            raise ConfigError(
                f"--{flag.replace('_', '-')}: no model {name!r} in the results"
                f"{closest(name, known)}; models: {', '.join(known)}"
            )
    names = {"model": args.model, "baseline": args.baseline}
    if args.video_model is not None:
        names |= {"video_model": args.video_model, "video_baseline": args.video_baseline}
    comp = _compare(records, names | {"ablations": args.ablation})
    print(comparison_table(comp))
    if args.out:
        atomic_write_json(args.out, comp)
        print(f"\ncomparison written to {args.out}")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from vilem.bench.migrate import migrate
    from vilem.bench.spec import load_spec

    spec = load_spec(args.spec, quick=args.quick)
    done, current = migrate(args.results_dir, spec, dry_run=args.dry_run)
    verb = "would migrate" if args.dry_run else "migrated"
    where = args.results_dir
    print(f"{verb} {done} result file(s) to schema 2 ({current} already were) in {where}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark matrix (models x datasets x tasks)")
    p.add_argument(
        "spec", nargs="?", default=DEFAULT_SPEC,
        help="a spec YAML file, or a packaged spec: default (the main job), seeds, ablations "
        "(benchmarks/<name>.yaml in the repository)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="results folder (default: the spec's `out`)")
    p.add_argument("--rerun", action="store_true", help="rerun finished cells")
    p.add_argument("--quick", action="store_true", help="the spec's reduced version")
    p.add_argument("--baseline", help="model row to compare against in the printed tables")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write report.md/html here (and comparison.json for a spec with `compare`)",
    )
    p.add_argument(
        "--device",
        help="where training and evaluation run (cpu, cuda, cuda:1); default: evaluate on the "
        "CPU, train where each recipe says",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("compare", help="model vs baseline deltas of a results folder, as JSON")
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="folder of result JSONs")
    p.add_argument("--model", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--video-model", help="fine-tuned video model (video_finetuned_rsum)")
    p.add_argument("--video-baseline", help="its baseline")
    p.add_argument(
        "--ablation", action="append", default=[], metavar="MODEL",
        help="an ablation, compared with --baseline and --model on images (repeatable)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, metavar="FILE", help="also write comparison.json here")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "migrate",
        help="rewrite a bench folder's schema-1 results as schema 2 (protocol from the spec)",
    )
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="the bench's results/")
    p.add_argument("--spec", required=True, help="the spec that produced them")
    p.add_argument("--quick", action="store_true", help="they are the spec's --quick run")
    p.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    p.set_defaults(func=_cmd_migrate)
