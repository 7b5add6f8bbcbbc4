"""Leaderboard tables from result files: collecting the records of a results folder and
grouping them into one table per (dataset, split, task), with one row per model and one column
per metric. Writing the tables (Markdown, CSV, LaTeX, HTML) is ``vilem.report.render``.

Cells are honest about what is not a number: a failed run is a ``failed`` row (never 0), a model
without a result for a cell others have is ``missing``. Best values are marked per column
according to the metric's direction (ranks: lower is better), and with a baseline each row gets
the main metric's paired bootstrap delta.

Runs of one cell trained with several seeds (``extra.train_seed``) make ONE row: each metric is
the mean over seeds with a two-level (seeds, then queries) bootstrap interval, and deltas pair
the seeds both rows have (see ``vilem.report.compare``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vilem.errors import ConfigError, DataError
from vilem.eval.tasks import TASKS, main_metric, task_names
from vilem.metrics.info import METRICS, higher_is_better
from vilem.registry import closest
from vilem.report.compare import (
    Delta,
    paired_delta,
    pool_records,
    pooled_paired_delta,
    train_seed,
)
from vilem.report.render import check_format, render
from vilem.results import load_result

# ----------------------------------------------------------------------------- collecting


@dataclass(frozen=True)
class Problem:
    """A file under the results folder that was skipped, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def model_name(record: dict[str, Any]) -> str:
    """The name a model is shown under: ``model.name``, else its spec."""
    model = record["model"]
    return str(model.get("name") or model.get("spec") or "")


def cell_key(record: dict[str, Any]) -> tuple[str, str, str, str]:
    """(model, dataset, split, task): what one result file measures."""
    ds = record["dataset"]
    return model_name(record), str(ds["name"]), str(ds.get("split") or ""), record["task"]


def _check_record(record: dict[str, Any]) -> str | None:
    """Why a schema-valid record still cannot be tabulated, or None."""
    if not model_name(record):
        return "field 'model' has neither 'name' nor 'spec'"
    if not isinstance(record["dataset"].get("name"), str):
        return "field 'dataset.name' is missing or not a string"
    if record.get("status", "ok") not in ("ok", "failed"):
        return f"unknown status {record.get('status')!r} (expected 'ok' or 'failed')"
    per_query = record.get("per_query")
    if per_query is not None and not isinstance(per_query, dict):
        return "field 'per_query' is not an object"
    return None


def _preference(record: dict[str, Any]) -> tuple[bool, str, str]:
    # a finished run wins over a failed one, then the newest, then the last path
    return record.get("status", "ok") == "ok", str(record.get("created") or ""), record["_path"]


def collect(results_dir: str | Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Read every ``*.json`` under ``results_dir`` (recursively) as a result record.

    Files that are not valid JSON, not vilem result files or of another schema version are
    listed in the returned problems and skipped, as are duplicate records of one cell (the
    finished, newest one is kept). Failed runs are kept: tables show them as failed. Each record
    gets a ``"_path"`` key naming the file it came from.

    Raises:
        DataError: ``results_dir`` does not exist or is not a folder.
    """
    root = Path(results_dir)
    if not root.exists():
        raise DataError(f"results folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"results path is not a folder: {root}")
    problems: list[Problem] = []
    # one record per cell and training seed (None: a single-seed run)
    by_cell: dict[tuple[str, str, str, str, int | None], dict[str, Any]] = {}
    for path in sorted(root.rglob("*.json")):
        if not path.is_file():
            continue
        try:
            record = load_result(path)
        except DataError as exc:
            reason = " ".join(str(exc).replace(str(path), "").split()).strip(" :")
            problems.append(Problem(str(path), reason))
            continue
        except OSError as exc:
            problems.append(Problem(str(path), f"cannot be read: {exc.strerror or exc}"))
            continue
        reason = _check_record(record)
        if reason:
            problems.append(Problem(str(path), reason))
            continue
        record["_path"] = str(path)
        key = (*cell_key(record), train_seed(record))
        kept = by_cell.get(key)
        if kept is not None:
            keep, drop = sorted((kept, record), key=_preference, reverse=True)
            by_cell[key] = keep
            what = "/".join(key[:4]) + ("" if key[4] is None else f" seed {key[4]}")
            problems.append(
                Problem(drop["_path"], f"duplicate result for {what}; using {keep['_path']}")
            )
        else:
            by_cell[key] = record
    seeded = {k[:4] for k in by_cell if k[4] is not None}
    for key in [k for k in by_cell if k[4] is None and k[:4] in seeded]:
        drop = by_cell.pop(key)
        reason = f"result without a training seed for {'/'.join(key[:4])}, next to per-seed results"
        problems.append(Problem(drop["_path"], f"{reason}; using those"))
    return list(by_cell.values()), problems


def seed_groups(
    records: Iterable[dict[str, Any]],
) -> dict[tuple[str, str, str, str], list[dict[str, Any]]]:
    """Records per ``cell_key``: one per training seed (a single one for single-seed runs; of
    two records of one cell and seed the last is kept), ordered by seed."""
    by_seed: dict[tuple[str, str, str, str], dict[int | None, dict[str, Any]]] = {}
    for r in records:
        by_seed.setdefault(cell_key(r), {})[train_seed(r)] = r
    return {
        k: [runs[s] for s in sorted(runs, key=lambda s: (s is None, s or 0))]
        for k, runs in by_seed.items()
    }


def models_in(records: Iterable[dict[str, Any]]) -> list[str]:
    return sorted({model_name(r) for r in records})


def tasks_in(records: Iterable[dict[str, Any]]) -> list[str]:
    """The tasks of ``records``: registered ones in registry order, then any other by name."""
    present = {r["task"] for r in records}
    known = task_names()
    return [t for t in known if t in present] + sorted(present - set(known))


def check_baseline(records: Sequence[dict[str, Any]], baseline: str | None) -> None:
    """Raise ConfigError when ``baseline`` names no model in ``records``."""
    if baseline is None:
        return
    names = models_in(records)
    if baseline not in names:
        raise ConfigError(
            f"unknown baseline model {baseline!r}{closest(baseline, names)}; "
            f"models in the results: {', '.join(names) or 'none'}"
        )


# ----------------------------------------------------------------------------- tables


@dataclass
class Row:
    model: str
    status: str  # "ok", "failed" or "missing"
    record: dict[str, Any] | None  # with several seeds: the pooled record
    delta: Delta | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)  # the ok runs, one per seed
    failed_seeds: list[int] = field(default_factory=list)  # seeds left out: their run failed

    @property
    def pooled(self) -> bool:
        return len(self.runs) > 1

    def label(self) -> str:
        return f"{self.model} ({len(self.runs)} seeds)" if self.pooled else self.model


@dataclass
class Table:
    """One leaderboard: a (dataset, split, task) group with its rows and metric columns."""

    task: str
    dataset: str
    split: str
    columns: list[str]
    rows: list[Row]
    best: dict[str, set[str]] = field(default_factory=dict)  # metric -> models marked best
    baseline: str | None = None
    main: str | None = None  # the metric of the delta column

    @property
    def title(self) -> str:
        where = f"{self.dataset}/{self.split}" if self.split else self.dataset
        return f"{where} — {self.task}"

    def value(self, row: Row, metric: str) -> float | None:
        return _number(row.record["metrics"].get(metric)) if row.record else None

    def interval(self, row: Row, metric: str) -> tuple[float, float] | None:
        """The row's recorded 95% interval of ``metric``, when it holds two finite numbers."""
        ci = row.record.get("intervals", {}).get(metric) if row.record else None
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            lo, hi = _number(ci[0]), _number(ci[1])
            if lo is not None and hi is not None:
                return lo, hi
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _numeric_metrics(records: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for k, v in r["metrics"].items():
            if _number(v) is not None:
                seen.setdefault(k, None)
    return list(seen)


def _default_columns(task: str, present: list[str]) -> list[str]:
    """The task's registered columns that are present, then the other metrics present by name.

    A task registered without columns shows every metric present: the per-category accuracies
    (``acc_*``) by name, then the registry's fixed metrics in registry order, then the rest.
    """
    if task not in TASKS:
        order: list[str] = []
    elif TASKS[task].columns:
        order = list(TASKS[task].columns)
    else:
        order = [*sorted(m for m in present if m.startswith("acc_")), *METRICS]
    return [m for m in order if m in present] + sorted(m for m in present if m not in order)


def _sort_rows(rows: list[Row], metric: str | None) -> list[Row]:
    def key(row: Row) -> tuple:
        rank = {"ok": 0, "failed": 1, "missing": 2}[row.status]
        value = _number(row.record["metrics"].get(metric)) if row.record and metric else None
        if value is None:
            return rank, 1, 0.0, row.model
        return rank, 0, -value if higher_is_better(metric) else value, row.model

    return sorted(rows, key=key)


def build_tables(
    records: Sequence[dict[str, Any]],
    task: str | None = None,
    dataset: str | None = None,
    baseline: str | None = None,
    metrics: Sequence[str] | None = None,
    digits: int = 1,
) -> list[Table]:
    """Group ``records`` into leaderboards, one per (dataset, split, task).

    Rows are every model found in ``records`` (any task), so a model lacking a cell shows as
    missing. ``dataset`` filters by name or ``name/split``; ``metrics`` picks the columns.

    Raises:
        ConfigError: an unknown task, dataset, baseline model or metric name.
    """
    if not records:
        raise DataError("no result records to tabulate")
    check_baseline(records, baseline)
    all_models = models_in(records)
    present_tasks = tasks_in(records)
    if task is not None and task not in present_tasks:
        raise ConfigError(
            f"no results for task {task!r}{closest(task, present_tasks)}; "
            f"tasks in the results: {', '.join(present_tasks)}"
        )
    chosen = [r for r in records if task is None or r["task"] == task]
    if dataset is not None:
        names = sorted(
            {r["dataset"]["name"] for r in chosen} | {"/".join(cell_key(r)[1:3]) for r in chosen}
        )
        chosen = [r for r in chosen if dataset in (cell_key(r)[1], "/".join(cell_key(r)[1:3]))]
        if not chosen:
            raise ConfigError(
                f"no results for dataset {dataset!r}{closest(dataset, names)}; "
                f"datasets in the results: {', '.join(names)}"
            )
    if metrics:
        known = _numeric_metrics(chosen)
        for m in metrics:
            if m not in known:
                raise ConfigError(f"no results report metric {m!r}{closest(m, known)}")
    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    for (name, ds, split, t), runs in seed_groups(chosen).items():
        groups.setdefault((t, ds, split), {})[name] = runs
    order = {t: i for i, t in enumerate(present_tasks)}
    tables = []
    for (t, ds, split), cells in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0])):
        ok = [r for runs in cells.values() for r in runs if r.get("status", "ok") == "ok"]
        if metrics:
            columns = list(metrics)
        else:
            same_task = [r for r in chosen if r["task"] == t and r.get("status", "ok") == "ok"]
            columns = _default_columns(t, _numeric_metrics(ok or same_task))
        rows = [_row(name, cells.get(name, [])) for name in all_models]
        table = Table(t, ds, split, columns, rows, baseline=baseline)
        table.main = main_metric(t, columns)
        table.rows = _sort_rows(rows, table.main)
        table.best = _best(table, digits)
        if baseline is not None:
            _add_deltas(table)
        tables.append(table)
    return tables


def _best(table: Table, digits: int) -> dict[str, set[str]]:
    """Models holding the best value per column, compared at the displayed precision."""
    best: dict[str, set[str]] = {}
    for m in table.columns:
        values = {
            row.model: round(v, digits)
            for row in table.rows
            if (v := table.value(row, m)) is not None
        }
        if len(values) < 2:  # nothing to compare against
            continue
        target = max(values.values()) if higher_is_better(m) else min(values.values())
        best[m] = {name for name, v in values.items() if v == target}
    return best


def _row(name: str, runs: list[dict[str, Any]]) -> Row:
    """A model's row from its runs of one cell: missing, failed (no run finished), one run as
    it is, or several seeds pooled (``pool_records``)."""
    ok = [r for r in runs if r.get("status", "ok") == "ok"]
    if not ok:
        return Row(name, "failed" if runs else "missing", None)
    failed = sorted(
        s for r in runs if r.get("status") == "failed" and (s := train_seed(r)) is not None
    )
    record = ok[0] if len(ok) == 1 else pool_records(ok)
    return Row(name, "ok", record, runs=ok, failed_seeds=failed)


def _add_deltas(table: Table) -> None:
    base = next(r for r in table.rows if r.model == table.baseline)
    if base.record is None or table.main is None:
        return
    for row in table.rows:
        if row.record is None or row.model == table.baseline:
            continue
        if row.pooled or base.pooled:
            row.delta = pooled_paired_delta(row.runs, base.runs, table.main)
        else:
            row.delta = paired_delta(row.record, base.record, table.main)


def leaderboard(
    records: Sequence[dict[str, Any]],
    task: str | None = None,
    dataset: str | None = None,
    baseline: str | None = None,
    fmt: str = "md",
    metrics: Sequence[str] | None = None,
    digits: int = 1,
) -> str:
    """Leaderboard tables for ``records`` as Markdown, CSV, LaTeX or HTML.

    Args:
        records: result records, e.g. from ``collect``.
        task: one task (retrieval, probe, proofread); None tabulates every task present.
        dataset: only this dataset (``name`` or ``name/split``).
        baseline: a model name; adds a delta column for the task's main metric (rsum, macro,
            ed_f1) with a paired bootstrap 95% interval and a significance mark.
        fmt: "md", "csv", "latex" or "html".
        metrics: the metric columns to show (default: all the task's metrics present).
        digits: decimals shown (and the precision at which best values tie).
    """
    check_format(fmt)
    tables = build_tables(records, task, dataset, baseline, metrics, digits)
    return render(tables, fmt, digits)
