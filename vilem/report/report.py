"""A benchmark report from a results folder: ``report.md`` (tables + linked PNG figures) and a
self-contained ``report.html`` (figures embedded as data URIs).

The "Findings" section is generated from the numbers: for every model against the baseline it
says whether the model beats it on retrieval RSUM, on each probe category and on video
transfer, with the paired bootstrap interval of the difference and whether it excludes 0.
Models trained with several seeds are compared over the seeds both have (``pooled_paired_delta``),
and tables and figures show each cell's seeds pooled.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vilem.errors import DataError, VilemError
from vilem.eval.tasks import TASKS
from vilem.io import atomic_write_text, display_path, read_json
from vilem.report import plots
from vilem.report.compare import Delta, pooled_paired_delta
from vilem.report.render import render
from vilem.report.tables import (
    Table,
    build_tables,
    cell_key,
    check_baseline,
    collect,
    model_name,
    models_in,
    seed_groups,
    tasks_in,
)

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; white-space: nowrap; }
th { background: #f3f3f3; }
tbody tr:nth-child(even) { background: #fafafa; }
.ci { color: #666; font-size: 85%; }
.legend { color: #555; font-size: 12px; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
code { background: #f3f3f3; padding: 0 .2em; }
"""


@dataclass
class _Doc:
    """The report as blocks, rendered twice: Markdown and HTML."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def items(self, lines: list[str]) -> None:
        if lines:
            self.blocks.append(("items", lines))

    def tables(self, tables: list) -> None:
        self.blocks.append(("tables", tables))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", (path, caption)))

    def markdown(self, out_dir: Path) -> str:
        parts = []
        for kind, value in self.blocks:
            if kind == "heading":
                parts.append(f"{'#' * value[0]} {value[1]}")
            elif kind == "para":
                parts.append(value)
            elif kind == "items":
                parts.append("\n".join(f"- {line}" for line in value))
            elif kind == "tables":
                parts.append(render(value, "md").rstrip())
            else:
                path, caption = value
                rel = Path(os.path.relpath(path, out_dir)).as_posix()
                parts.append(f"![{caption}]({rel})\n\n*{caption}*")
        return "\n\n".join(parts) + "\n"

    def html(self, title: str) -> str:
        parts = []
        for kind, value in self.blocks:
            if kind == "heading":
                parts.append(f"<h{value[0]}>{_inline_html(value[1])}</h{value[0]}>")
            elif kind == "para":
                parts.append(f"<p>{_inline_html(value)}</p>")
            elif kind == "items":
                parts.append(
                    "<ul>" + "".join(f"<li>{_inline_html(v)}</li>" for v in value) + "</ul>"
                )
            elif kind == "tables":
                parts.append(render(value, "html"))
            else:
                path, caption = value
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                parts.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        body = "\n".join(parts)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n"
        )


def _inline_html(text: str) -> str:
    """Escape, then turn the Markdown we emit (**bold**, `code`) into tags."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


class _Figures:
    """Names figure files uniquely and records figures that could not be drawn."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.used: set[str] = set()
        self.failed: list[str] = []

    def draw(self, stem: str, what: str, fn: Callable[[Path], Path]) -> Path | None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-") or "figure"
        name, n = f"{slug}.png", 1
        while name in self.used:
            n += 1
            name = f"{slug}-{n}.png"
        self.used.add(name)
        try:
            return fn(self.folder / name)
        except VilemError as exc:
            self.failed.append(f"{what}: {exc}")
            return None


# ----------------------------------------------------------------------------- findings


def _fmt(x: float) -> str:
    return f"{x:+.1f}".replace("-", "−")


def finding(model: str, baseline: str, what: str, where: str, delta: Delta) -> str:
    """One plain sentence: does ``model`` beat ``baseline`` on ``what`` at ``where``?"""
    if delta.value is None:
        return f"{model} vs {baseline} on {what} ({where}): cannot compare, {delta.note}."
    if delta.lo is None or delta.hi is None:
        ci = f"95% CI n/a ({delta.note})"
    else:
        ci = f"95% CI [{_fmt(delta.lo)}, {_fmt(delta.hi)}]"
    head = f"{model} **{{}}** {baseline} on {what} ({where}): Δ = {_fmt(delta.value)}, {ci}"
    verdict = delta.verdict
    if verdict == "beats":
        return head.format("beats") + ", significant."
    if verdict == "worse":
        return head.format("does not beat") + "; it is significantly worse."
    if verdict == "tie":
        return head.format("does not beat") + ", not significant."
    return head.format("does not demonstrably beat") + "; significance unknown."


def _where(record: dict[str, Any]) -> str:
    ds = record["dataset"]
    return f"{ds['name']}/{ds.get('split', '')}"


def findings(records: list[dict[str, Any]], baseline: str) -> dict[str, list[str]]:
    """Sentences per model comparing it with ``baseline`` on every cell both finished: RSUM on
    image retrieval, each probe category and the macro mean, RSUM on video retrieval. Runs with
    several training seeds are compared over the seeds both have."""
    cells = seed_groups(records)
    out: dict[str, list[str]] = {}
    for model in models_in(records):
        if model == baseline:
            continue
        lines: list[str] = []
        tally = {"beats": 0, "tie": 0, "worse": 0, "unknown": 0}
        compared = {t for t, spec in TASKS.items() if spec.compared}  # the tasks findings cover
        shared = {k[1:] for k in cells if k[0] in (model, baseline) and k[3] in compared}
        for ds, split, task in sorted(shared):
            runs = {n: cells.get((n, ds, split, task), []) for n in (model, baseline)}
            ok = {n: [r for r in rs if r.get("status", "ok") == "ok"] for n, rs in runs.items()}
            status = {
                n: "missing" if not rs else "ok" if ok[n] else rs[0].get("status", "ok")
                for n, rs in runs.items()
            }
            where = f"{ds}/{split}"
            if status[model] == "missing":
                continue  # the model was not run there: nothing to say about it
            if any(s != "ok" for s in status.values()):
                why = " and ".join(f"{n}'s result is {s}" for n, s in status.items() if s != "ok")
                lines.append(f"{model} vs {baseline} on {task} ({where}): not compared, {why}.")
                continue
            mine, base = ok[model], ok[baseline]
            if task == "retrieval":
                video = mine[0]["dataset"].get("modality") == "video"
                what = "video transfer RSUM" if video else "retrieval RSUM"
                comparisons = [(what, "rsum")]
            else:
                cats = sorted(m for m in mine[0]["metrics"] if m.startswith("acc_"))
                comparisons = [(f"probe '{c.removeprefix('acc_')}'", c) for c in cats]
                comparisons.append(("probe macro accuracy", "macro"))
            for what, metric in comparisons:
                delta = pooled_paired_delta(mine, base, metric)
                tally[delta.verdict if delta.value is not None else "unknown"] += 1
                seeds = f", {delta.n_seeds} seeds" if (delta.n_seeds or 0) > 1 else ""
                lines.append(finding(model, baseline, what, where + seeds, delta))
        n = sum(tally.values())
        if n:
            lines.insert(
                0,
                f"Summary: {model} significantly beats {baseline} in {tally['beats']} of {n} "
                f"comparisons, is significantly worse in {tally['worse']}, shows no significant "
                f"difference in {tally['tie']}, and {tally['unknown']} cannot be tested.",
            )
        else:
            lines.insert(0, f"No finished retrieval or probe cell in common with {baseline}.")
        out[model] = lines
    return out


# ----------------------------------------------------------------------------- report


def _resolve(rel: str, bases: list[Path]) -> Path | None:
    p = Path(rel)
    if p.is_absolute():
        return p if p.is_file() else None
    for base in bases:
        if (base / p).is_file():
            return base / p
    return None


def _bases(record: dict[str, Any], results_dir: Path) -> list[Path]:
    here = Path(record["_path"]).parent
    chain = [here, *here.parents]
    stop = results_dir.resolve().parent
    bases = [d for d in chain if stop == d.resolve() or stop in d.resolve().parents]
    return [*bases, results_dir, results_dir.parent, Path.cwd()]


def build_report(
    results_dir: str | Path,
    out_dir: str | Path,
    baseline: str | None = None,
    title: str = "ViLEM benchmark report",
) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``out_dir``.

    Args:
        results_dir: folder of result files (searched recursively).
        out_dir: where the report goes (created).
        baseline: model every other model is compared with (deltas and findings).
        title: the report's title.

    Returns:
        The path of ``report.md``.

    Raises:
        DataError: the folder holds no readable result file.
        ConfigError: ``baseline`` names no model in the results.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    records, problems = collect(results_dir)
    if not records:
        skipped = f"; {len(problems)} file(s) skipped, e.g. {problems[0]}" if problems else ""
        raise DataError(f"no vilem result files found under {results_dir}{skipped}")
    check_baseline(records, baseline)
    figs = _Figures(out_dir / "figures")
    tables = {task: build_tables(records, task, baseline=baseline) for task in tasks_in(records)}
    ok = _shown_records(tables, records)  # figures show what the tables show: seeds pooled
    failed = [r for r in records if r.get("status") == "failed"]
    doc = _Doc()
    doc.heading(1, title)
    doc.para(
        f"Built from {len(records)} result file(s) under `{results_dir.as_posix()}`: "
        f"{len(models_in(records))} model(s), {len(failed)} failed cell(s), "
        f"{len(problems)} skipped file(s)." + (f" Baseline: **{baseline}**." if baseline else "")
    )
    _findings_section(doc, records, baseline)
    for task, task_tables in tables.items():
        _task_section(doc, figs, task, task_tables, ok, results_dir)
    _training_figures(doc, figs, records, results_dir)
    _problems_section(doc, figs, failed, problems, results_dir)

    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "report.md"
    atomic_write_text(md_path, doc.markdown(out_dir))
    atomic_write_text(out_dir / "report.html", doc.html(title))
    return md_path


def _findings_section(doc: _Doc, records: list[dict[str, Any]], baseline: str | None) -> None:
    doc.heading(2, "Findings")
    if baseline is None:
        doc.para("No baseline was chosen, so no comparisons are made (pass `--baseline MODEL`).")
        return
    per_model = findings(records, baseline)
    if not per_model:
        doc.para(f"No other model shares a retrieval or probe cell with {baseline}.")
    for model, lines in per_model.items():
        doc.heading(3, f"{model} vs {baseline}")
        doc.items(lines)


def _task_section(
    doc: _Doc, figs: _Figures, task: str, tables: list[Table], ok: list, results_dir: Path
) -> None:
    """A task's heading, then each of its tables with the figure of that table's cell."""
    doc.heading(2, TASKS[task].title if task in TASKS else task.capitalize())
    for table in tables:
        doc.tables([table])
        group = [r for r in ok if cell_key(r)[1:] == (table.dataset, table.split, task)]
        if group:
            _cell_figure(doc, figs, task, table, group)
    if task == "retrieval":
        _video_transfer_figure(doc, figs, ok)
    if task == "proofread":
        _proofread_figures(doc, figs, ok, results_dir)


def _cell_figure(doc: _Doc, figs: _Figures, task: str, table: Table, group: list) -> None:
    where = f"{table.dataset}/{table.split}"
    if task == "retrieval":
        path = figs.draw(
            f"recall_{table.dataset}_{table.split}",
            f"recall@K on {where}",
            lambda p, g=group, w=where: plots.recall_at_k(g, p, f"recall@K — {w}"),
        )
        if path:
            doc.figure(path, f"Recall@K per model on {where} (95% intervals).")
    elif task == "probe":
        path = figs.draw(
            f"probes_{table.dataset}_{table.split}",
            f"probe accuracy on {where}",
            lambda p, g=group, w=where: plots.probe_accuracy(g, p, f"probes — {w}"),
        )
        if path:
            doc.figure(path, f"Probe accuracy per category on {where}; dashed: chance.")


def _problems_section(
    doc: _Doc, figs: _Figures, failed: list, problems: list, results_dir: Path
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


def _shown_records(tables: dict[str, list], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The record of every finished row (a cell's seeds pooled), in the order of ``records``."""
    order = {id(r): i for i, r in enumerate(records)}
    rows = [row for ts in tables.values() for t in ts for row in t.rows if row.record is not None]
    rows.sort(key=lambda row: order.get(id(row.runs[0] if row.runs else row.record), 0))
    return [row.record for row in rows]


def _video_transfer_figure(doc: _Doc, figs: _Figures, ok: list) -> None:
    video = [r for r in ok if r["task"] == "retrieval" and r["dataset"].get("modality") == "video"]
    if not video:
        return
    doc.heading(3, "Image → video transfer")
    path = figs.draw("video_transfer", "video transfer", lambda p: plots.video_transfer(video, p))
    if path:
        doc.figure(path, "RSUM on video datasets per model, by setting (zero-shot / fine-tuned).")


def _failed_line(record: dict[str, Any], results_dir: Path) -> str:
    error = record.get("error") or "no error message"
    where = display_path(record["_path"], results_dir)
    return f"{model_name(record)} on {_where(record)} ({record['task']}): {error} (`{where}`)"


def _proofread_figures(doc: _Doc, figs: _Figures, ok: list, results_dir: Path) -> None:
    for r in sorted((r for r in ok if r["task"] == "proofread"), key=cell_key):
        examples = r.get("extra", {}).get("examples")
        if not isinstance(examples, list) or not examples:
            continue
        name, where = model_name(r), _where(r)
        path = figs.draw(
            f"proofread_{name}_{where}",
            f"proofreading examples of {name} on {where}",
            lambda p, e=examples, r=r, t=f"{name} — {where}": plots.proofread_examples(
                e, p, t, base_dirs=_bases(r, results_dir)
            ),
        )
        if path:
            doc.figure(
                path,
                f"Proofreading by {name} on {where}: words coloured by error "
                "probability; boxed words were edited.",
            )


def _val_trend(name: str, log: Path | None) -> str | None:
    """One line: a model's validation RSUM at each validation and the gain of the last interval
    (how far from converged the run stopped); None without validation records."""
    if log is None:
        return None
    try:
        rows = plots.read_train_log(log)
    except DataError:
        return None
    points = [
        (r["step"], r["val/rsum"]) for r in rows if isinstance(r.get("val/rsum"), (int, float))
    ]
    if not points:
        return None
    trend = " → ".join(f"{v:.1f} ({s})" for s, v in points)
    line = f"{name}: validation RSUM (step) {trend}"
    if len(points) > 1:
        (s0, v0), (s1, v1) = points[-2:]
        rel = f" ({(v1 - v0) / v0:+.1%})" if v0 else ""
        line += f"; last {s1 - s0} steps: {v1 - v0:+.1f}{rel}"
    return line


def _negatives(name: str, log: Path | None) -> str | None:
    """One line from the ``negatives.json`` beside a training log; None where there is none."""
    from vilem.train.negatives_report import REPORT_FILE, summary_line

    if log is None or not (log.parent / REPORT_FILE).is_file():
        return None
    try:
        report = read_json(log.parent / REPORT_FILE, "negatives report")
        mix = ", ".join(f"{k} {v}" for k, v in report["mix_pct"].items())
        return f"{name}: {summary_line(report)}; edit mix (% of edits) {mix}"
    except (DataError, KeyError, TypeError, AttributeError):
        return None


def _training_figures(doc: _Doc, figs: _Figures, records: list, results_dir: Path) -> None:
    logs: dict[str, tuple[str, Path | None, str]] = {}
    for r in sorted(records, key=cell_key):
        rel = r.get("extra", {}).get("train_log")
        name = model_name(r)
        if isinstance(rel, str) and rel and name not in logs:
            logs[name] = (rel, _resolve(rel, _bases(r, results_dir)), r["_path"])
    if not logs:
        return
    doc.heading(2, "Training curves")
    doc.items(
        [line for name, (_, path, _) in sorted(logs.items()) if (line := _val_trend(name, path))]
    )
    negatives = [
        line for name, (_, path, _) in sorted(logs.items()) if (line := _negatives(name, path))
    ]
    if negatives:
        doc.para(
            "Negatives each ViLEM run trained on, measured against the synthetic caption grammar "
            "before training (only grammatical edits need the image; a text-only detector's AP "
            "near its prior means the edits cannot be found from the text alone):"
        )
        doc.items(negatives)
    for name, (rel, path, _) in sorted(logs.items()):
        if path is None:
            figs.failed.append(f"training curves of {name}: log {rel} not found")
            continue
        fig = figs.draw(
            f"train_{name}",
            f"training curves of {name}",
            lambda p, log=path, n=name: plots.training_curves(log, p, f"training — {n}"),
        )
        if fig:
            doc.figure(fig, f"Training losses of {name} against the optimizer step.")
