"""Writing built leaderboard tables (``vilem.report.tables``) as Markdown, CSV, LaTeX or HTML.

Cells are honest about what is not a number: a failed run shows ``failed`` (never 0), a model
without a result for a cell others have shows ``—``. Headers carry the metric's direction (↑/↓),
best values are bold, intervals are written compactly (``±h`` or ``+a/−b``), and a delta column
gives the main metric's paired bootstrap 95% interval with a mark when it excludes 0.
"""

from __future__ import annotations

import csv
import html
import io
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from vilem.errors import ConfigError
from vilem.metrics.info import higher_is_better
from vilem.registry import closest
from vilem.report.compare import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Delta

if TYPE_CHECKING:
    from vilem.report.tables import Row, Table

FORMATS = ("md", "csv", "latex", "html")
MISSING, FAILED = "—", "failed"
SIG_MARK = "†"


def check_format(fmt: str) -> None:
    """Raise ConfigError (with a did-you-mean) when ``fmt`` is not one of FORMATS."""
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown format {fmt!r}{closest(fmt, list(FORMATS))}; formats: {FORMATS}"
        )


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
        if row.failed_later:
            lines.append(
                f"{row.model}: a later run failed (its .failed.json file is kept beside the "
                f"result); the row is the last finished run."
            )
    if table.baseline is not None and not _has_delta(table):
        failed = (base := table.baseline_row()) is not None and base.status == "failed"
        why = "failed here" if failed else "has no result here"
        lines.append(f"No Δ column: the baseline {table.baseline} {why}.")
    elif table.baseline is not None:
        over = "seeds and queries, pairing seeds" if pooled else "queries"
        lines.append(
            f"Δ {table.main}: difference from the baseline {table.baseline}, with a paired "
            f"bootstrap 95% interval over {over} ({BOOTSTRAP_RESAMPLES} resamples, seed "
            f"{BOOTSTRAP_SEED}); {SIG_MARK} the interval excludes 0."
        )
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
            return f'{text}{mark} <span class="ci">{ci}</span>'
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


def _has_delta(table: Table) -> bool:
    """A Δ column only where the baseline has a result in the table (else it is all blanks)."""
    base = table.baseline_row() if table.baseline is not None else None
    return base is not None and base.record is not None


def _table_cells(table: Table, style: _Style) -> tuple[list[str], list[list[str]]]:
    latex = style.fmt == "latex"
    headers = ["model"] + [f"{style.text(m)} {_arrow(m, latex)}" for m in table.columns]
    with_delta = _has_delta(table)
    if with_delta:
        headers.append(
            f"Δ {style.text(table.main or '')}"
            if not latex
            else rf"$\Delta$ {style.text(table.main or '')}"
        )
    rows = []
    for row in table.rows:
        label = style.text(row.label()) + (" (baseline)" if row.is_baseline else "")
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
                cells.append(style.value(v, table.interval(row, m), best))
        if with_delta:
            if row.is_baseline:
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


def table_cells(table: Table, fmt: str = "html", digits: int = 1) -> tuple[list, list, list]:
    """One table's header cells, body rows (one per ``table.rows`` entry, in order) and legend
    lines, each cell formatted for ``fmt`` ("md", "html" or "latex"; html cells are escaped
    HTML). What a report lays out itself; ``render`` writes whole tables."""
    headers, rows = _table_cells(table, _Style(fmt, digits))
    return headers, rows, _legend(table)


def _render_html(tables: list[Table], digits: int) -> str:
    style = _Style("html", digits)
    out = []
    for table in tables:
        headers, rows = _table_cells(table, style)
        body = _tabulate(rows, headers, "unsafehtml")
        legend = "".join(f"<li>{html.escape(line)}</li>" for line in _legend(table))
        # a wide table scrolls inside its own box instead of running past the page
        out.append(
            f'<section class="leaderboard"><h3>{html.escape(table.title)}</h3>\n'
            f'<div class="table-scroll" style="overflow-x: auto; max-width: 100%">\n{body}\n'
            f'</div>\n<ul class="legend">{legend}</ul></section>\n'
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


def table_rows(tables: list[Table]) -> list[dict[str, Any]]:
    """Plain rows of built tables (``vilem.report.tables.rows`` documents the keys)."""
    out = []
    for t in tables:
        for row in t.rows:
            line: dict[str, Any] = {
                "dataset": t.dataset, "split": t.split, "task": t.task,
                "protocol": t.variant, "toy": t.toy, "model": row.label(), "name": row.name,
                "source": row.source, "status": row.status,
                "seeds": len(row.runs) if row.runs else None,
            }  # fmt: skip
            for m in t.columns:
                v = t.value(row, m)
                ci = t.interval(row, m) if v is not None else None
                line[m] = v
                line[f"{m}_lo"], line[f"{m}_hi"] = ci if ci else (None, None)
                line[f"{m}_best"] = row.model in t.best.get(m, ()) if v is not None else None
            if t.baseline is not None and t.main:
                line |= _delta_fields(t, row, t.main)
            out.append(line)
    return out


def _delta_fields(table: Table, row: Row, metric: str) -> dict[str, Any]:
    key = f"delta_{metric}"
    d = None if row.is_baseline else row.delta
    return {
        key: None if d is None else d.value,
        f"{key}_lo": None if d is None else d.lo,
        f"{key}_hi": None if d is None else d.hi,
        f"{key}_significant": None if d is None else d.significant,
        "baseline": row.is_baseline,
    }


def _render_csv(tables: list[Table], digits: int) -> str:
    """One CSV for all tables, numeric throughout: the rows of ``table_rows`` with every
    table's columns (blank where a table has none or there is no number; the ``status``
    column says why), 4 decimals, ``true``/``false`` flags (``*_best``, ``*_significant``)."""
    rows = table_rows(tables)
    header: dict[str, None] = {}
    for r in rows:
        header.update(dict.fromkeys(r))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(header))
    for r in rows:
        writer.writerow([_csv_value(r.get(k)) for k in header])
    return buf.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(round(value, 4))
    return str(value)


def render(tables: list[Table], fmt: str = "md", digits: int = 1) -> str:
    """Write built tables in one of FORMATS."""
    check_format(fmt)
    renderers = {"md": _render_md, "csv": _render_csv, "latex": _render_latex, "html": _render_html}
    return renderers[fmt](tables, digits)
