"""Report figures: recall@K curves, per-category probe accuracy, the paired zero-shot / fine-tuned
video-transfer chart, a forest plot of per-category deltas, training curves
(``vilem.report.plot_training``) and proofreading examples (``vilem.report.plot_proofread``).

Every function takes the path(s) to write (the suffix sets the format, see
``vilem.report.figure.save``) and returns the first. Colours come from a ``{model: colour}``
mapping (``vilem.report.colours.model_colours``) so one model has one colour in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vilem.errors import DataError
from vilem.metrics.info import DIRECTIONS, RECALL_KS
from vilem.report.colours import CHANCE_COLOUR, colour_of
from vilem.report.compare import Delta
from vilem.report.figure import new_figure, save
from vilem.report.lineage import FINE_TUNED, base_model_name, is_chance, setting_of
from vilem.report.plot_proofread import _example_image, _words, proofread_examples
from vilem.report.plot_training import Ramp, read_train_log, training_curves
from vilem.results import Result

__all__ = [
    "CHANCE", "Ramp", "TransferGroup", "_example_image", "_words", "base_model_name",
    "chance_rsum", "forest", "probe_accuracy", "proofread_examples", "read_train_log",
    "recall_at_k", "setting_of", "training_curves", "video_transfer",
]  # fmt: skip

CHANCE = 50.0  # text-only chance of a two-way probe
_DIRECTION_TITLE = {"t2i": "text → item", "i2t": "item → text"}
Paths = str | Path | Sequence[str | Path]


def _yerr(record: Result, metric: str, value: float) -> tuple[float, float]:
    """Error-bar lengths below and above ``value`` from the record's 95% interval (0 if none)."""
    ci = record.intervals.get(metric)
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        try:
            lo, hi = float(ci[0]), float(ci[1])
        except (TypeError, ValueError):
            return 0.0, 0.0
        return max(0.0, value - lo), max(0.0, hi - value)
    return 0.0, 0.0


def _metric(record: Result, name: str) -> float | None:
    v = record.metrics.get(name)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _legend_right(ax) -> None:
    if not ax.get_legend_handles_labels()[0]:
        return
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def recall_at_k(
    records: Sequence[Result],
    path: Paths,
    title: str = "",
    colours: Mapping[str, str] | None = None,
) -> Path:
    """R@1/5/10 per model, one panel per direction, error bars from the 95% intervals."""
    fig = new_figure(9.5, 3.6)
    axes = fig.subplots(1, 2, sharey=True)
    top = 0.0
    for ax, direction in zip(axes, DIRECTIONS, strict=True):
        for rec in records:
            ks, values, errs = [], [], []
            for k in RECALL_KS:
                v = _metric(rec, f"{direction}_R@{k}")
                if v is not None:
                    ks.append(k)
                    values.append(v)
                    errs.append(_yerr(rec, f"{direction}_R@{k}", v))
            if not ks:
                continue
            yerr = np.asarray(errs).T if any(e != (0.0, 0.0) for e in errs) else None
            top = max(top, *(v + e[1] for v, e in zip(values, errs, strict=True)))
            ax.errorbar(
                ks, values, yerr=yerr, marker="o", capsize=3,
                color=colour_of(colours, rec.model.name), label=rec.model.name,
                linestyle=":" if is_chance(rec) else "-",
            )  # fmt: skip
        ax.set_xticks(list(RECALL_KS))
        ax.set_xlabel("K")
        ax.set_title(_DIRECTION_TITLE[direction])
        ax.set_ylim(0, min(100.0, max(10.0, top * 1.12)))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall@K (%)")
    _legend_right(axes[1])
    if title:
        fig.suptitle(title, y=1.04)
    return save(fig, path)


def probe_accuracy(
    records: Sequence[Result],
    path: Paths,
    title: str = "",
    colours: Mapping[str, str] | None = None,
) -> Path:
    """Grouped bars: accuracy per probe category (and the macro mean) per model, with 95%
    interval error bars and the 50% chance line."""
    cats = sorted({m for r in records for m in r.metrics if m.startswith("acc_")})
    groups = [*cats, "macro"]
    labels = [c.removeprefix("acc_").replace("_bal", " (bal.)") for c in cats] + ["macro"]
    n = max(1, len(records))
    width = 0.8 / n
    fig = new_figure(max(6.0, 0.9 * len(groups) + 2.5), 3.8)
    ax = fig.subplots()
    x = np.arange(len(groups))
    for i, rec in enumerate(records):
        values, errs = [], []
        for g in groups:
            v = _metric(rec, g)
            values.append(np.nan if v is None else v)
            errs.append((0.0, 0.0) if v is None else _yerr(rec, g, v))
        ax.bar(
            x - 0.4 + width * (i + 0.5), values, width, yerr=np.asarray(errs).T, capsize=2,
            color=colour_of(colours, rec.model.name), label=rec.model.name,
        )  # fmt: skip
    ax.axhline(CHANCE, color="black", linestyle="--", linewidth=1, label="chance (50%)")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)  # room for the error bars of near-perfect categories
    ax.grid(axis="y", alpha=0.3)
    _legend_right(ax)
    if title:
        ax.set_title(title)
    return save(fig, path)


# ----------------------------------------------------------------------------- transfer


def chance_rsum(record: Result) -> float | None:
    """The RSUM of a random ranking on the record's data: text -> item hits one item among N
    (K/N); item -> text hits when any of its c = T/N captions is among the top K of T texts.
    None without item and text counts."""
    items, texts = record.dataset.counts.get("items"), record.dataset.counts.get("texts")
    if not isinstance(items, int) or not isinstance(texts, int) or items < 1 or texts < items:
        return None
    ks = record.protocol.recall_ks if record.protocol else RECALL_KS
    per_item = texts / items
    total = 0.0
    for k in ks:
        total += min(1.0, k / items)
        miss = 1.0  # P(none of the item's captions in the top k), drawn without replacement
        for j in range(min(k, texts)):
            miss *= max(0.0, (texts - per_item - j) / (texts - j))
        total += 1.0 - miss
    return 100.0 * total if math.isfinite(total) else None


@dataclass
class TransferGroup:
    """One method on one video dataset: its zero-shot record and its fine-tuned record."""

    method: str
    zero_shot: Result | None
    fine_tuned: Result | None


def transfer_groups(records: Sequence[Result], parents: Mapping[str, str]) -> list[TransferGroup]:
    """Pair each fine-tuned record with the zero-shot record of the model it started from;
    chance models are left out (the chart draws chance as a line)."""
    shown = [r for r in records if not is_chance(r)]
    by_name = {r.model.name: r for r in shown}
    groups: dict[str, TransferGroup] = {}
    for r in shown:
        if setting_of(r) == FINE_TUNED and parents.get(r.model.name) in by_name:
            parent = parents[r.model.name]
            groups.setdefault(parent, TransferGroup(parent, by_name[parent], None)).fine_tuned = r
        elif setting_of(r) == FINE_TUNED:
            groups.setdefault(r.model.name, TransferGroup(r.model.name, None, r))
        else:
            groups.setdefault(r.model.name, TransferGroup(r.model.name, r, None)).zero_shot = r
    return [groups[k] for k in sorted(groups)]


def video_transfer(
    records: Sequence[Result],
    path: Paths,
    title: str = "",
    colours: Mapping[str, str] | None = None,
    parents: Mapping[str, str] | None = None,
) -> Path:
    """RSUM on each video dataset: per method, its zero-shot bar (hatched) next to its
    fine-tuned version, with 95% intervals, the values written on the bars and a dashed chance
    line (a random ranking, ``chance_rsum``; else a chance model's value)."""
    panels: dict[str, list[Result]] = {}
    for r in records:
        panels.setdefault(f"{r.dataset.label}/{r.dataset.split}", []).append(r)
    if not panels:
        raise DataError("no video retrieval results to plot")
    fig = new_figure(max(6.0, 5.5 * len(panels)), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    for ax, (name, recs) in zip(axes, sorted(panels.items()), strict=True):
        groups = transfer_groups(recs, parents or {})
        for i, g in enumerate(groups):
            for j, (rec, setting) in enumerate(
                ((g.zero_shot, "zero-shot"), (g.fine_tuned, "fine-tuned"))
            ):
                if rec is None or (v := _metric(rec, "rsum")) is None:
                    continue
                x, err = i + (j - 0.5) * 0.38, _yerr(rec, "rsum", v)
                ax.bar(
                    x, v, 0.36, yerr=np.asarray([err]).T, capsize=3,
                    color=colour_of(colours, rec.model.name), edgecolor="black",
                    linewidth=0.6, hatch="//" if setting == "zero-shot" else None,
                    label=f"{rec.model.name} ({setting})",
                )  # fmt: skip
                ax.annotate(f"{v:.1f}", (x, v + err[1]), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8)  # fmt: skip
        chance = _chance_line(recs)
        if chance is not None:
            ax.axhline(chance, color=CHANCE_COLOUR, linestyle="--", linewidth=1.2,
                       label=f"chance ({chance:.1f})")  # fmt: skip
        ax.set_xticks(range(len(groups)), [g.method for g in groups])
        ax.set_xlim(-0.7, len(groups) - 0.3)
        ax.set_title(name)
        ax.set_ylabel("RSUM (of 600)")
        ax.set_ylim(0, max([ax.get_ylim()[1] * 1.08, (chance or 0) * 1.2, 10]))
        ax.grid(axis="y", alpha=0.3)
        _legend_right(ax)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def _chance_line(records: Sequence[Result]) -> float | None:
    for r in records:
        if (c := chance_rsum(r)) is not None:
            return c
    chance = [v for r in records if is_chance(r) and (v := _metric(r, "rsum")) is not None]
    return chance[0] if chance else None


# ----------------------------------------------------------------------------- forest


@dataclass
class ForestSeries:
    """One comparison in a forest plot: its label, colour and a delta per row label."""

    label: str
    colour: str
    deltas: dict[str, Delta]


def forest(
    rows: Sequence[str], series: Sequence[ForestSeries], path: Paths, title: str = "",
    xlabel: str = "Δ accuracy (points), model − baseline",
) -> Path:  # fmt: skip
    """Deltas with their 95% intervals, one line per row label (e.g. a probe category) and one
    marker per comparison: filled when the interval excludes 0, hollow when it does not."""
    if not rows or not series:
        raise DataError("no deltas to plot")
    fig = new_figure(8.5, 0.45 * len(rows) * max(1, len(series)) ** 0.5 + 1.4)
    ax = fig.subplots()
    # the first comparison on top within each row, as in the legend
    offsets = np.linspace(0.25, -0.25, len(series)) if len(series) > 1 else [0.0]
    for n, (s, off) in enumerate(zip(series, offsets, strict=True)):
        label: str | None = s.label  # on the first marker drawn only
        marker = "osD^v"[n % 5]  # shapes tell apart comparisons of one colour family
        for y, row in enumerate(rows):
            d = s.deltas.get(row)
            if d is None or d.value is None:
                continue
            yy = len(rows) - 1 - y + off
            if d.lo is not None and d.hi is not None:
                ax.plot([d.lo, d.hi], [yy, yy], color=s.colour, linewidth=1.6)
            filled = bool(d.significant)
            ax.plot(
                d.value, yy, marker, markersize=6, color=s.colour,
                markerfacecolor=s.colour if filled else "white", markeredgewidth=1.5,
                label=label,
            )  # fmt: skip
            label = None
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), list(reversed(rows)))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    _legend_right(ax)
    ax.text(1.01, 0.0, "filled: interval excludes 0", transform=ax.transAxes, fontsize=7,
            va="bottom", color="#555555")  # fmt: skip
    if title:
        ax.set_title(title)
    return save(fig, path)
