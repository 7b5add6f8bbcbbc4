"""The synthetic caption grammar: logical forms, their text, caption generation, and exact
single-word edits for probes.

A caption is kept as a logical form (a JSON-able dict) next to its text, so an edit is made on
the meaning and checked against the scene (``vilem.data.scenes.holds``, strict or lenient)
rather than guessed from the string.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from vilem.data.scene_words import (
    COLOURS,
    COUNT_WORDS,
    DIRECTION_WORDS,
    OPPOSITE,
    PLURALS,
    RELATION_WORDS,
    SHAPES,
    SPEED_WORDS,
    VERBS,
)
from vilem.data.scenes import holds, np_holds

# ----------------------------------------------------------------------------- captions


def _np_text(np_: dict[str, Any]) -> str:
    words = [COUNT_WORDS[np_["count"]] if np_["count"] >= 2 else "a"]
    words += [w for w in (np_.get("size"), np_.get("colour")) if w]
    words.append(PLURALS[np_["shape"]] if np_["count"] >= 2 else np_["shape"])
    return " ".join(words)


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def render_caption(caption: dict[str, Any]) -> str:
    """The text of a caption's logical form (lower case, no final full stop)."""
    form, t = caption["form"], caption["template"]
    nps = [_np_text(n) for n in caption["nps"]]
    if form == "objects":
        listed = _join(nps)
        if t == "there":
            text = f"there {'are' if caption['nps'][0]['count'] >= 2 else 'is'} {listed}"
        elif t == "picture":
            text = f"a picture of {listed}"
        elif t == "showing":
            text = f"an image showing {listed}"
        else:
            text = listed
        if caption.get("background"):
            text += f" on a {caption['background']} background"
        return text
    if form == "relation":
        rel = RELATION_WORDS[caption["relation"]]
        if t == "is":
            return f"{nps[0]} is {rel} {nps[1]}"
        if t == "there":
            return f"there is {nps[0]} {rel} {nps[1]}"
        return f"{nps[0]} {rel} {nps[1]}"
    if form == "motion":
        where = DIRECTION_WORDS[caption["direction"]][caption["direction_style"]]
        if caption.get("speed"):
            where = f"{SPEED_WORDS[caption['speed']]} {where}"
        if t == "verb":
            text = f"{nps[0]} {caption['verb']} {where}"
        elif t == "moving":
            text = f"{nps[0]} is moving {where}"
        elif t == "there":
            text = f"there is {nps[0]} moving {where}"
        else:
            text = f"a video of {nps[0]} moving {where}"
        if len(nps) > 1:
            text += f" while {nps[1]} stays still"
        return text
    raise ValueError(f"unknown caption form {form!r}")


def _descriptions(scene: dict[str, Any], gi: int) -> list[dict[str, Any]]:
    """Noun phrases for group ``gi`` that pick out exactly that group (strictly true)."""
    g = scene["objects"][gi]
    out = []
    for size, colour in (
        (g["size"], g["colour"]),
        (None, g["colour"]),
        (g["size"], None),
        (None, None),
    ):
        np_ = {"count": g["count"], "size": size, "colour": colour, "shape": g["shape"]}
        if scene["modality"] == "video" or np_holds(np_, scene, strict=True):
            out.append(np_)
    return out


def _describe(rng: random.Random, scene: dict[str, Any], gi: int, full: bool) -> dict[str, Any]:
    options = _descriptions(scene, gi)
    if full:
        return dict(options[0])
    # mostly colour-bearing phrases: they carry the attributes probes edit
    weights = {(True, True): 5, (False, True): 3, (True, False): 1, (False, False): 1}
    w = [weights[(n["size"] is not None, n["colour"] is not None)] for n in options]
    return dict(rng.choices(options, weights=w)[0])


def _image_caption(rng: random.Random, scene: dict[str, Any], first: bool) -> dict[str, Any]:
    relations = scene["relations"]
    if relations and not first and rng.random() < 0.45:
        chosen = rng.choice(relations)
        a, b, rel = chosen["subject"], chosen["object"], chosen["relation"]
        return {
            "form": "relation",
            "template": rng.choice(("is", "bare", "there")),
            "nps": [_describe(rng, scene, a, False), _describe(rng, scene, b, False)],
            "relation": rel,
        }
    n = len(scene["objects"])
    if first:
        groups = list(range(n))
    else:
        k = rng.choice([n, n, max(1, n - 1)])
        groups = sorted(rng.sample(range(n), k))
        rng.shuffle(groups)
    return {
        "form": "objects",
        "template": "bare" if first else rng.choice(("bare", "there", "picture", "showing")),
        "nps": [_describe(rng, scene, g, first) for g in groups],
        "background": None if first or rng.random() < 0.7 else scene["background"]["texture"],
    }


def _video_caption(rng: random.Random, scene: dict[str, Any], first: bool) -> dict[str, Any]:
    mover = scene["objects"][0]["motion"]
    caption: dict[str, Any] = {
        "form": "motion",
        "template": "verb" if first else rng.choice(("verb", "verb", "moving", "there", "video")),
        "verb": "moves" if first else rng.choice(VERBS),
        "nps": [_describe(rng, scene, 0, first)],
        "direction": mover["direction"],
        "direction_style": 0 if first else rng.randrange(2),
        "speed": mover["speed"] if not first and rng.random() < 0.4 else None,
    }
    if len(scene["objects"]) > 1 and not first and rng.random() < 0.5:
        caption["nps"].append(_describe(rng, scene, rng.randrange(1, len(scene["objects"])), False))
    return caption


def make_captions(rng: random.Random, scene: dict[str, Any], n: int = 5) -> list[dict[str, Any]]:
    """``n`` captions with distinct texts, all true of ``scene``; the first names every object
    (or the mover) with all its attributes."""
    make = _video_caption if scene["modality"] == "video" else _image_caption
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for attempt in range(400):
        caption = make(rng, scene, first=attempt == 0)
        text = render_caption(caption)
        if text in seen:
            continue
        if not holds(caption, scene, strict=True):  # a grammar bug, never user input
            raise AssertionError(f"generated a false caption {text!r}")
        seen.add(text)
        out.append(caption)
        if len(out) == n:
            return out
    raise RuntimeError(f"could not find {n} distinct captions for a scene")  # pragma: no cover


# ----------------------------------------------------------------------------- edits


def _edits(caption: dict[str, Any], category: str) -> list[dict[str, Any]]:
    """Every single-word edit (a two-word swap for swap_att) of ``category``, true or not."""
    out = []
    nps = caption["nps"]

    def variant(fn) -> dict[str, Any]:
        new = copy.deepcopy(caption)
        fn(new)
        return new

    for k, np_ in enumerate(nps):
        if category == "colour" and np_.get("colour"):
            for c in COLOURS:
                if c != np_["colour"]:
                    out.append(variant(lambda n, k=k, c=c: n["nps"][k].update(colour=c)))
        elif category == "shape":
            for s in SHAPES:
                if s != np_["shape"]:
                    out.append(variant(lambda n, k=k, s=s: n["nps"][k].update(shape=s)))
        elif category == "size" and np_.get("size"):
            flipped = "large" if np_["size"] == "small" else "small"
            out.append(variant(lambda n, k=k, f=flipped: n["nps"][k].update(size=f)))
        elif category == "count" and np_["count"] >= 2:
            for c in COUNT_WORDS:
                if c != np_["count"]:
                    out.append(variant(lambda n, k=k, c=c: n["nps"][k].update(count=c)))
    if category == "swap_att":
        for a in range(len(nps)):
            for b in range(a + 1, len(nps)):
                for attr in ("colour", "size"):
                    va, vb = nps[a].get(attr), nps[b].get(attr)
                    if va and vb and va != vb:
                        out.append(
                            variant(
                                lambda n, a=a, b=b, attr=attr, va=va, vb=vb: (
                                    n["nps"][a].update({attr: vb}),
                                    n["nps"][b].update({attr: va}),
                                )
                            )
                        )
    elif category == "relation" and caption["form"] == "relation":
        out.append(variant(lambda n: n.update(relation=OPPOSITE[n["relation"]])))
    elif category == "direction" and caption["form"] == "motion":
        out.append(variant(lambda n: n.update(direction=OPPOSITE[n["direction"]])))
    return out


def false_edits(
    caption: dict[str, Any], scene: dict[str, Any], category: str
) -> list[dict[str, Any]]:
    """Edits of ``category`` whose caption is false of ``scene`` even under the lenient reading."""
    return [e for e in _edits(caption, category) if not holds(e, scene, strict=False)]


def binding(
    caption: dict[str, Any], edit: dict[str, Any], scene: dict[str, Any], category: str
) -> bool | None:
    """For a colour, shape or size edit of ``caption``: is the new value on another object of
    ``scene`` (a binding error) rather than absent from it? None for other categories."""
    if category not in ("colour", "shape", "size"):
        return None
    new = {
        np_[category]
        for old, np_ in zip(caption["nps"], edit["nps"], strict=True)
        if old != np_
    }
    return bool(new & {obj[category] for obj in scene["objects"]})
