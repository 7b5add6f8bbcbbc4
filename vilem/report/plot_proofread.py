"""The proofreading figure: edited captions with each word coloured by the error-detection head's
probability (red = likely an error), the words that really were edited boxed, and under each
caption what happened at every edited or flagged word: the original word, the edited word, its
error probability and the error-correction head's top-1 (``✓`` when it restores the original).
Each example sits next to its image, or its video's middle frame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from vilem.errors import DataError, VilemError
from vilem.report.figure import new_figure, save
from vilem.results import ProofreadExample

_SPECIAL_TOKENS = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "<s>", "</s>", "<pad>", "<|endoftext|>"}
FLAG = 0.5  # error probability above which the detector flags a word
_TRUTH_WORDS = re.compile(r"\w+|[^\w\s]")
_MAX_LINES = 3  # annotation lines per example (the rest are counted)


@dataclass(frozen=True)
class Word:
    """One word of an edited caption (word pieces merged)."""

    text: str
    prob: float  # the highest error probability of its pieces
    edited: bool  # any of its pieces was edited
    original: str | None = None  # the unedited word (None: not recorded)
    correction: str | None = None  # EC's top-1 (None: no EC head, or not recorded)


def _merge(pieces: list[str]) -> str:
    return "".join(p[2:] if i and p.startswith("##") else p for i, p in enumerate(pieces))


def _words(example: ProofreadExample, i: int) -> list[Word]:
    """The example's words, word pieces (``##x``) merged into their word and special tokens
    dropped; originals from ``example.original`` or, for older results, from the unedited
    caption when its words line up with the edited ones."""
    tokens, probs, errors = example.tokens, example.error_prob, example.is_error
    if not isinstance(tokens, list) or not isinstance(probs, list):
        raise DataError(f"proofreading example {i} needs 'tokens' and 'error_prob' lists")
    errors = [0] * len(tokens) if errors is None else errors
    extra = [x for x in (example.original, example.correction) if x is not None]
    if not (len(tokens) == len(probs) == len(errors)) or any(len(x) != len(tokens) for x in extra):
        raise DataError(
            f"proofreading example {i}: tokens, error_prob and is_error differ in length "
            f"({len(tokens)}, {len(probs)}, {len(errors)})"
        )
    spans: list[list[int]] = []  # token positions of each word
    for j, tok in enumerate(map(str, tokens)):
        if tok in _SPECIAL_TOKENS:
            continue
        if tok.startswith("##") and spans:
            spans[-1].append(j)
        else:
            spans.append([j])
    words = []
    for span in spans:
        try:
            prob = max(min(1.0, max(0.0, float(probs[j]))) for j in span)
        except (TypeError, ValueError) as exc:
            raise DataError(f"proofreading example {i}: error_prob is not a number") from exc
        original = _merge([str(example.original[j]) for j in span]) if example.original else None
        fix = None
        if example.correction is not None:
            pieces = [str(example.correction[j]) for j in span]
            fix = None if set(pieces) & _SPECIAL_TOKENS else _merge(pieces)
        edited = any(bool(errors[j]) for j in span)
        words.append(Word(_merge([str(tokens[j]) for j in span]), prob, edited, original, fix))
    return words if example.original else _with_truth(words, example.truth)


def _with_truth(words: list[Word], truth: str) -> list[Word]:
    """Originals read off the unedited caption when it has as many words (a one-word-per-token
    substitution); the words unchanged otherwise."""
    truth_words = _TRUTH_WORDS.findall(truth or "")
    if len(truth_words) != len(words):
        return words
    return [
        Word(w.text, w.prob, w.edited, t.lower() if w.text.islower() else t, w.correction)
        for w, t in zip(words, truth_words, strict=True)
    ]


def pick_examples(examples: Sequence[ProofreadExample], n: int) -> list[ProofreadExample]:
    """Up to ``n`` examples, as many different images or videos as there are: the first
    example of each item, then the second of each, and so on."""
    by_item: dict[str, list[ProofreadExample]] = {}
    for e in examples:
        by_item.setdefault(e.media or f"#{len(by_item)}", []).append(e)
    out: list[ProofreadExample] = []
    depth = 0
    while len(out) < n and any(len(v) > depth for v in by_item.values()):
        out += [v[depth] for v in by_item.values() if len(v) > depth][: n - len(out)]
        depth += 1
    return out


def _example_image(example: ProofreadExample, base_dirs: Sequence[Path]) -> np.ndarray | None:
    """The example's image, or its video's middle frame; None when it cannot be read."""
    from PIL import Image

    if not example.media:
        return None
    p = Path(example.media)
    for c in [p] if p.is_absolute() else [*(d / p for d in base_dirs), p]:
        if not c.is_file():
            continue
        try:
            if example.modality == "video":
                from vilem.data.video import read_frames

                im = Image.fromarray(read_frames(c, num_frames=1)[0])  # uniform: the middle
            else:
                im = Image.open(c).convert("RGB")
            im.thumbnail((224, 224))
            return np.asarray(im)
        except (OSError, VilemError):
            continue
    return None


def annotations(words: list[Word]) -> list[str]:
    """One line per edited or flagged word: original → edited, error probability, EC's fix."""
    lines = []
    for w in words:
        if not w.edited and w.prob < FLAG:
            continue
        fix = ""
        if w.correction is not None:
            ok = w.original is not None and w.correction.lower() == w.original.lower()
            fix = f";  EC: “{w.correction}” {'✓' if ok else '✗'}"
        if w.edited:
            was = f"“{w.original}” → " if w.original is not None else "(original not recorded) → "
            found = "flagged" if w.prob >= FLAG else "missed"
            lines.append(f"{was}“{w.text}”:  p(error) {w.prob:.2f}, {found}{fix}")
        else:
            lines.append(f"“{w.text}” (not edited):  p(error) {w.prob:.2f}, false alarm{fix}")
    if len(lines) > _MAX_LINES:
        lines = [*lines[: _MAX_LINES - 1], f"... and {len(lines) - _MAX_LINES + 1} more"]
    return lines or ["no edited word in this caption"]


def proofread_examples(
    examples: Sequence[ProofreadExample],
    path: str | Path | Sequence[str | Path],
    title: str = "",
    max_examples: int = 6,
    base_dirs: Sequence[str | Path] = (),
) -> Path:
    """Up to ``max_examples`` examples of different items (``pick_examples``), each next to
    its image or video frame (see the module docstring).

    Args:
        examples: ``vilem.results.ProofreadExample`` (tokens, error probabilities, the original
            tokens and EC's top-1, the unedited caption, the image or video file).
        path: where the figure goes (its suffix sets the format).
        title: figure title.
        max_examples: how many examples are drawn.
        base_dirs: folders relative media paths are looked up in.
    """
    chosen = pick_examples(examples, max_examples)
    if not chosen:
        raise DataError("no proofreading examples to draw")
    dirs = [Path(d) for d in base_dirs]
    words = [_words(e, i) for i, e in enumerate(chosen)]
    cmap, norm = colormaps["Reds"], Normalize(0.0, 1.0)
    rows = len(chosen)
    height = 2.1 * rows + 0.9
    fig = new_figure(11, height)
    grid = fig.add_gridspec(
        rows + 1, 2, width_ratios=[1, 4.2], height_ratios=[1] * rows + [0.1],
        top=1 - 0.8 / height, bottom=0.35 / height, hspace=0.35,
    )  # fmt: skip
    renderer = fig.canvas.get_renderer()
    for i, (example, ws) in enumerate(zip(chosen, words, strict=True)):
        ax_img = fig.add_subplot(grid[i, 0])
        ax_img.set_axis_off()
        image = _example_image(example, dirs)
        if image is None:
            ax_img.text(0.5, 0.5, "media not found", ha="center", va="center", color="grey")
        else:
            ax_img.imshow(image)
        ax_img.set_title(Path(example.media or "").stem or "", fontsize=7, color="#555555")
        ax = fig.add_subplot(grid[i, 1])
        ax.set_axis_off()
        head = f"probe: {example.category}" if example.category else "edited caption"
        ax.text(0.0, 1.0, head, transform=ax.transAxes, fontsize=8, va="top", color="#555555")
        y = _draw_words(ax, ws, cmap, norm, renderer, top=0.84)
        for line in annotations(ws):
            y -= 0.13
            ax.text(0.0, y, line, transform=ax.transAxes, fontsize=9, va="top")
        if example.truth:
            ax.text(0.0, y - 0.15, f"unedited: {example.truth}", transform=ax.transAxes,
                    fontsize=8, va="top", color="#555555", style="italic")  # fmt: skip
    cax = fig.add_subplot(grid[rows, 1])
    fig.colorbar(ScalarMappable(norm, cmap), cax=cax, orientation="horizontal").set_label(
        "error probability (boxed: the word was edited)"
    )
    if title:
        fig.suptitle(title)
    return save(fig, path)


def _draw_words(ax, words: list[Word], cmap, norm, renderer, top: float) -> float:
    """Lay the words out left to right in axes coordinates, wrapping at the right edge; returns
    the y of the last line's bottom."""
    ax_width = ax.get_window_extent(renderer=renderer).width
    ax_height = ax.get_window_extent(renderer=renderer).height
    x, y, line_height, gap = 0.0, top, 0.0, 0.012
    for w in words:
        box = {
            "boxstyle": "square,pad=0.25",
            "facecolor": cmap(norm(w.prob)),
            "edgecolor": "black" if w.edited else "none",
            "linewidth": 2.0 if w.edited else 0.0,
        }
        color = "white" if w.prob > 0.6 else "black"  # stays readable on dark red
        text = ax.text(x, y, w.text, transform=ax.transAxes, fontsize=12, va="top", ha="left",
                       bbox=box, color=color)  # fmt: skip
        extent = text.get_window_extent(renderer=renderer)
        width = extent.width / ax_width
        line_height = max(line_height, 1.5 * extent.height / ax_height)
        if x > 0 and x + width > 1.0:  # wrap to the next line
            x, y = 0.0, y - line_height
            text.set_position((x, y))
        x += width + gap
    return y - line_height
