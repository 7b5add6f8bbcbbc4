"""Report figures (PNG, matplotlib's Agg canvas): recall@K curves, per-category probe accuracy,
training curves, image -> video transfer, and proofreading examples coloured by error probability.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas rather than pyplot, so
drawing needs no display and leaves no global state behind. Each function writes its PNG
atomically and returns the path.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from vilem.errors import DataError
from vilem.io import atomic_write_bytes
from vilem.metrics.info import DIRECTIONS, RECALL_KS

CHANCE = 50.0  # text-only chance of a two-way probe
_DPI = 110
_SPECIAL_TOKENS = {"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "<|endoftext|>"}
_DIRECTION_TITLE = {"t2i": "text → item", "i2t": "item → text"}


def _model(record: dict[str, Any]) -> str:
    return str(record["model"].get("name") or record["model"].get("spec"))


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _yerr(record: dict[str, Any], metric: str, value: float) -> tuple[float, float]:
    """Error-bar lengths below and above ``value`` from the record's 95% interval (0 if none)."""
    ci = record.get("intervals", {}).get(metric)
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        try:
            lo, hi = float(ci[0]), float(ci[1])
        except (TypeError, ValueError):
            return 0.0, 0.0
        return max(0.0, value - lo), max(0.0, hi - value)
    return 0.0, 0.0


def _metric(record: dict[str, Any], name: str) -> float | None:
    v = record["metrics"].get(name)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def recall_at_k(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """R@1/5/10 per model, one panel per direction, error bars from the 95% intervals."""
    fig = _new_figure(10, 4)
    axes = fig.subplots(1, 2, sharey=True)
    colors = colormaps["tab10"]
    for ax, direction in zip(axes, DIRECTIONS, strict=True):
        for i, rec in enumerate(records):
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
            ax.errorbar(
                ks,
                values,
                yerr=yerr,
                marker="o",
                capsize=3,
                color=colors(i % 10),
                label=_model(rec),
            )
        ax.set_xticks(list(RECALL_KS))
        ax.set_xlabel("K")
        ax.set_title(_DIRECTION_TITLE[direction])
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall@K (%)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def probe_accuracy(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Grouped bars: accuracy per probe category (and the macro mean) per model, with 95%
    interval error bars and the 50% chance line."""
    cats = sorted({m for r in records for m in r["metrics"] if m.startswith("acc_")})
    groups = [*cats, "macro"]
    labels = [c.removeprefix("acc_") for c in cats] + ["macro"]
    n = max(1, len(records))
    width = 0.8 / n
    fig = _new_figure(max(6.0, 1.1 * len(groups) + 2), 4)
    ax = fig.subplots()
    colors = colormaps["tab10"]
    x = np.arange(len(groups))
    for i, rec in enumerate(records):
        values, errs = [], []
        for g in groups:
            v = _metric(rec, g)
            values.append(np.nan if v is None else v)
            errs.append((0.0, 0.0) if v is None else _yerr(rec, g, v))
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            values,
            width,
            yerr=np.asarray(errs).T,
            capsize=2,
            color=colors(i % 10),
            label=_model(rec),
        )
    ax.axhline(CHANCE, color="black", linestyle="--", linewidth=1, label="chance (50%)")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)  # room for the error bars of near-perfect categories
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    return _save(fig, path)


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


def training_curves(log_path: str | Path, path: str | Path, title: str = "") -> Path:
    """The total loss and its parts (``loss``, ``itc``, ``ed_*``, ``ec_*``) against ``step``;
    validation numbers (keys starting with ``val``) in a second panel when the log has them."""
    rows = [r for r in read_train_log(log_path) if isinstance(r.get("step"), (int, float))]
    if not rows:
        raise DataError(f"training log {log_path} has no records with a 'step'")

    def series(keep) -> dict[str, tuple[list[float], list[float]]]:
        out: dict[str, tuple[list[float], list[float]]] = {}
        for r in rows:
            for k, v in r.items():
                if keep(k) and isinstance(v, (int, float)) and not isinstance(v, bool):
                    xs, ys = out.setdefault(k, ([], []))
                    xs.append(float(r["step"]))
                    ys.append(float(v))
        return out

    losses = series(lambda k: "loss" in k.lower() or k == "itc" or k.startswith(("ed_", "ec_")))
    vals = series(lambda k: k.lower().startswith("val"))
    if not losses and not vals:
        raise DataError(f"training log {log_path} has no loss or validation values")
    panels = [(name, s) for name, s in (("loss", losses), ("validation", vals)) if s]
    fig = _new_figure(6 * len(panels), 4)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, data) in zip(axes, panels, strict=True):
        for key in sorted(data):
            xs, ys = data[key]
            ax.plot(xs, ys, label=key, linewidth=1.2 if key == "loss" else 0.9)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


_ZERO_SHOT = re.compile(r"zero[-_ ]?shot|(^|[-_ ])zs($|[-_ ])", re.I)
_FINE_TUNED = re.compile(r"fine[-_ ]?tun(ed|e|ing)|(^|[-_ ])ft($|[-_ ])", re.I)


def setting_of(record: dict[str, Any]) -> str | None:
    """``zero-shot`` / ``fine-tuned`` (or any other label) from ``extra.setting``, else from the
    model's name; None when neither says."""
    setting = record.get("extra", {}).get("setting")
    if isinstance(setting, str) and setting:
        return setting
    name = _model(record)
    if _ZERO_SHOT.search(name):
        return "zero-shot"
    if _FINE_TUNED.search(name):
        return "fine-tuned"
    return None


def base_model_name(record: dict[str, Any]) -> str:
    """The model's name without a zero-shot / fine-tuned marker, to pair the two settings."""
    name = _model(record)
    stripped = _FINE_TUNED.sub(" ", _ZERO_SHOT.sub(" ", name)).strip(" -_")
    return stripped or name


def video_transfer(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """RSUM on video datasets: one panel per (dataset, split), bars per model grouped by
    setting (zero-shot vs fine-tuned) when records say which."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(f"{r['dataset']['name']}/{r['dataset'].get('split', '')}", []).append(r)
    if not groups:
        raise DataError("no video retrieval results to plot")
    fig = _new_figure(max(6.0, 5.0 * len(groups)), 4)
    axes = np.atleast_1d(fig.subplots(1, len(groups), squeeze=False)[0])
    colors = colormaps["tab10"]
    for ax, (name, recs) in zip(axes, sorted(groups.items()), strict=True):
        order = {"zero-shot": 0, "fine-tuned": 1}
        settings = sorted({setting_of(r) or "—" for r in recs}, key=lambda s: (order.get(s, 2), s))
        bases = sorted({base_model_name(r) for r in recs})
        x = np.arange(len(bases))
        width = 0.8 / len(settings)
        for j, setting in enumerate(settings):
            values, errs = [], []
            for b in bases:
                match = [
                    r for r in recs if base_model_name(r) == b and (setting_of(r) or "—") == setting
                ]
                v = _metric(match[0], "rsum") if match else None
                values.append(np.nan if v is None else v)
                errs.append((0.0, 0.0) if v is None else _yerr(match[0], "rsum", v))
            ax.bar(
                x - 0.4 + width * (j + 0.5),
                values,
                width,
                yerr=np.asarray(errs).T,
                capsize=2,
                color=colors(j % 10),
                label=setting,
                hatch="//" if setting == "zero-shot" else None,
            )
        ax.set_xticks(x, bases, rotation=20, ha="right")
        ax.set_title(name)
        ax.set_ylabel("RSUM")
        ax.grid(axis="y", alpha=0.3)
        if len(settings) > 1 or settings != ["—"]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# ----------------------------------------------------------------------------- proofreading


def _words(example: dict[str, Any], i: int) -> list[tuple[str, float, bool]]:
    """(word, error probability, edited) with word pieces (``##x``) merged into their word
    (max probability, edited if any piece is) and special tokens dropped."""
    tokens, probs, errors = (
        example.get("tokens"),
        example.get("error_prob"),
        example.get("is_error"),
    )
    if not isinstance(tokens, list) or not isinstance(probs, list):
        raise DataError(f"proofreading example {i} needs 'tokens' and 'error_prob' lists")
    if errors is None:
        errors = [0] * len(tokens)
    if not (len(tokens) == len(probs) == len(errors)):
        raise DataError(
            f"proofreading example {i}: tokens, error_prob and is_error differ in length "
            f"({len(tokens)}, {len(probs)}, {len(errors)})"
        )
    words: list[tuple[str, float, bool]] = []
    for tok, p, e in zip(tokens, probs, errors, strict=True):
        tok = str(tok)
        if tok in _SPECIAL_TOKENS:
            continue
        try:
            prob = min(1.0, max(0.0, float(p)))
        except (TypeError, ValueError) as exc:
            raise DataError(f"proofreading example {i}: error_prob {p!r} is not a number") from exc
        if tok.startswith("##") and words:
            w, wp, we = words[-1]
            words[-1] = (w + tok[2:], max(wp, prob), we or bool(e))
        else:
            words.append((tok, prob, bool(e)))
    return words


def _example_image(example: dict[str, Any], base_dirs: Sequence[Path]) -> np.ndarray | None:
    """The example's image, or its first frames side by side; None when none can be read."""
    from PIL import Image

    paths = example.get("frames") or ([example["image"]] if example.get("image") else [])
    if isinstance(paths, str):
        paths = [paths]
    images = []
    for p in list(paths)[:3]:
        candidates = [Path(p)] if Path(p).is_absolute() else [d / p for d in base_dirs]
        for c in [*candidates, Path(p)]:
            try:
                with Image.open(c) as im:
                    im = im.convert("RGB")
                    im.thumbnail((224, 224))
                    images.append(np.asarray(im))
                break
            except OSError:
                continue
    if not images:
        return None
    height = min(im.shape[0] for im in images)
    return np.concatenate([im[:height] for im in images], axis=1)


def proofread_examples(
    examples: Sequence[dict[str, Any]],
    path: str | Path,
    title: str = "",
    max_examples: int = 6,
    base_dirs: Sequence[str | Path] = (),
) -> Path:
    """Each example's words coloured by the error-detection head's probability (red = likely
    an error), words that really were edited boxed, next to the image or first frames.

    Args:
        examples: dicts with ``tokens``, ``error_prob``, ``is_error`` and ``image`` (a path or
            None) or ``frames`` (paths).
        path: where the PNG goes.
        title: figure title.
        max_examples: how many examples are drawn.
        base_dirs: folders relative image paths are looked up in.
    """
    examples = list(examples)[:max_examples]
    if not examples:
        raise DataError("no proofreading examples to draw")
    dirs = [Path(d) for d in base_dirs]
    cmap, norm = colormaps["Reds"], Normalize(0.0, 1.0)
    rows = len(examples)
    fig = _new_figure(11, 1.9 * rows + 0.8)
    grid = fig.add_gridspec(rows + 1, 2, width_ratios=[1, 3.2], height_ratios=[1] * rows + [0.12])
    renderer = fig.canvas.get_renderer()
    for i, example in enumerate(examples):
        words = _words(example, i)
        ax_img = fig.add_subplot(grid[i, 0])
        ax_img.set_axis_off()
        image = _example_image(example, dirs)
        if image is None:
            ax_img.text(0.5, 0.5, "no image", ha="center", va="center", color="grey")
        else:
            ax_img.imshow(image)
        ax = fig.add_subplot(grid[i, 1])
        ax.set_axis_off()
        _draw_words(ax, words, cmap, norm, renderer)
    cax = fig.add_subplot(grid[rows, 1])
    fig.colorbar(ScalarMappable(norm, cmap), cax=cax, orientation="horizontal").set_label(
        "error probability (boxed: the word was edited)"
    )
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _draw_words(ax, words, cmap, norm, renderer) -> None:
    """Lay the words out left to right in axes coordinates, wrapping at the right edge."""
    ax_width = ax.get_window_extent(renderer=renderer).width
    ax_height = ax.get_window_extent(renderer=renderer).height
    x, y, line_height, gap = 0.0, 0.9, 0.0, 0.012
    for word, prob, edited in words:
        box = {
            "boxstyle": "square,pad=0.25",
            "facecolor": cmap(norm(prob)),
            "edgecolor": "black" if edited else "none",
            "linewidth": 2.0 if edited else 0.0,
        }
        color = "white" if prob > 0.6 else "black"  # stays readable on dark red
        text = ax.text(
            x,
            y,
            word,
            transform=ax.transAxes,
            fontsize=12,
            va="top",
            ha="left",
            bbox=box,
            color=color,
        )
        extent = text.get_window_extent(renderer=renderer)
        width = extent.width / ax_width
        line_height = max(line_height, 1.6 * extent.height / ax_height)
        if x > 0 and x + width > 1.0:  # wrap to the next line
            x, y = 0.0, y - line_height
            text.set_position((x, y))
        x += width + gap
