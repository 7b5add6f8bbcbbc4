"""Fine-grained probes: for (item, true text, edited text) a model is right when
s(item, true) > s(item, edited). Text-only chance is 50%.

Sources: exact edits of the synthetic scenes (vilem.data.synthetic), category edits of real
captions (below), and SugarCrepe files (vilem.data.sugarcrepe).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vilem import metrics as M
from vilem.data.base import Probe, Split
from vilem.errors import DataError
from vilem.eval.engine import TaskRun
from vilem.eval.tasks import TaskOutput

COLOURS = (
    "red", "blue", "green", "yellow", "white", "black", "brown", "orange", "pink", "purple",
    "gray", "grey", "silver", "gold",
)  # fmt: skip
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# each spatial word maps to its opposite, so an edit always states the contrary relation
SPATIAL = {
    "left": "right", "right": "left", "above": "below", "below": "above", "on": "under",
    "under": "on", "top": "bottom", "bottom": "top", "inside": "outside", "outside": "inside",
    "in front of": "behind", "behind": "in front of", "over": "under", "beneath": "above",
}  # fmt: skip
COCO_OBJECTS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
CAPTION_CATEGORIES = ("colour", "number", "spatial", "object", "swap_att")


def _words(pattern_words) -> re.Pattern:
    alternatives = sorted(pattern_words, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in alternatives) + r")\b", re.I)


_COLOUR_RE = _words(COLOURS)
_NUMBER_RE = _words(NUMBERS)
_SPATIAL_RE = _words(SPATIAL)
_OBJECT_RE = re.compile(_words(COCO_OBJECTS).pattern[:-2] + r"(s?)\b", re.I)  # simple plurals


def _match_case(new: str, old: str) -> str:
    return new.capitalize() if old[:1].isupper() else new


def _replace_one(text: str, match: re.Match, new: str) -> str:
    return text[: match.start(1)] + _match_case(new, match.group(1)) + text[match.end(1) :]


def edit_caption(text: str, category: str, rng: np.random.Generator) -> str | None:
    """One category edit of a real caption, or None when the caption offers none.

    colour/number/object: one word (or COCO object name) replaced by another of its category;
    spatial: one spatial word replaced by its opposite; swap_att: two different colour words
    swapped, so the words stay the same and only their binding to objects changes.
    """
    if category == "swap_att":
        found = list(_COLOUR_RE.finditer(text))
        pairs = [
            (a, b)
            for i, a in enumerate(found)
            for b in found[i + 1 :]
            if a.group(1).lower() != b.group(1).lower()
        ]
        if not pairs:
            return None
        a, b = pairs[int(rng.integers(len(pairs)))]
        return (
            text[: a.start(1)]
            + _match_case(b.group(1).lower(), a.group(1))
            + text[a.end(1) : b.start(1)]
            + _match_case(a.group(1).lower(), b.group(1))
            + text[b.end(1) :]
        )
    pattern, vocabulary = {
        "colour": (_COLOUR_RE, COLOURS),
        "number": (_NUMBER_RE, NUMBERS),
        "spatial": (_SPATIAL_RE, None),
        "object": (_OBJECT_RE, COCO_OBJECTS),
    }[category]
    found = list(pattern.finditer(text))
    if not found:
        return None
    match = found[int(rng.integers(len(found)))]
    old = match.group(1).lower()
    if vocabulary is None:
        return _replace_one(text, match, SPATIAL[old])
    present = {m.group(1).lower() for m in found}
    if category == "colour":
        present |= {"gray", "grey"} if old in ("gray", "grey") else set()
    choices = [w for w in vocabulary if w not in present]
    if category == "object" and match.group(2):
        choices = [w for w in choices if not w.endswith("s")]  # "dogs" -> "cats", never "skiss"
    return _replace_one(text, match, choices[int(rng.integers(len(choices)))])


def caption_edit_probes(split: Split, seed: int = 0, per_category: int = 2000) -> list[Probe]:
    """Category edits of a split's real captions: at most ``per_category`` probes per category,
    one per (caption, category), chosen deterministically by ``seed``."""
    probes: list[Probe] = []
    for c, category in enumerate(CAPTION_CATEGORIES):
        rng = np.random.default_rng([seed, c])
        order = rng.permutation(len(split.texts))
        count = 0
        for j in order.tolist():
            if count >= per_category:
                break
            edited = edit_caption(split.texts[j], category, rng)
            if edited is not None and edited != split.texts[j]:
                probes.append(Probe(int(split.text_to_item[j]), split.texts[j], edited, category))
                count += 1
    return probes


def probes_for_split(split: Split, seed: int = 0) -> list[Probe]:
    """The probes a split supports: shipped ones (SugarCrepe), exact synthetic edits when scenes
    are known, else category edits of its captions."""
    if split.probes is not None:
        return list(split.probes)
    if split.scenes is not None:
        from vilem.data.synthetic import synthetic_probes

        return synthetic_probes(split)
    return caption_edit_probes(split, seed=seed)


# ------------------------------------------------------------------------------ the task


def run(r: TaskRun) -> TaskOutput:
    """Probe accuracy, and per-probe correctness for paired comparisons."""
    probes = probes_for_split(r.split)
    if not probes:
        raise DataError(f"{r.split.dataset}/{r.split.split} yields no probes")
    scores, per_query = r.timed("probe", lambda: score_probes(r, probes))
    return TaskOutput(scores, per_query, {"probe_counts": scores.pop("counts", {})})


def score_probes(r: TaskRun, probes: list[Probe]) -> tuple[dict[str, Any], dict[str, list]]:
    # each distinct caption encoded once (a caption is the positive of several probes)
    texts = sorted({p.positive for p in probes} | {p.negative for p in probes})
    row = {t: i for i, t in enumerate(texts)}
    emb = r.encode_texts(texts)
    pos = emb[[row[p.positive] for p in probes]]
    neg = emb[[row[p.negative] for p in probes]]
    item_emb = r.items[[p.item for p in probes]]
    pos_scores = np.einsum("nd,nd->n", item_emb, pos)
    neg_scores = np.einsum("nd,nd->n", item_emb, neg)
    categories = [p.category for p in probes]
    words = [p.word for p in probes]
    scores = M.probe_accuracy(
        pos_scores,
        neg_scores,
        categories,
        words=words,
        bootstrap=r.opts.bootstrap,
        seed=r.opts.seed,
    )
    per_query = {
        "correct": (pos_scores > neg_scores).astype(int).tolist(),
        "category": categories,
        "word": words,
    }
    return scores, per_query
