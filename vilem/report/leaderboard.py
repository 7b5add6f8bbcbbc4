"""Leaderboards from result files: one row per model, one column per metric, one table per
(dataset, split, task); Markdown, CSV, LaTeX or HTML.

Cells are honest about what is not a number: a failed run shows ``failed`` (never 0), a model
without a result for a cell others have shows ``—``. Best values are marked per column according
to the metric's direction (ranks: lower is better), and with a baseline a delta column gives the
main metric's paired bootstrap 95% interval.

Runs of one cell trained with several seeds (``extra.train_seed``) make ONE row, ``name (n seeds)``:
each metric is the mean over seeds with a two-level (seeds, then queries) bootstrap interval, and
deltas pair the seeds both rows have (see ``vilem.report.compare``).
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from vilem.errors import ConfigError, DataError
from vilem.registry import closest
from vilem.report.compare import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Delta,
    higher_is_better,
    main_metric,
    paired_delta,
    pool_records,
    pooled_paired_delta,
    train_seed,
)
from vilem.results import TASKS, load_result

FORMATS = ("md", "csv", "latex", "html")
DEFAULT_COLUMNS = {
    "retrieval": (
        *(f"t2i_R@{k}" for k in (1, 5, 10)),
        *(f"i2t_R@{k}" for k in (1, 5, 10)),
        "rsum",
        "t2i_medr",
        "t2i_meanr",
        "i2t_medr",
        "i2t_meanr",
    ),
    # ec_accuracy is what vilem.metrics names EC top-1 accuracy; ec_top1 is an older name
    "proofread": ("ed_precision", "ed_recall", "ed_f1", "ed_ap", "ec_accuracy", "ec_top1"),
}
MISSING, FAILED = "—", "failed"
SIG_MARK = "†"


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
    present = {r["task"] for r in records}
    return [t for t in TASKS if t in present] + sorted(present - set(TASKS))


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
    if task == "probe":
        cats = sorted(m for m in present if m.startswith("acc_"))
        order = [*cats, "macro", "overall"]
    else:
        order = list(DEFAULT_COLUMNS.get(task, ()))
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


# ----------------------------------------------------------------------------- formatting


def _fmt(value: float, digits: int, sign: bool = False) -> str:
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return text.replace("-", "−") if sign else text


def _interval_parts(v: float, lo: float, hi: float, digits: int) -> tuple[str, str, str] | None:
    """("±", half, "") when symmetric at this precision, ("+/-", up, down) when not, None when
    the interval does not contain the value (then it is shown as [lo, hi])."""
    if not lo <= v <= hi:
        return None
    up, down = f"{hi - v:.{digits}f}", f"{v - lo:.{digits}f}"
    return ("±", up, "") if up == down else ("+/-", up, down)


def _interval(record: dict[str, Any], metric: str) -> tuple[float, float] | None:
    ci = record.get("intervals", {}).get(metric)
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = _number(ci[0]), _number(ci[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _arrow(metric: str, latex: bool = False) -> str:
    up = higher_is_better(metric)
    if latex:
        return r"$\uparrow$" if up else r"$\downarrow$"
    return "↑" if up else "↓"


def _legend(table: Table) -> list[str]:
    lines = [
        "↑ higher is better, ↓ lower is better; best value per column in bold; "
        "± or +a/−b: 95% bootstrap interval of the metric."
    ]
    pooled = any(row.pooled for row in table.rows)
    if pooled:
        lines.append(
            "(n seeds): the mean over n training seeds; its interval resamples seeds, then each "
            "drawn seed's queries (seeds alone where there are no per-query results)."
        )
    for row in table.rows:
        if row.failed_seeds:
            lines.append(
                f"{row.model}: seed(s) {', '.join(map(str, row.failed_seeds))} failed and are "
                f"left out."
            )
    if table.baseline is not None:
        over = "seeds and queries, pairing seeds" if pooled else "queries"
        lines.append(
            f"Δ {table.main}: difference from the baseline {table.baseline}, with a paired "
            f"bootstrap 95% interval over {over} ({BOOTSTRAP_RESAMPLES} resamples, seed "
            f"{BOOTSTRAP_SEED}); {SIG_MARK} the interval excludes 0."
        )
        base = next(r for r in table.rows if r.model == table.baseline)
        if base.record is None:
            lines.append(f"No delta: the baseline {table.baseline} is {base.status} here.")
        for row in table.rows:
            if row.delta is not None and row.delta.note:
                if row.delta.lo is None:
                    lines.append(f"Interval n/a for {row.model}: {row.delta.note}.")
                else:
                    lines.append(f"Δ of {row.model}: {row.delta.note}.")
    return lines


class _Style:
    """How one output format writes the pieces of a cell."""

    def __init__(self, fmt: str, digits: int):
        self.fmt, self.digits = fmt, digits

    def text(self, s: str) -> str:
        if self.fmt == "html":
            return html.escape(s)
        if self.fmt == "latex":
            return _latex_escape(s)
        return s.replace("|", r"\|")

    def bold(self, s: str) -> str:
        return {"md": f"**{s}**", "html": f"<strong>{s}</strong>", "latex": rf"\textbf{{{s}}}"}[
            self.fmt
        ]

    def value(self, v: float, ci: tuple[float, float] | None, best: bool) -> str:
        d = self.digits
        main = self.bold(_fmt(v, d)) if best else _fmt(v, d)
        if ci is None:
            return main
        parts = _interval_parts(v, *ci, d)
        if self.fmt == "latex":
            if parts is None:
                return rf"{main}\,{{\scriptsize[{_fmt(ci[0], d)}, {_fmt(ci[1], d)}]}}"
            if parts[0] == "±":
                return rf"{main}\,{{\scriptsize$\pm${parts[1]}}}"
            return rf"{main}$^{{+{parts[1]}}}_{{-{parts[2]}}}$"
        if self.fmt == "html":
            if parts is None:
                span = f"[{_fmt(ci[0], d)}, {_fmt(ci[1], d)}]"
            elif parts[0] == "±":
                span = f"±{parts[1]}"
            else:
                span = f"<sup>+{parts[1]}</sup><sub>−{parts[2]}</sub>"
            return f'{main} <span class="ci">{span}</span>'
        if parts is None:
            return f"{main} [{_fmt(ci[0], d)}, {_fmt(ci[1], d)}]"
        if parts[0] == "±":
            return f"{main} ±{parts[1]}"
        return f"{main} +{parts[1]}/−{parts[2]}"

    def status(self, status: str) -> str:
        if status == "failed":
            return {"latex": r"\textit{failed}", "html": "<em>failed</em>"}.get(self.fmt, FAILED)
        return "---" if self.fmt == "latex" else MISSING

    def delta(self, delta: Delta) -> str:
        d = self.digits
        if delta.value is None:
            return self.status("missing")
        text = _fmt(delta.value, d, sign=True)
        if delta.lo is None or delta.hi is None:
            ci = "[n/a]"
        else:
            ci = f"[{_fmt(delta.lo, d, sign=True)}, {_fmt(delta.hi, d, sign=True)}]"
        mark = SIG_MARK if delta.significant else ""
        if self.fmt == "latex":
            text, ci = text.replace("−", "-"), ci.replace("−", "-")
            return rf"{text}\,{{\scriptsize{ci}}}" + (r"$^\dagger$" if mark else "")
        if self.fmt == "html":
            return f'{text} <span class="ci">{ci}</span>{mark}'
        return f"{text} {ci}{mark and ' ' + mark}"


def _latex_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch in "&%$#_{}":
            out.append("\\" + ch)
        elif ch == "\\":
            out.append(r"\textbackslash{}")
        elif ch == "~":
            out.append(r"\textasciitilde{}")
        elif ch == "^":
            out.append(r"\textasciicircum{}")
        else:
            out.append(ch)
    return "".join(out)


def _table_cells(table: Table, style: _Style) -> tuple[list[str], list[list[str]]]:
    latex = style.fmt == "latex"
    headers = ["model"] + [f"{style.text(m)} {_arrow(m, latex)}" for m in table.columns]
    if table.baseline is not None:
        headers.append(
            f"Δ {style.text(table.main or '')}"
            if not latex
            else rf"$\Delta$ {style.text(table.main or '')}"
        )
    rows = []
    for row in table.rows:
        label = style.text(row.label()) + (" (baseline)" if row.model == table.baseline else "")
        cells = [label]
        for m in table.columns:
            if row.record is None:
                cells.append(style.status(row.status))
                continue
            v = table.value(row, m)
            if v is None:
                cells.append(style.status("missing"))
            else:
                best = row.model in table.best.get(m, ())
                cells.append(style.value(v, _interval(row.record, m), best))
        if table.baseline is not None:
            if row.model == table.baseline and row.record is not None:
                cells.append("baseline")
            elif row.record is None:
                cells.append(style.status(row.status))
            elif row.delta is None:
                cells.append(style.status("missing"))
            else:
                cells.append(style.delta(row.delta))
        rows.append(cells)
    return headers, rows


def _render_md(tables: list[Table], digits: int) -> str:
    style = _Style("md", digits)
    out = []
    for table in tables:
        headers, rows = _table_cells(table, style)
        body = _tabulate(rows, headers, "github")
        legend = "\n".join(f"- {line}" for line in _legend(table))
        out.append(f"### {table.title}\n\n{body}\n\n{legend}\n")
    return "\n".join(out)


def _tabulate(rows: list, headers: list, fmt: str) -> str:
    """Model names left, numbers right, cells kept exactly as formatted."""
    return tabulate(
        rows,
        headers=headers,
        tablefmt=fmt,
        colalign=("left",) + ("right",) * (len(headers) - 1),
        disable_numparse=True,
    )


def _render_html(tables: list[Table], digits: int) -> str:
    style = _Style("html", digits)
    out = []
    for table in tables:
        headers, rows = _table_cells(table, style)
        body = _tabulate(rows, headers, "unsafehtml")
        legend = "".join(f"<li>{html.escape(line)}</li>" for line in _legend(table))
        out.append(
            f'<section class="leaderboard"><h3>{html.escape(table.title)}</h3>\n{body}\n'
            f'<ul class="legend">{legend}</ul></section>\n'
        )
    return "\n".join(out)


def _render_latex(tables: list[Table], digits: int) -> str:
    style = _Style("latex", digits)
    out = []
    for table in tables:
        headers, rows = _table_cells(table, style)
        body = _tabulate(rows, headers, "latex_raw")
        # tabulate's three \hline become booktabs rules (needs \usepackage{booktabs})
        for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
            body = body.replace(r"\hline", rule, 1)
        notes = "\n".join(f"% {line}" for line in _legend(table))
        title = table.title.replace("—", "--")
        out.append(f"% {title} (requires \\usepackage{{booktabs}})\n{notes}\n{body}\n")
    return "\n".join(out)


def _render_csv(tables: list[Table], digits: int) -> str:
    """One CSV for all tables: a dataset/split/task/status prefix, then per metric the value
    (``*`` suffix: best in its table; ``failed``/``—`` when there is no number) and its interval
    bounds, and with a baseline the delta, its interval and whether it excludes 0."""
    columns: dict[str, None] = {}
    deltas: dict[str, None] = {}
    for t in tables:
        columns.update(dict.fromkeys(t.columns))
        if t.baseline is not None and t.main:
            deltas.setdefault(t.main, None)
    # a seeds column only when some row pools seeds: single-seed CSVs stay as they were
    seeds = any(row.pooled for t in tables for row in t.rows)
    header = ["dataset", "split", "task", "model", "status"] + (["seeds"] if seeds else [])
    for m in columns:
        header += [f"{m} {_arrow(m)}", f"{m}_lo", f"{m}_hi"]
    for m in deltas:
        header += [f"delta_{m}", f"delta_{m}_lo", f"delta_{m}_hi", f"delta_{m}_significant"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for t in tables:
        for row in t.rows:
            line = [t.dataset, t.split, t.task, row.model, row.status]
            if seeds:
                line.append(len(row.runs) if row.runs else "")
            for m in columns:
                if m not in t.columns:
                    line += ["", "", ""]
                elif row.record is None:
                    line += [FAILED if row.status == "failed" else MISSING, "", ""]
                elif (v := t.value(row, m)) is None:
                    line += [MISSING, "", ""]
                else:
                    ci = _interval(row.record, m)
                    mark = "*" if row.model in t.best.get(m, ()) else ""
                    bounds = [round(ci[0], 4), round(ci[1], 4)] if ci else ["", ""]
                    line += [f"{round(v, 4)}{mark}", *bounds]
            for m in deltas:
                line += _csv_delta(t, row, m)
            writer.writerow(line)
    return buf.getvalue()


def _csv_delta(table: Table, row: Row, metric: str) -> list[Any]:
    if table.main != metric or table.baseline is None:
        return ["", "", "", ""]
    if row.model == table.baseline and row.record is not None:
        return ["baseline", "", "", ""]
    d = row.delta
    if d is None or d.value is None:
        return [FAILED if row.status == "failed" else MISSING, "", "", ""]
    if d.lo is None:
        return [round(d.value, 4), "", "", "n/a"]
    return [round(d.value, 4), round(d.lo, 4), round(d.hi, 4), "yes" if d.significant else "no"]


def render(tables: list[Table], fmt: str = "md", digits: int = 1) -> str:
    """Write built tables in one of FORMATS."""
    renderers = {"md": _render_md, "csv": _render_csv, "latex": _render_latex, "html": _render_html}
    if fmt not in renderers:
        raise ConfigError(
            f"unknown format {fmt!r}{closest(fmt, list(FORMATS))}; formats: {FORMATS}"
        )
    return renderers[fmt](tables, digits)


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
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown format {fmt!r}{closest(fmt, list(FORMATS))}; formats: {FORMATS}"
        )
    tables = build_tables(records, task, dataset, baseline, metrics, digits)
    return render(tables, fmt, digits)
