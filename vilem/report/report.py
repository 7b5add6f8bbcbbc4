"""A benchmark report from a results folder: ``report.md`` (tables, figures linked) and a
self-contained ``report.html`` (a Jinja2 template, ``vilem/report/templates``; figures embedded),
with a contents list, a configuration block and figures in ``figures/`` as PNG, SVG or PDF.

"Findings" is one compact table: a row per comparison (each model against its baseline, or the
declared pairs), a column per compared table's main metric (retrieval RSUM, probe macro
accuracy), each cell the paired delta with its 95% interval (``vilem.report.findings``). Models
trained with several seeds are compared over the seeds both have, and tables and figures show
each cell's seeds pooled. Every model keeps one colour in every figure
(``vilem.report.colours``). A report with any toy-scale result (``--quick``, ``--limit``) says so
in a banner at the top.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from vilem.errors import DataError, VilemError
from vilem.eval.tasks import TASKS
from vilem.io import atomic_write_text, display_path
from vilem.report import plots
from vilem.report.colours import colour_of, model_colours
from vilem.report.compare import modality
from vilem.report.document import Doc, FigureFiles
from vilem.report.figure import check_figure_format
from vilem.report.findings import (
    SIG_MARK,
    Comparisons,
    check_pairs,
    column_label,
    default_pairs,
    format_delta,
    metric_label,
    summary_line,
)
from vilem.report.lineage import fine_tune_parents
from vilem.report.render import table_cells
from vilem.report.runinfo import configuration_section
from vilem.report.tables import Table, build_tables, cell_key, check_baseline, models_in, tasks_in
from vilem.report.training import bases, training_section
from vilem.results import Result, collect


class _Figures:
    """Names figure files uniquely, writes them in one format (a PDF with a PNG preview for
    the pages) and records figures that could not be drawn."""

    def __init__(self, folder: Path, fmt: str):
        self.folder, self.fmt = folder, fmt
        self.used: set[str] = set()
        self.failed: list[str] = []

    def draw(self, stem: str, what: str, fn: Callable[[list[Path]], Path]) -> FigureFiles | None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-") or "figure"
        name, n = slug, 1
        while name in self.used:
            n += 1
            name = f"{slug}-{n}"
        self.used.add(name)
        main = self.folder / f"{name}.{self.fmt}"
        preview = self.folder / f"{name}.png" if self.fmt == "pdf" else None
        try:
            fn([main, preview] if preview else [main])
        except VilemError as exc:
            self.failed.append(f"{what}: {exc}")
            return None
        return FigureFiles(main, preview)


def build_report(
    results_dir: str | Path,
    out_dir: str | Path,
    baseline: str | None = None,
    title: str = "ViLEM benchmark report",
    pairs: Sequence[tuple[str, str]] | None = None,
    figures: str = "png",
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/`` into ``out_dir``.

    Args:
        results_dir: folder of result files (searched recursively).
        out_dir: where the report goes (created).
        baseline: the model tables give a delta column against.
        title: the report's title.
        pairs: ``(model, baseline)`` comparisons for the findings (e.g. ``("vilem", "itc")``,
            ``("vilem-video", "itc-video")``); None: every model against ``baseline``.
        figures: the figure files' format: ``png``, ``svg`` or ``pdf`` (with PNG previews).
        notes: paragraphs shown under the title (Markdown: bold, code, links), e.g. where the
            claims this report cannot make are.

    Returns:
        The path of ``report.md``.

    Raises:
        DataError: the folder holds no readable result file.
        ConfigError: ``baseline`` or a pair names no model in the results, a pair compares a
            model with itself, or ``figures`` is not a known format.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    check_figure_format(figures)
    records, problems = collect(results_dir)
    if not records:
        skipped = f"; {len(problems)} file(s) skipped, e.g. {problems[0]}" if problems else ""
        raise DataError(f"no vilem result files found under {results_dir}{skipped}")
    check_baseline(records, baseline)
    chosen = check_pairs(records, pairs) if pairs else default_pairs(records, baseline)
    colours, parents = model_colours(records), fine_tune_parents(records)
    figs = _Figures(out_dir / "figures", figures)
    tables = {task: build_tables(records, task, baseline=baseline) for task in tasks_in(records)}
    shown = _shown_records(tables, records)  # figures show what the tables show: seeds pooled
    failed = [r for r in records if not r.ok]
    doc = Doc()
    toy = [r for r in records if r.toy]
    if toy:
        doc.banners.append(
            f"**Quick report (toy scale).** {len(toy)} of {len(records)} results come from a "
            "`--quick` or `--limit` run: they check that the pipeline works; their numbers are "
            "not benchmark results."
        )
    meta = [
        f"Built from {len(records)} result file(s) under `{results_dir.as_posix()}`: "
        f"{len(models_in(records))} model(s), {len(failed)} failed cell(s), "
        f"{len(problems)} skipped file(s)." + (f" Baseline: **{baseline}**." if baseline else ""),
        *notes,
    ]
    comps = Comparisons(records, chosen)
    _findings_section(doc, comps, colours, baseline)
    configuration_section(doc, records, parents, colours)
    for task, task_tables in tables.items():
        _task_section(doc, figs, task, task_tables, shown, comps, results_dir, colours, parents)
    training_section(doc, figs.draw, records, results_dir, colours, figs.failed)
    _problems_section(doc, figs, failed, problems, results_dir)

    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "report.md"
    atomic_write_text(md_path, doc.markdown(title, meta, out_dir))
    atomic_write_text(out_dir / "report.html", doc.html(title, meta))
    return md_path


# ----------------------------------------------------------------------------- findings


def _findings_section(
    doc: Doc, comps: Comparisons, colours: Mapping[str, str], baseline: str | None
) -> None:
    doc.heading(2, "Findings")
    if not comps.pairs:
        doc.para(
            "No comparison was asked for: pass `--baseline MODEL` (every model against it) or "
            "`--pair MODEL:BASELINE`."
        )
        return
    columns = comps.columns()
    if not columns:
        doc.para("No compared pair shares a finished retrieval or probe table.")
        return
    rows, swatches = [], []
    for pair in comps.pairs:
        deltas = [comps.delta(pair, t) for t in columns]
        seeds = max((d.n_seeds or 1 for d in deltas if d is not None), default=1)
        label = pair.label + (f" ({seeds} seeds)" if seeds > 1 else "")
        rows.append([label, *(format_delta(d) for d in deltas)])
        swatches.append(colour_of(colours, pair.model))
    doc.grid(["comparison", *(f"Δ {column_label(t)}" for t in columns)], rows, "findings",
             swatches)  # fmt: skip
    doc.para(
        "Δ = model − baseline on the table's main metric, with its paired bootstrap 95% "
        "interval (over queries; over seeds and queries where both models were trained with "
        f"several seeds). Bold with {SIG_MARK}: the interval excludes 0. —: the two were not "
        "both evaluated there. Chance models and a model against itself are left out; "
        "per-category deltas are under Probes.",
        cls="legend",
    )
    doc.items([summary_line(comps, pair, columns) for pair in comps.pairs])


# ----------------------------------------------------------------------------- tasks


def _task_section(
    doc: Doc, figs: _Figures, task: str, tables: list[Table], shown: list[Result],
    comps: Comparisons, results_dir: Path, colours: Mapping[str, str],
    parents: Mapping[str, str],
) -> None:  # fmt: skip
    """A task's heading, then each of its tables with that table's figures."""
    doc.heading(2, TASKS[task].title if task in TASKS else task.capitalize())
    for table in tables:
        doc.heading(3, table.title)
        _leaderboard(doc, table, colours)
        group = [row.record for row in table.rows if row.record is not None]
        if group:
            _cell_figure(doc, figs, task, table, group, colours)
        if task == "probe":
            _probe_deltas(doc, figs, comps, table, colours)
    if task == "retrieval":
        _video_transfer_figure(doc, figs, shown, colours, parents)
    if task == "proofread":
        _proofread_figures(doc, figs, shown, results_dir)


def _leaderboard(doc: Doc, table: Table, colours: Mapping[str, str]) -> None:
    """The table without the rows of models not evaluated on it (named in its legend)."""
    # without its baseline's row the table has no Δ column, and its legend says why
    kept = replace(table, rows=[r for r in table.rows if r.status != "missing"])
    notes = []
    absent = [r.model for r in table.rows if r.status == "missing"]
    if absent:
        notes.append(f"Not evaluated here (no result for this table): {', '.join(absent)}.")
    md, html = table_cells(kept, "md"), table_cells(kept, "html")
    md, html = (md[0], md[1], [*md[2], *notes]), (html[0], html[1], [*html[2], *notes])
    doc.leaderboard(md, html, [colour_of(colours, r.name) for r in kept.rows])


def _cell_figure(
    doc: Doc, figs: _Figures, task: str, table: Table, group: list, colours: Mapping[str, str]
) -> None:
    where = f"{table.dataset}/{table.split}"
    stem = f"{table.dataset}_{table.split}" + (f"_{table.variant}" if table.variant else "")
    if task == "retrieval":
        fig = figs.draw(
            f"recall_{stem}", f"recall@K on {where}",
            lambda p, g=group, w=where: plots.recall_at_k(g, p, f"recall@K — {w}", colours),
        )  # fmt: skip
        if fig:
            doc.figure(fig, f"Recall@K per model on {where} (95% intervals).")
    elif task == "probe":
        fig = figs.draw(
            f"probes_{stem}", f"probe accuracy on {where}",
            lambda p, g=group, w=where: plots.probe_accuracy(g, p, f"probes — {w}", colours),
        )  # fmt: skip
        if fig:
            doc.figure(fig, f"Probe accuracy per category on {where}; dashed: chance (50%).")


def _probe_deltas(
    doc: Doc, figs: _Figures, comps: Comparisons, table: Table, colours: Mapping[str, str]
) -> None:
    """Per-category deltas of the compared pairs on one probe table: a table and a forest."""
    pairs = [p for p in comps.pairs_in(table)]
    if not pairs:
        return
    cats = [*sorted(c for c in table.columns if c.startswith("acc_")), "macro"]
    rows = [[metric_label(c), *(format_delta(comps.delta(p, table, c)) for p in pairs)]
            for c in cats]  # fmt: skip
    doc.para(
        f"Per-category Δ accuracy (points) on {table.dataset}/{table.split}, paired bootstrap "
        f"95% intervals; bold with {SIG_MARK}: the interval excludes 0."
    )
    doc.grid(["category", *(f"Δ {p.label}" for p in pairs)], rows, "findings")
    labels = [metric_label(c) for c in cats]
    series = [
        plots.ForestSeries(
            p.label, colour_of(colours, p.model),
            {lab: d for lab, c in zip(labels, cats, strict=True)
             if (d := comps.delta(p, table, c)) is not None},
        )
        for p in pairs
    ]  # fmt: skip
    where = f"{table.dataset}/{table.split}"
    fig = figs.draw(
        f"forest_{table.dataset}_{table.split}", f"per-category deltas on {where}",
        lambda p: plots.forest(labels, series, p, f"Δ probe accuracy — {where}"),
    )  # fmt: skip
    if fig:
        doc.figure(fig, f"Per-category Δ accuracy against the baseline on {where}: dot = Δ, line "
                   "= 95% interval; filled when the interval excludes 0.")  # fmt: skip


def _shown_records(tables: dict[str, list], records: list[Result]) -> list[Result]:
    """The record of every finished row (a cell's seeds pooled), in the order of ``records``."""
    order = {id(r): i for i, r in enumerate(records)}
    rows = [row for ts in tables.values() for t in ts for row in t.rows if row.record is not None]
    rows.sort(key=lambda row: order.get(id(row.runs[0] if row.runs else row.record), 0))
    return [row.record for row in rows]


def _video_transfer_figure(
    doc: Doc, figs: _Figures, shown: list, colours: Mapping[str, str], parents: Mapping[str, str]
) -> None:
    video = [r for r in shown if r.task == "retrieval" and modality(r) == "video" and not r.toy]
    video = video or [r for r in shown if r.task == "retrieval" and modality(r) == "video"]
    if not video:
        return
    doc.heading(3, "Image → video transfer")
    fig = figs.draw(
        "video_transfer", "video transfer",
        lambda p: plots.video_transfer(video, p, colours=colours, parents=parents),
    )  # fmt: skip
    if fig:
        doc.figure(
            fig,
            "RSUM on video data: each method's zero-shot model (hatched, trained on images only) "
            "next to the version fine-tuned from it on videos; error bars: 95% intervals; "
            "dashed: chance (a random ranking of the same gallery).",
        )


def _proofread_figures(doc: Doc, figs: _Figures, shown: list, results_dir: Path) -> None:
    for r in sorted((r for r in shown if r.task == "proofread"), key=cell_key):
        if not r.examples:
            continue
        name, where = r.model.name, f"{r.dataset.label}/{r.dataset.split}"
        fig = figs.draw(
            f"proofread_{name}_{where}", f"proofreading examples of {name} on {where}",
            lambda p, r=r, t=f"{name} — {where}": plots.proofread_examples(
                r.examples, p, t, base_dirs=bases(r, results_dir)
            ),
        )  # fmt: skip
        if fig:
            doc.figure(fig, _proofread_caption(name, where, r))


def _proofread_caption(name: str, where: str, r: Result) -> str:
    items = len({e.media for e in r.examples})
    text = (
        f"Proofreading by {name} on {where}: examples from {items} different "
        f"{'videos (middle frame)' if modality(r) == 'video' else 'images'}; words coloured by "
        "the detector's error probability, edited words boxed; under each caption the original "
        "→ edited word, its probability and the correction head's top-1 (✓: restores it)."
    )
    if all(e.correction is None for e in r.examples):
        text += " EC's corrections are not recorded in these results (an older evaluation)."
    return text


# ----------------------------------------------------------------------------- problems


def _problems_section(
    doc: Doc, figs: _Figures, failed: list, problems: list, results_dir: Path
) -> None:
    """Failed cells, skipped files and figures that could not be drawn."""
    doc.heading(2, "Failed cells")
    if failed:
        doc.items([_failed_line(r, results_dir) for r in sorted(failed, key=cell_key)])
    else:
        doc.para("None.")
    doc.heading(2, "Skipped files")
    doc.items([f"`{display_path(p.path, results_dir)}`: {p.reason}" for p in problems[:200]])
    if len(problems) > 200:
        doc.para(f"... and {len(problems) - 200} more.")
    if not problems:
        doc.para("None.")
    if figs.failed:
        doc.heading(2, "Figures not drawn")
        doc.items(figs.failed)


def _failed_line(record: Result, results_dir: Path) -> str:
    error = record.error or "no error message"
    where = display_path(record.path or "", results_dir)
    place = f"{record.dataset.label}/{record.dataset.split}"
    return f"{record.model.name} on {place} ({record.task}): {error} (`{where}`)"
