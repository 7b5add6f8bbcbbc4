"""Training curves from a run's ``log.jsonl``: the losses against the optimizer step, and the
validation numbers on axes of their own (recall@K in %, ranks, RSUM), markers wherever a series
has few points (a run validated once still shows its point).

ViLEM's total loss is ``itc + w(step) * (ED + EC parts)`` with the ED/EC weight ``w`` ramping
linearly from 0 over ``proxy_ramp_steps`` (``vilem.train.optim.proxy_weight_at``): during the
ramp the total can rise while every part falls. The losses panel shades the ramp and draws
``w`` on a second axis, so the rise reads as the schedule, not as divergence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from vilem.errors import DataError
from vilem.report.figure import new_figure, save

_PART_COLOURS = {
    "itc": "#444444", "loss_itc": "#444444",
    "ed_global": "#D55E00", "ed_local": "#E69F00", "loss_ed": "#D55E00",
    "ec_global": "#0072B2", "ec_local": "#56B4E9", "loss_ec": "#0072B2",
}  # fmt: skip
_FEW_POINTS = 3  # series this short are drawn with markers
_RECALL = re.compile(r"val/(t2i|i2t)_R@(\d+)$")
_RANK = re.compile(r"val/(t2i|i2t)_(medr|meanr)$")


@dataclass(frozen=True)
class Ramp:
    """The ED/EC loss-weight schedule: from 0 to ``weight`` over the first ``steps`` steps."""

    steps: int
    weight: float = 1.0

    def at(self, step: float) -> float:
        # vilem.train.optim.proxy_weight_at, for a step of the log
        return self.weight * min(1.0, (step + 1) / (self.steps + 1))


def read_train_log(log_path: str | Path) -> list[dict[str, Any]]:
    """Records of a training ``log.jsonl``: one JSON object per line, blank lines ignored."""
    log_path = Path(log_path)
    if not log_path.is_file():
        raise DataError(f"training log not found: {log_path}")
    rows = []
    with open(log_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"training log {log_path} line {lineno} is not JSON: {exc.msg}"
                ) from exc
            if isinstance(row, dict):
                rows.append(row)
    return rows


Series = dict[str, tuple[list[float], list[float]]]


def _series(rows: list[dict[str, Any]], keep: Callable[[str], bool]) -> Series:
    out: Series = {}
    for r in rows:
        for k, v in r.items():
            if keep(k) and isinstance(v, (int, float)) and not isinstance(v, bool):
                xs, ys = out.setdefault(k, ([], []))
                xs.append(float(r["step"]))
                ys.append(float(v))
    return out


def _is_loss(key: str) -> bool:
    return not key.startswith("val") and (
        "loss" in key.lower() or key == "itc" or key.startswith(("ed_", "ec_"))
    )


def _panels(rows: list[dict[str, Any]]) -> list[tuple[str, Series]]:
    """(y label, series) per panel: losses, validation recall@K, ranks, RSUM and any other
    validation number, each only when the log has it."""
    val = _series(rows, lambda k: k.lower().startswith("val"))
    recalls = {k: v for k, v in val.items() if _RECALL.match(k)}
    ranks = {k: v for k, v in val.items() if _RANK.match(k)}
    rsum = {k: v for k, v in val.items() if k == "val/rsum"}
    other = {k: v for k, v in val.items() if k not in recalls | ranks | rsum}
    panels = [
        ("loss", _series(rows, _is_loss)),
        ("validation recall@K (%)", recalls),
        ("validation rank (lower is better)", ranks),
        ("validation RSUM", rsum),
        ("validation", other),
    ]
    return [(name, s) for name, s in panels if s]


def _order(key: str) -> tuple:
    """Series order in a legend: the total loss first, then by direction and K (or statistic)."""
    m = _RECALL.match(key)
    if m:
        return 1, m.group(1), int(m.group(2))
    m = _RANK.match(key)
    if m:
        return 1, m.group(1), m.group(2)
    return (0 if key == "loss" else 1), key, 0


def _style(key: str, shades: dict[str, float], colour: str | None) -> dict[str, Any]:
    """Line colour and style of one series: the total loss in the model's colour, loss parts
    in fixed colours, validation recalls coloured by K and ranks by statistic (text -> item
    solid, item -> text dashed)."""
    if key == "loss":
        return {"color": colour or "black", "linewidth": 2.0, "zorder": 3}
    if key in _PART_COLOURS:
        return {"color": _PART_COLOURS[key], "linewidth": 1.0}
    if key == "val/rsum":
        return {"color": colour or "black", "linewidth": 1.8}
    m = _RECALL.match(key) or _RANK.match(key)
    if m:
        shade = colormaps["viridis"](shades.get(m.group(2), 0.5))
        t2i = m.group(1) == "t2i"
        return {"color": shade, "linestyle": "-" if t2i else "--", "marker": "o" if t2i else "s"}
    return {"color": colormaps["tab10"](sum(map(ord, key)) % 10), "linewidth": 1.0}


def _shades(keys: list[str]) -> dict[str, float]:
    """A viridis position per recall K or rank statistic among ``keys``."""
    found = sorted({m.group(2) for k in keys if (m := _RECALL.match(k) or _RANK.match(k))},
                   key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))  # fmt: skip
    return {s: 0.1 + 0.75 * i / max(1, len(found) - 1) for i, s in enumerate(found)}


def _plot_series(ax, key: str, series: tuple[list[float], list[float]], style: dict) -> None:
    """One line; markers when it has few points or is a validation series, and the values
    written next to the points of a short validation series."""
    xs, ys = series
    few = len(xs) <= _FEW_POINTS
    if few or key.startswith("val"):
        style = {"marker": "o", **style}
    label = "loss (total)" if key == "loss" else key.removeprefix("val/")
    ax.plot(xs, ys, label=label, markersize=4, **style)
    if few and key.startswith("val"):
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(f"{y:.1f}", (x, y), xytext=(-4, 0), textcoords="offset points",
                        ha="right", va="center", fontsize=7, color=style["color"])  # fmt: skip


def _draw_ramp(ax, ramp: Ramp, last_step: float) -> None:
    end = min(ramp.steps, last_step)
    ax.axvspan(0, end, color="#f0e6d2", alpha=0.6, zorder=0, linewidth=0)
    twin = ax.twinx()
    steps = np.linspace(0, last_step, 200)
    twin.plot(steps, [ramp.at(s) for s in steps], color="#8c6d31", linestyle=":", linewidth=1.4)
    twin.set_ylim(0, ramp.weight * 1.05 or 1.0)
    twin.set_ylabel("ED/EC weight (dotted)", color="#8c6d31", fontsize=7)
    twin.tick_params(axis="y", labelsize=7, colors="#8c6d31")
    ax.text(0.01, 0.02, f"shaded: ED/EC weight ramps 0 → {ramp.weight:g} over {ramp.steps} steps",
            transform=ax.transAxes, fontsize=7, color="#6b5424")  # fmt: skip


def training_curves(
    log_path: str | Path,
    path: str | Path | Sequence[str | Path],
    title: str = "",
    ramp: Ramp | None = None,
    colour: str | None = None,
) -> Path:
    """``training_figure`` written to ``path`` (its suffix sets the format)."""
    return save(training_figure(log_path, title, ramp, colour), path)


def training_figure(
    log_path: str | Path, title: str = "", ramp: Ramp | None = None, colour: str | None = None
) -> Figure:
    """The losses (``loss``, ``itc``, ``ed_*``, ``ec_*``) against ``step``, with the ED/EC
    ramp marked when ``ramp`` is given, and the validation numbers (keys starting with
    ``val``) on axes of their own: recall@K, ranks and RSUM."""
    rows = [r for r in read_train_log(log_path) if isinstance(r.get("step"), (int, float))]
    if not rows:
        raise DataError(f"training log {log_path} has no records with a 'step'")
    panels = _panels(rows)
    if not panels:
        raise DataError(f"training log {log_path} has no loss or validation values")
    cols = 1 if len(panels) == 1 else 2
    nrows = (len(panels) + cols - 1) // cols
    height = 3.4 * nrows + 0.4
    fig = new_figure(6.2 * cols, height)
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    fig.subplots_adjust(wspace=0.38, hspace=0.35, top=1 - 0.55 / height)
    last = max(float(r["step"]) for r in rows)
    for ax, (name, data) in zip(axes, panels, strict=False):
        keys = sorted(data, key=_order)
        shades = _shades(keys)
        for key in keys:
            _plot_series(ax, key, data[key], _style(key, shades, colour))
        proxy = any(k.startswith(("ed_", "ec_", "loss_ed", "loss_ec")) for k in data)
        if name == "loss" and ramp is not None and ramp.steps > 0 and proxy:
            _draw_ramp(ax, ramp, last)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.set_xlim(left=0, right=last * 1.03 if last else 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(keys) > 5 else 1, frameon=False, loc="best")
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig
