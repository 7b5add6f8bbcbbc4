#!/usr/bin/env python
"""Run the performance suite (benchmarks/perf/) and judge each case against its target.

    python benchmarks/run_perf.py                    # all cases, ~25-60 minutes on 2 cores
    python benchmarks/run_perf.py --only video       # one case (repeat --only for more)
    python benchmarks/run_perf.py --strict           # refuse a tree with uncommitted changes
    python benchmarks/run_perf.py --threads 1        # pin BLAS/OpenMP/torch threads

Writes into reports/perf/ (or --out): ``benchmarks.json`` (pytest-benchmark's raw output),
``outcomes.json`` (which tests passed, failed or were skipped, and why), ``summary.json`` and
``summary.md`` (case, measured figure, target, met/MISSED, machine and git state).

Every figure is a ratio of a candidate to a reference measured in the same run. Machines are
noisy in bursts, so the variants of a case take turns round by round and a ratio is the median
over rounds of the ratio within a round. A case that cannot run is reported as
"skipped: <reason>", never as a number. Exit status: 0 when every case that
ran met its target, 1 when one missed or failed, 2 when the run was refused or pytest crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PERF = ROOT / "benchmarks" / "perf"
DEFAULT_OUT = ROOT / "reports" / "perf"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
sys.path.insert(0, str(PERF))  # the cases and their judging live beside the tests

from cases import CASE_NAMES, CASES  # noqa: E402
from judge import Results, judge  # noqa: E402

# ------------------------------------------------------------------------------ environment


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    # only trailing newlines go: porcelain lines start with a meaningful space
    return done.stdout.rstrip("\n") if done.returncode == 0 else ""


def git_state(out_dir: Path) -> dict[str, Any]:
    """Commit and uncommitted changes; the suite's own output folder does not count."""
    try:
        own = out_dir.resolve().relative_to(ROOT).as_posix().rstrip("/") + "/"
    except ValueError:
        own = None
    changed = [
        line[3:]
        for line in _git("status", "--porcelain", "--untracked-files=normal").splitlines()
        if line.strip() and not (own and line[3:].startswith(own))
    ]
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD") or "unknown",
        "dirty": bool(changed),
        "changed_paths": len(changed),
        "changed_sample": changed[:20],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_info() -> dict[str, Any]:
    versions = {}
    for package in (
        "numpy", "torch", "decord", "av", "pytest-benchmark", "timm", "transformers", "faiss-cpu",
        "numba",
    ):  # fmt: skip
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory": _memory_total(),
        "cuda": _cuda(),
        "packages": versions,
        "threads_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
    }


def _cuda() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    return done.stdout.strip().replace("\n", "; ") or "none"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


# ------------------------------------------------------------------------------ report


def write_summary(out_dir: Path, report: dict[str, Any]) -> None:
    from vilem.io import atomic_write_json, atomic_write_text

    atomic_write_json(out_dir / "summary.json", report)
    atomic_write_text(out_dir / "summary.md", render_markdown(report))


def _plain(value: Any) -> str:
    """A details value for Markdown: floats to 4 significant digits, mappings inline."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


def _render_training(details: dict[str, Any]) -> list[str]:
    med, fast = details["paired"], details["min"]
    lines = [
        "",
        f"ITC-only step {med['itc_step_ms']:.0f} ms, full ViLEM step "
        f"{med['full_step_ms']:.0f} ms (medians over rounds; fastest rounds "
        f"{fast['itc_step_ms']:.0f} and {fast['full_step_ms']:.0f} ms). "
        "Where the extra time goes:",
        "",
        "| part | ms (median over rounds) | ms (fastest rounds) | % of the ITC-only step "
        "| % of the extra time |",
        "|---|---|---|---|---|",
    ]
    for part, v in med["parts"].items():
        f = fast["parts"].get(part)
        if not isinstance(v, dict) or not isinstance(f, dict):
            lines.append(f"| {part} | {v} | {f} | | |")
            continue
        lines.append(
            f"| {part} | {v['ms']:.0f} | {f['ms']:.0f} | "
            f"{v['pct_of_itc_step']:.0f}% / {f['pct_of_itc_step']:.0f}% | "
            f"{v['pct_of_extra']:.0f}% / {f['pct_of_extra']:.0f}% |"
        )
    floors = details.get("floors", {})
    arms = {k: v for k, v in floors.items() if isinstance(v, dict)}
    if arms:
        kinds = list(next(iter(arms.values()))["parts_ms"])
        lines += [
            "",
            "Each arm against its floor (medians over rounds, ms; the parts are self times "
            "in the profiled step):",
            "",
            "| arm | step | floor (matrix products) | profiled | "
            + " | ".join(kinds)
            + " | ops | edits/step |",
            "|---" * (len(kinds) + 6) + "|",
        ]
        for arm, v in arms.items():
            parts = " | ".join(f"{v['parts_ms'][k]:.1f}" for k in kinds)
            lines.append(
                f"| {arm} | {v['step_ms']:.0f} | {v['floor_ms']:.0f} | {v['profiled_ms']:.0f} "
                f"| {parts} | {v['ops']:.0f} | {v['edits_per_step']:.0f} |"
            )
    return lines


def _render_gallery(details: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| run | items x texts, D | chunk rows | inputs | RSS at start | "
        "RSS with inputs | peak RSS (process) | peak RSS (call) | call s | "
        "kernel load s (untimed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    mib = 1 << 20
    for name, e in details.items():
        if not isinstance(e, dict):
            lines.append(f"| {name} | {e} | | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {e['items']:,} x {e['texts']:,}, {e['dim']} | "
            f"{e['chunk_rows']} | {e['input_bytes'] / mib:.0f} MiB | "
            f"{e['rss_start_bytes'] / mib:.0f} MiB | "
            f"{e['rss_with_inputs_bytes'] / mib:.0f} MiB | "
            f"{e['peak_rss_bytes'] / mib:.0f} MiB | "
            f"{e['peak_rss_call_bytes'] / mib:.0f} MiB | {e['seconds']:.1f} | "
            f"{e.get('kernel_load_s', 0.0):.2f} |"
        )
    return lines


def _render_shared(details: dict[str, Any]) -> list[str]:
    lines = ["", "| run | wall s per call | CPU s per call | rounds |", "|---|---|---|---|"]
    for name, v in details.items():
        if isinstance(v, dict):
            lines.append(
                f"| {name} | {v['wall_s_per_call']:.3f} | {v['cpu_s_per_call']:.3f} | "
                f"{v['rounds']} |"
            )
        else:
            lines.append(f"| {name} | {v} | | |")
    return lines


def _render_scaling(details: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| tool | items x texts | scores | s | ns per score | peak RSS MiB | inputs MiB | "
        "peak - inputs MiB | chunk rows |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in details["points"]:
        lines.append(
            f"| {p['tool']} | {p['items']:,} x {p['texts']:,} | "
            f"{p['items'] * p['texts']:.2e} | {p['seconds']:.2f} | {p['ns_per_score']:.2f} | "
            f"{p['peak_rss_mib']:.0f} | {p['inputs_mib']:.0f} | {p['above_inputs_mib']:.0f} | "
            f"{p['chunk_rows']} |"
        )
    return lines


RENDERERS = {
    "training_step": _render_training,
    "large_gallery": _render_gallery,
    "shared_machine": _render_shared,
    "gallery_scaling": _render_scaling,
}


def _render_case(case: dict[str, Any]) -> list[str]:
    lines = [f"### {case['case']}: {case['title']}", ""]
    lines += [f"- {note}" for note in case["notes"]]
    details = case["details"]
    if case["case"] in RENDERERS and isinstance(details, dict):
        lines += RENDERERS[case["case"]](details)
    elif isinstance(details, dict):
        lines += ([""] if case["notes"] else []) + [
            f"- {k}: {_plain(v)}" for k, v in details.items()
        ]
    elif details is not None:
        lines += ([""] if case["notes"] else []) + [f"- {details}"]
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    git, machine, run = report["git"], report["machine"], report["run"]
    dirty = f"dirty: {git['changed_paths']} uncommitted path(s)" if git["dirty"] else "clean tree"
    lines = [
        "# Performance suite: summary",
        "",
        f"Generated by `benchmarks/run_perf.py` on {report['generated']} "
        f"(commit `{git['commit'][:12]}` on `{git['branch']}`, {dirty}).",
        f"Cases run: {', '.join(run['cases'])}; wall time {run['wall_seconds']:.0f} s; "
        f"pytest exit status {run['pytest_exit']}.",
        "",
        "Every figure is a ratio against a reference measured in the same run. The variants of "
        "a case take turns round by round, and a ratio is the median over rounds of the ratio "
        "within a round (cases run once per variant use the fastest rounds); `summary.json` "
        "also has the ratio of the fastest rounds (`min_based`).",
        "",
        "| case | check | measured | target | status |",
        "|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        for row in case["checks"]:
            status = row["status"]
            shown = status if status in ("met", "MISSED", "info") else row["figure"]
            figure = row["figure"] if row["value"] is not None else "-"
            lines.append(
                f"| {case['case']} | {row['check']} | {figure} | {row['target'] or '-'} | "
                f"{'**MISSED**' if status == 'MISSED' else shown} |"
            )
    lines += ["", "## Details", ""]
    for case in report["cases"]:
        lines += _render_case(case)
    lines += [
        "## Machine",
        "",
        f"- {machine['cpu']}, {machine['logical_cpus']} logical CPUs, {machine['memory']} RAM; "
        f"GPU: {machine['cuda']}",
        f"- {machine['platform']}, Python {machine['python']}",
        "- " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()),
        f"- threads: {run['threads'] or 'library defaults'}; thread settings of the suite "
        f"(vilem.threads.configure): {run.get('thread_settings') or 'none'}; load average "
        f"(1/5/15 min) before {run['load_before']}, after {run['load_after']}",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run the vilem performance suite and write reports/perf/."
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse to run on a tree with uncommitted changes"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=CASE_NAMES,
        metavar="CASE",
        help=f"run only this case (repeatable): {', '.join(CASE_NAMES)}",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="pin BLAS/OpenMP/torch threads (default: the libraries' own choice)",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    return parser


def _pytest(args: argparse.Namespace, tests: list[str], out_dir: Path) -> dict[str, Any]:
    """Run the benchmarks; their results, outcomes, exit status, wall time and load."""
    bench_json, outcomes_json = out_dir / "benchmarks.json", out_dir / "outcomes.json"
    for stale in (bench_json, outcomes_json):
        stale.unlink(missing_ok=True)
    env = dict(os.environ)
    if args.threads is not None:
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[key] = str(args.threads)
        env["VILEM_PERF_THREADS"] = str(args.threads)
    cmd = [
        sys.executable, "-m", "pytest", str(PERF), "-p", "no:cacheprovider", "-q", "-rsfE",
        f"--benchmark-json={bench_json}", "--benchmark-columns=min,median,max,rounds",
        "--benchmark-sort=name", f"--perf-outcomes={outcomes_json}",
    ]  # fmt: skip
    if args.only:
        cmd += ["-k", " or ".join(f"({t})" for t in tests)]
    print("$ " + " ".join(cmd), flush=True)
    from vilem.threads import available_cpus, can_adapt, thread_settings, waits_passively

    # what the suite's conftest applies (vilem.threads.configure, as the vilem command does),
    # decided from the load just before it starts
    cpus = available_cpus()
    passive, wait = waits_passively(env, cpus, can_adapt(env, cpus))
    settings = {**thread_settings(env, cpus, passive), "wait": wait}
    load_before, start = _load(), time.perf_counter()
    exit_code = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    wall, load_after = time.perf_counter() - start, _load()
    return {
        "benchmarks": (
            json.loads(bench_json.read_text())["benchmarks"] if bench_json.is_file() else []
        ),
        "outcomes": json.loads(outcomes_json.read_text()) if outcomes_json.is_file() else {},
        "run": {
            "threads": args.threads,
            "thread_settings": settings,
            "pytest_exit": exit_code,
            "wall_seconds": wall,
            "load_before": load_before,
            "load_after": load_after,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for case in CASES:
            print(f"{case.name:16} {case.title}")
        return 0
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    out_dir = args.out.resolve()
    git = git_state(out_dir)
    if args.strict and git["dirty"]:
        print(
            f"refusing to run with --strict: {git['changed_paths']} uncommitted path(s), e.g. "
            f"{', '.join(git['changed_sample'][:5])}; commit or stash them first",
            file=sys.stderr,
        )
        return 2

    cases = [c for c in CASES if not args.only or c.name in args.only]
    out_dir.mkdir(parents=True, exist_ok=True)
    done = _pytest(args, sorted({t for c in cases for t in c.tests}), out_dir)
    results = Results(done["benchmarks"], done["outcomes"])
    report = {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git,
        "machine": machine_info(),
        "run": {"cases": [c.name for c in cases], **done["run"]},
        "cases": [judge(c, results) for c in cases],
        "benchmarks": {
            b["name"]: {
                "group": b.get("group"),
                **{k: b["stats"][k] for k in ("min", "median", "max", "mean", "rounds")},
                "extra_info": b.get("extra_info", {}),
            }
            for b in done["benchmarks"]
        },
    }
    write_summary(out_dir, report)
    print(render_markdown(report).split("## Details")[0])
    print(f"wrote {out_dir / 'summary.md'} and {out_dir / 'summary.json'}")
    if done["run"]["pytest_exit"] not in (0, 1):  # 1 = some tests failed: reported per case
        return 2
    statuses = [row["status"] for case in report["cases"] for row in case["checks"]]
    return 1 if any(s in ("MISSED", "error") for s in statuses) else 0


if __name__ == "__main__":
    sys.exit(main())
