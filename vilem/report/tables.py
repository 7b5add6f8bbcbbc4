"""Leaderboard tables from results: grouping ``vilem.results.Result`` records into one table per
(dataset, split, task) and protocol, with one row per model and one column per metric. Writing
the tables (Markdown, CSV, LaTeX, HTML) is ``vilem.report.render``; ``rows``/``frame`` give the
same numbers as plain dicts or a pandas DataFrame.

Results measured under different protocols (``Result.benchmark``: another split revision, item
count, frames, recall Ks, bootstrap, a --quick or --limit run, other adapter options) are never
merged: each protocol gets its own table, titled with what sets it apart, and toy-scale tables
(--quick, --limit) say so. One model's results under different model-side settings (device,
preprocessing) get separate, labelled rows; so do models of the same name from different
results folders (``collect`` of several folders).

Cells are honest about what is not a number: a failed run is a ``failed`` row (never 0), a model
without a result for a cell others have is ``missing``. Best values are marked per column
according to the metric's direction (ranks: lower is better), and with a baseline each row gets
the main metric's paired bootstrap delta.

Runs of one cell trained with several seeds (``model.train_seed``) make ONE row: each metric is
the mean over seeds with a two-level (seeds, then queries) bootstrap interval, and deltas pair
the seeds both rows have (see ``vilem.report.compare``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vilem.errors import ConfigError, DataError
from vilem.eval.tasks import TASKS, main_metric, task_names
from vilem.metrics.info import ED_FLAG_PREFIX, METRICS, higher_is_better
from vilem.registry import closest
from vilem.report.compare import (
    Delta,
    paired_delta,
    pool_records,
    pooled_paired_delta,
    train_seed,
)
from vilem.report.render import check_format, render
from vilem.results import Result, differences, digest

# ----------------------------------------------------------------------------- grouping


def model_name(record: Result) -> str:
    """The name a model is shown under."""
    return record.model.name


def cell_key(record: Result) -> tuple[str, str, str, str]:
    """(model, dataset, split, task): what one result file measures."""
    return record.model.name, record.dataset.label, record.dataset.split, record.task


def seed_groups(records: Iterable[Result]) -> dict[tuple[str, str, str, str], list[Result]]:
    """Records per ``cell_key``: one per training seed (a single one for single-seed runs; of
    two records of one cell and seed the last is kept), ordered by seed."""
    by_seed: dict[tuple[str, str, str, str], dict[int | None, Result]] = {}
    for r in records:
        by_seed.setdefault(cell_key(r), {})[train_seed(r)] = r
    return {
        k: [runs[s] for s in sorted(runs, key=lambda s: (s is None, s or 0))]
        for k, runs in by_seed.items()
    }


def models_in(records: Iterable[Result]) -> list[str]:
    return sorted({model_name(r) for r in records})


def tasks_in(records: Iterable[Result]) -> list[str]:
    """The tasks of ``records``: registered ones in registry order, then any other by name."""
    present = {r.task for r in records}
    known = task_names()
    return [t for t in known if t in present] + sorted(present - set(known))


def check_baseline(records: Sequence[Result], baseline: str | None) -> None:
    """Raise ConfigError when ``baseline`` names no model in ``records``."""
    if baseline is None:
        return
    names = models_in(records)
    if baseline not in names:
        raise ConfigError(
            f"unknown baseline model {baseline!r}{closest(baseline, names)}; "
            f"models in the results: {', '.join(names) or 'none'}"
        )


def _compatible(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two benchmark dicts agree on every key both know (a failed run may lack the
    revision and counts of the data it never loaded)."""
    return all(a[k] == b[k] for k in a.keys() & b.keys() if a[k] is not None and b[k] is not None)


def protocol_groups(
    records: Sequence[Result], key: Callable[[Result], dict[str, Any]] = Result.benchmark
) -> list[list[Result]]:
    """``records`` split by ``key`` (the benchmark protocol): finished runs by exact protocol,
    then each failed run joins the first group it is compatible with (else starts its own)."""
    groups: dict[str, list[Result]] = {}
    for r in records:
        if r.ok:
            groups.setdefault(digest(key(r)), []).append(r)
    for r in records:
        if r.ok:
            continue
        home = next((g for g in groups.values() if _compatible(key(g[0]), key(r))), None)
        if home is None:
            groups[digest(key(r))] = [r]
        else:
            home.append(r)
    return list(groups.values())


# what a table title says sets its protocol apart, most telling first (at most three)
_VARIANT_ORDER = (
    "protocol", "settings", "items", "texts", "frames", "sampling", "clip_window", "recall_ks",
    "precision", "bootstrap", "seed", "schema", "options", "decoding", "revision",
)  # fmt: skip


def variant_labels(groups: list[list[Result]]) -> list[str]:
    """Per group, what sets its protocol apart from the others of the same table key (``items
    24, texts 120``); '' when there is one group. Toy-scale groups always say so."""
    protos = [g[0].benchmark() for g in groups]
    labels = []
    for i, p in enumerate(protos):
        differ: set[str] = set()
        for j, q in enumerate(protos):
            if j != i:
                differ |= set(differences(p, q))
        keys = [k for k in _VARIANT_ORDER if k in differ]
        if {"items", "texts"} & differ:  # the counts say it; hashes and options only add noise
            keys = [k for k in keys if k not in ("options", "revision")]
        if {"frames", "sampling", "clip_window"} & differ:  # the decoding record repeats them
            keys = [k for k in keys if k != "decoding"]
        parts = [_setting(k, p.get(k)) for k in keys[:3]]
        if any(r.toy for r in groups[i]):
            lim = p.get("limit")
            parts.insert(0, "quick: toy scale" if p.get("quick") else f"--limit {lim}: toy scale")
        labels.append(", ".join(parts))
    return labels


def _setting(key: str, value: Any) -> str:
    if key != "settings":
        return f"{key} {_show(value)}"
    if not value:
        return "plain similarities"
    rest = {k: v for k, v in value.items() if k not in ("rerank", "querybank", "i2t_ranking")}
    text = f"re-ranked: {value['rerank']}" if "rerank" in value else ""
    if value.get("querybank"):
        text += f" (querybank {value['querybank']})"
    grouped = "i2t grouped by item" if value.get("i2t_ranking") == "grouped" else ""
    return ", ".join(x for x in (text, grouped, _show(rest) if rest else "") if x)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(_show, value)) + "]"
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


# ----------------------------------------------------------------------------- tables


@dataclass
class Row:
    model: str  # the row's label: the model name, plus its results folder or settings if needed
    status: str  # "ok", "failed" or "missing"
    record: Result | None  # with several seeds: the pooled record
    delta: Delta | None = None
    runs: list[Result] = field(default_factory=list)  # the ok runs, one per seed
    failed_seeds: list[int] = field(default_factory=list)  # seeds left out: their run failed
    failed_later: bool = False  # a rerun failed after the shown run finished (kept beside it)
    name: str = ""  # the model name (what --baseline names)
    source: str | None = None  # the results folder, when several were collected
    is_baseline: bool = False

    def __post_init__(self) -> None:
        self.name = self.name or self.model

    @property
    def pooled(self) -> bool:
        return len(self.runs) > 1

    def label(self) -> str:
        return f"{self.model} ({len(self.runs)} seeds)" if self.pooled else self.model


@dataclass
class Table:
    """One leaderboard: a (dataset, split, task) group under one protocol, with its rows and
    metric columns."""

    task: str
    dataset: str
    split: str
    columns: list[str]
    rows: list[Row]
    best: dict[str, set[str]] = field(default_factory=dict)  # metric -> row labels marked best
    baseline: str | None = None
    main: str | None = None  # the metric of the delta column
    protocol: dict[str, Any] = field(default_factory=dict)  # Result.benchmark of its results
    variant: str = ""  # what sets this protocol apart from the other tables of the same cell
    toy: bool = False  # a --quick or --limit run: not a benchmark number

    @property
    def title(self) -> str:
        where = f"{self.dataset}/{self.split}" if self.split else self.dataset
        return f"{where} — {self.task}" + (f" [{self.variant}]" if self.variant else "")

    def baseline_row(self) -> Row | None:
        return next((r for r in self.rows if r.is_baseline), None)

    def value(self, row: Row, metric: str) -> float | None:
        return _number(row.record.metrics.get(metric)) if row.record else None

    def interval(self, row: Row, metric: str) -> tuple[float, float] | None:
        """The row's recorded 95% interval of ``metric``, when it holds two finite numbers."""
        ci = row.record.intervals.get(metric) if row.record else None
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            lo, hi = _number(ci[0]), _number(ci[1])
            if lo is not None and hi is not None:
                return lo, hi
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _numeric_metrics(records: Iterable[Result]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for k, v in r.metrics.items():
            if _number(v) is not None:
                seen.setdefault(k, None)
    return list(seen)


def _default_columns(task: str, present: list[str]) -> list[str]:
    """The task's registered columns that are present, then the other metrics present by name.

    A task registered without columns shows every metric present: the per-category accuracies
    (``acc_*``) by name, then the registry's fixed metrics in registry order, then the rest. The
    ED head's per-kind detection rates (``ed_flag_*``, a dozen) show only where registered; the
    others are in the result files and ``--columns``.
    """
    if task not in TASKS:
        order: list[str] = []
    elif TASKS[task].columns:
        order = list(TASKS[task].columns)
    else:
        order = [*sorted(m for m in present if m.startswith("acc_")), *METRICS]
    rest = sorted(m for m in present if m not in order and not m.startswith(ED_FLAG_PREFIX))
    return [m for m in order if m in present] + rest


def _sort_rows(rows: list[Row], metric: str | None) -> list[Row]:
    def key(row: Row) -> tuple:
        rank = {"ok": 0, "failed": 1, "missing": 2}[row.status]
        value = _number(row.record.metrics.get(metric)) if row.record and metric else None
        if value is None:
            return rank, 1, 0.0, row.model
        return rank, 0, -value if higher_is_better(metric) else value, row.model

    return sorted(rows, key=key)


def _choose(
    records: Sequence[Result], task: str | None, dataset: str | None, metrics: Sequence[str] | None
) -> list[Result]:
    """``records`` of ``task`` and ``dataset`` (name or name/split); ConfigError on names
    no record has."""
    present_tasks = tasks_in(records)
    if task is not None and task not in present_tasks:
        raise ConfigError(
            f"no results for task {task!r}{closest(task, present_tasks)}; "
            f"tasks in the results: {', '.join(present_tasks)}"
        )
    chosen = [r for r in records if task is None or r.task == task]
    if dataset is not None:
        names = sorted(
            {r.dataset.label for r in chosen} | {"/".join(cell_key(r)[1:3]) for r in chosen}
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
    return chosen


def build_tables(
    records: Sequence[Result],
    task: str | None = None,
    dataset: str | None = None,
    baseline: str | None = None,
    metrics: Sequence[str] | None = None,
    digits: int = 1,
) -> list[Table]:
    """Group ``records`` into leaderboards, one per (dataset, split, task) and protocol.

    Rows are every model found in ``records`` (any task), so a model lacking a cell shows as
    missing. ``dataset`` filters by name or ``name/split``; ``metrics`` picks the columns.

    Raises:
        ConfigError: an unknown task, dataset, baseline model or metric name.
    """
    if not records:
        raise DataError("no result records to tabulate")
    check_baseline(records, baseline)
    chosen = _choose(records, task, dataset, metrics)
    sources = {r.source for r in records}
    # every (model, results folder) pair gets a row in every table: missing where it has none
    everyone = sorted({(r.model.name, r.source or "") for r in records})
    by_cell: dict[tuple[str, str, str], list[Result]] = {}
    for r in chosen:
        by_cell.setdefault((r.task, r.dataset.label, r.dataset.split), []).append(r)
    order = {t: i for i, t in enumerate(tasks_in(records))}
    tables = []
    cells = sorted(by_cell.items(), key=lambda kv: (order[kv[0][0]], kv[0]))
    for (t, ds, split), cell_records in cells:
        groups = protocol_groups(cell_records)
        labelled = sorted(zip(groups, variant_labels(groups), strict=True),
                          key=lambda gv: (any(r.toy for r in gv[0]), gv[1]))  # fmt: skip
        for group, variant in labelled:
            table = Table(t, ds, split, [], [], baseline=baseline, variant=variant)
            table.protocol, table.toy = group[0].benchmark(), any(r.toy for r in group)
            ok = [r for r in group if r.ok]
            if metrics:
                table.columns = list(metrics)
            else:
                same_task = [r for r in chosen if r.task == t and r.ok]
                table.columns = _default_columns(t, _numeric_metrics(ok or same_task))
            table.rows = _rows(group, everyone, multi_source=len(sources) > 1)
            for row in table.rows:
                row.is_baseline = row.name == baseline
            table.main = main_metric(t, table.columns)
            table.rows = _sort_rows(table.rows, table.main)
            table.best = _best(table, digits)
            if baseline is not None:
                _add_deltas(table)
            tables.append(table)
    return tables


def _rows(group: list[Result], everyone: list[tuple[str, str]], multi_source: bool) -> list[Row]:
    """A table's rows: per (model, results folder), one row per model-side protocol (labelled
    when there are several), pooling training seeds; models without a result are missing."""
    cells: dict[tuple[str, str], list[Result]] = {}
    for r in group:
        cells.setdefault((r.model.name, r.source or ""), []).append(r)
    rows = []
    for name, source in everyone:
        label = f"{name} [{source}]" if multi_source else name
        # a failed run (it never learned the device or preprocessing) joins a variant it fits
        variants = protocol_groups(cells.get((name, source), []), Result.row_protocol)
        if not variants:
            rows.append(Row(label, "missing", None, name=name, source=source or None))
            continue
        protos = [rs[0].row_protocol() for rs in variants]
        for runs, proto in zip(variants, protos, strict=True):
            suffix = _row_variant(proto, protos)
            row = _row(f"{label} ({suffix})" if suffix else label, runs)
            row.name, row.source = name, source or None
            rows.append(row)
    return rows


def _row_variant(proto: dict[str, Any], others: list[dict[str, Any]]) -> str:
    keys: dict[str, None] = {}
    for o in others:
        keys.update(dict.fromkeys(differences(proto, o)))
    return ", ".join(f"{k} {_show(proto.get(k))}" for k in keys)


def _best(table: Table, digits: int) -> dict[str, set[str]]:
    """Rows holding the best value per column, compared at the displayed precision."""
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


def _row(label: str, runs: list[Result]) -> Row:
    """A model's row from its runs of one cell: failed (no run finished), one run as it is, or
    several seeds pooled (``pool_records``). Runs of one seed beyond the first are duplicates
    ``collect`` already reported."""
    by_seed: dict[int | None, Result] = {}
    for r in sorted(runs, key=lambda r: (r.ok, r.created)):
        by_seed[train_seed(r)] = r  # an ok run, then the newest, wins its seed
    ok = sorted((r for r in by_seed.values() if r.ok), key=_seed_key)
    if not ok:
        return Row(label, "failed", None)
    failed = sorted(s for r in by_seed.values() if not r.ok and (s := train_seed(r)) is not None)
    shown = {train_seed(r): r.created for r in ok if r.created}  # when each shown run finished
    later = any(
        not r.ok and train_seed(r) in shown and r.created > shown[train_seed(r)] for r in runs
    )
    record = ok[0] if len(ok) == 1 else pool_records(ok)
    return Row(label, "ok", record, runs=ok, failed_seeds=failed, failed_later=later)


def _seed_key(r: Result) -> tuple[bool, int]:
    s = train_seed(r)
    return s is None, s or 0


def _add_deltas(table: Table) -> None:
    """Each row's delta against the baseline row of its results folder (or the only one)."""
    bases = [r for r in table.rows if r.is_baseline and r.record is not None]
    if not bases or table.main is None:
        return
    for row in table.rows:
        if row.record is None or row.is_baseline:
            continue
        mine = [b for b in bases if b.source == row.source]
        base = mine[0] if mine else bases[0] if len(bases) == 1 else None
        if base is None:
            continue
        if row.pooled or base.pooled:
            row.delta = pooled_paired_delta(row.runs, base.runs, table.main)
        else:
            row.delta = paired_delta(row.record, base.record, table.main)


def leaderboard(
    records: Sequence[Result],
    task: str | None = None,
    dataset: str | None = None,
    baseline: str | None = None,
    fmt: str = "md",
    metrics: Sequence[str] | None = None,
    digits: int = 1,
) -> str:
    """Leaderboard tables for ``records`` as Markdown, CSV, LaTeX or HTML.

    Args:
        records: results, e.g. from ``vilem.results.collect`` (of one or several folders).
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


def rows(
    records: Sequence[Result],
    task: str | None = None,
    dataset: str | None = None,
    baseline: str | None = None,
    metrics: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The leaderboard as plain rows, one per table row: ``dataset``, ``split``, ``task``,
    ``protocol`` (what sets the table apart), ``toy``, ``model``, ``source``, ``status``,
    ``seeds``, then per metric its value, ``<m>_lo``, ``<m>_hi`` and ``<m>_best``, and with a
    baseline ``delta_<main>`` with its interval and ``delta_<main>_significant``. Numbers are
    floats (None when there is none); the CSV format writes exactly these rows."""
    from vilem.report.render import table_rows

    return table_rows(build_tables(records, task, dataset, baseline, metrics))


def frame(records: Sequence[Result], **kwargs: Any):
    """``rows`` as a pandas DataFrame (pandas is optional: ConfigError when it is missing)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ConfigError("a DataFrame needs pandas: pip install pandas") from exc
    return pd.DataFrame(rows(records, **kwargs))
