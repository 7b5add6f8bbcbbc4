"""Scenes of coloured shapes for the embedded ``synthetic`` dataset: sampling, a small caption
grammar with a truth checker, rendering, and exact single-word edits for probes.

A caption is kept as a logical form (a JSON-able dict) next to its text, so an edit is made on
the meaning and checked against the scene rather than guessed from the string. Two readings are
used: *strict* (each noun phrase picks out exactly the group it names, relations hold with a clear
gap) decides which captions are generated, so every caption is true of its scene; *lenient*
(a singular noun phrase needs at least one match, a relation only needs not to be clearly the
opposite) decides which edits are kept, so every probe's negative is false under any fair reading.
All attribute words start with a consonant, so "a" never turns into "an" and an edit of one
attribute changes exactly one word.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# Colours far apart in hue or lightness, so they survive a 64x64 frame and yuv420p chroma.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 230),
    "yellow": (245, 205, 0),
    "purple": (130, 40, 170),
    "pink": (255, 120, 200),
    "black": (20, 20, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
PLURALS = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "star": "stars",
    "cross": "crosses",
}
SIZES: dict[str, float] = {"small": 0.09, "large": 0.18}  # shape radius / frame side
COUNT_WORDS = {2: "two", 3: "three"}
TEXTURES: tuple[str, ...] = ("plain", "striped")

RELATIONS: dict[str, tuple[int, int]] = {  # relation -> (axis, sign of "subject before object")
    "left of": (0, 1),
    "right of": (0, -1),
    "above": (1, 1),
    "below": (1, -1),
}
RELATION_WORDS = {
    "left of": "to the left of",
    "right of": "to the right of",
    "above": "above",
    "below": "below",
}
OPPOSITE = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
    "left": "right",
    "right": "left",
    "up": "down",
    "down": "up",
}
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
DIRECTION_WORDS = {  # two phrasings each; an edit keeps the phrasing so one word changes
    "left": ("to the left", "left"),
    "right": ("to the right", "right"),
    "up": ("up", "upwards"),
    "down": ("down", "downwards"),
}
SPEEDS: dict[str, float] = {"slow": 0.25, "fast": 0.5}  # distance over the clip / frame side
SPEED_WORDS = {"slow": "slowly", "fast": "quickly"}
VERBS: tuple[str, ...] = ("moves", "slides", "travels")

IMAGE_PROBES: tuple[str, ...] = ("colour", "shape", "size", "count", "relation", "swap_att")
VIDEO_PROBES: tuple[str, ...] = ("colour", "shape", "size", "swap_att", "direction")

GAP = 2.0  # pixels between shapes; also the clear gap a strict relation needs
SUPERSAMPLE = 4  # shapes are drawn 4x larger and box-filtered down: anti-aliased edges
_LENIENT_EPS = 1.0


# ----------------------------------------------------------------------------- sampling


def _pick(rng: np.random.Generator, options: tuple | list) -> Any:
    return options[int(rng.integers(len(options)))]


def _radius(size_word: str, side: int) -> float:
    return round(SIZES[size_word] * side, 2)


def _background(rng: np.random.Generator) -> dict[str, Any]:
    grey = int(rng.integers(190, 236))
    tint = [int(v) for v in rng.integers(-6, 7, size=3)]
    texture = _pick(rng, TEXTURES)
    bg: dict[str, Any] = {"colour": [min(255, grey + t) for t in tint], "texture": texture}
    if texture == "striped":
        bg["period"] = int(rng.integers(6, 13))
        bg["orientation"] = _pick(rng, ("horizontal", "vertical", "diagonal"))
    return bg


def _attributes(rng: np.random.Generator, taken: list[dict[str, Any]]) -> dict[str, str]:
    """Attributes of a new group, distinct from the groups so far; often sharing a colour or a
    shape with one of them, so binding an attribute to its object matters."""
    while True:
        attrs = {
            "shape": _pick(rng, SHAPES),
            "colour": _pick(rng, tuple(COLOURS)),
            "size": _pick(rng, tuple(SIZES)),
        }
        if taken and rng.random() < 0.4:
            other = _pick(rng, taken)
            shared = _pick(rng, ("shape", "colour"))
            attrs[shared] = other[shared]
        key = (attrs["shape"], attrs["colour"], attrs["size"])
        if all(key != (g["shape"], g["colour"], g["size"]) for g in taken):
            return attrs


def _place(
    rng: np.random.Generator, radii: list[float], side: int, avoid: list[tuple[float, float, float]]
) -> list[tuple[float, float]] | None:
    """Centres for shapes of ``radii`` inside the frame, apart from each other and from ``avoid``
    (x, y, r) discs; None when rejection sampling fails (the caller resamples)."""
    placed: list[tuple[float, float, float]] = list(avoid)
    out: list[tuple[float, float]] = []
    for r in radii:
        for _ in range(200):
            x = round(float(rng.uniform(r + 1, side - 1 - r)), 2)
            y = round(float(rng.uniform(r + 1, side - 1 - r)), 2)
            if all((x - px) ** 2 + (y - py) ** 2 >= (r + pr + GAP) ** 2 for px, py, pr in placed):
                placed.append((x, y, r))
                out.append((x, y))
                break
        else:
            return None
    return out


def sample_image_scene(rng: np.random.Generator, side: int = 64) -> dict[str, Any]:
    """A scene of 1-3 groups of identical shapes (at most one group of 2-3, at most 4 shapes)."""
    while True:
        n_groups = int(rng.choice([1, 2, 3], p=[0.15, 0.45, 0.4]))
        multi = int(rng.integers(n_groups)) if rng.random() < 0.5 else -1
        groups: list[dict[str, Any]] = []
        for k in range(n_groups):
            attrs = _attributes(rng, groups)
            count = (2 if n_groups == 3 else int(rng.integers(2, 4))) if k == multi else 1
            groups.append({**attrs, "count": count, "radius": _radius(attrs["size"], side)})
        radii = [g["radius"] for g in groups for _ in range(g["count"])]
        centres = _place(rng, radii, side, [])
        if centres is None:
            continue
        i = 0
        for g in groups:
            g["positions"] = [list(c) for c in centres[i : i + g["count"]]]
            g["motion"] = None
            i += g["count"]
        scene = {
            "modality": "image",
            "side": side,
            "background": _background(rng),
            "objects": groups,
        }
        scene["relations"] = [
            {"subject": a, "relation": rel, "object": b} for a, b, rel in _strict_relations(scene)
        ]
        return scene


def sample_video_scene(
    rng: np.random.Generator, side: int = 64, frames: int = 16, fps: int = 8
) -> dict[str, Any]:
    """One mover crossing part of the frame plus 0-2 static distractors off its path. A distractor
    never has the mover's colour and shape together, so "the red circle" names the mover."""
    while True:
        mover = _attributes(rng, [])
        mr = _radius(mover["size"], side)
        direction = _pick(rng, tuple(DIRECTIONS))
        speed = _pick(rng, tuple(SPEEDS))
        travel = SPEEDS[speed] * side
        ux, uy = DIRECTIONS[direction]
        lo, hi = mr + 1, side - 1 - mr
        # the start leaves room for the whole path inside the frame
        x0 = (
            float(rng.uniform(lo + travel, hi))
            if ux < 0
            else float(rng.uniform(lo, hi - travel * ux))
        )
        y0 = (
            float(rng.uniform(lo + travel, hi))
            if uy < 0
            else float(rng.uniform(lo, hi - travel * uy))
        )
        x0, y0 = round(x0, 2), round(y0, 2)
        step = travel / max(1, frames - 1)
        velocity = [round(ux * step, 4), round(uy * step, 4)]
        groups = [
            {
                **mover,
                "count": 1,
                "radius": mr,
                "positions": [[x0, y0]],
                "motion": {"direction": direction, "speed": speed, "velocity": velocity},
            }
        ]
        # discs along the path keep distractors clear of every position the mover takes
        path = [(x0 + ux * d, y0 + uy * d, mr) for d in np.linspace(0, travel, 12).tolist()]
        n_distractors = int(rng.integers(0, 3))
        ok = True
        for _ in range(n_distractors):
            while True:
                attrs = _attributes(rng, groups)
                if (attrs["shape"], attrs["colour"]) != (mover["shape"], mover["colour"]):
                    break
            r = _radius(attrs["size"], side)
            avoid = path + [
                (g["positions"][0][0], g["positions"][0][1], g["radius"]) for g in groups[1:]
            ]
            centre = _place(rng, [r], side, avoid)
            if centre is None:
                ok = False
                break
            groups.append(
                {**attrs, "count": 1, "radius": r, "positions": [list(centre[0])], "motion": None}
            )
        if not ok:
            continue
        return {
            "modality": "video",
            "side": side,
            "frames": frames,
            "fps": fps,
            "background": _background(rng),
            "objects": groups,
        }


def position_at(obj: dict[str, Any], instance: int, frame: int = 0) -> tuple[float, float]:
    """Centre of one shape of a group at ``frame`` (static groups never move)."""
    x, y = obj["positions"][instance]
    if obj.get("motion"):
        vx, vy = obj["motion"]["velocity"]
        x, y = x + vx * frame, y + vy * frame
    return x, y


# ----------------------------------------------------------------------------- truth


def _matches(np_: dict[str, Any], scene: dict[str, Any]) -> list[tuple[int, int]]:
    """(group, instance) pairs whose attributes fit the noun phrase."""
    out = []
    for gi, g in enumerate(scene["objects"]):
        if g["shape"] != np_["shape"]:
            continue
        if np_.get("colour") and g["colour"] != np_["colour"]:
            continue
        if np_.get("size") and g["size"] != np_["size"]:
            continue
        out.extend((gi, k) for k in range(g["count"]))
    return out


def _np_holds(np_: dict[str, Any], scene: dict[str, Any], strict: bool) -> bool:
    n = len(_matches(np_, scene))
    if np_["count"] >= 2 or strict:
        return n == np_["count"]  # numerals read exactly: "two circles" is false of three
    return n >= 1


def _relation_holds(
    relation: str, a: tuple[float, float, float], b: tuple[float, float, float], strict: bool
) -> bool:
    axis, sign = RELATIONS[relation]
    ahead = sign * (b[axis] - a[axis])  # > 0 when a lies on the stated side of b
    if not strict:
        return ahead > -_LENIENT_EPS
    across = abs(b[1 - axis] - a[1 - axis])
    # bounding discs apart along the axis by GAP, and the offset not dwarfed by the other axis
    return ahead >= a[2] + b[2] + GAP and ahead >= 0.5 * across


def _strict_relations(scene: dict[str, Any]) -> list[tuple[int, int, str]]:
    singles = [gi for gi, g in enumerate(scene["objects"]) if g["count"] == 1]
    out = []
    for a in singles:
        for b in singles:
            if a == b:
                continue
            pa = (*position_at(scene["objects"][a], 0), scene["objects"][a]["radius"])
            pb = (*position_at(scene["objects"][b], 0), scene["objects"][b]["radius"])
            out.extend((a, b, rel) for rel in RELATIONS if _relation_holds(rel, pa, pb, True))
    return out


def holds(caption: dict[str, Any], scene: dict[str, Any], strict: bool = True) -> bool:
    """Whether a caption's logical form is true of ``scene`` (see the module docstring)."""
    form = caption["form"]
    nps = caption["nps"]
    if form == "objects":
        if caption.get("background") and caption["background"] != scene["background"]["texture"]:
            return False
        return all(_np_holds(n, scene, strict) for n in nps)
    if form == "relation":
        subj, obj = nps
        if strict and not (_np_holds(subj, scene, True) and _np_holds(obj, scene, True)):
            return False
        for ga, ka in _matches(subj, scene):
            for gb, kb in _matches(obj, scene):
                if ga == gb:
                    continue
                pa = (*position_at(scene["objects"][ga], ka), scene["objects"][ga]["radius"])
                pb = (*position_at(scene["objects"][gb], kb), scene["objects"][gb]["radius"])
                if _relation_holds(caption["relation"], pa, pb, strict):
                    return True
        return False
    if form == "motion":
        mover_ok = any(
            (m := scene["objects"][g].get("motion"))
            and m["direction"] == caption["direction"]
            and (caption.get("speed") is None or m["speed"] == caption["speed"])
            for g, _ in _matches(nps[0], scene)
        )
        if len(nps) > 1:
            static_ok = any(
                not scene["objects"][g].get("motion") for g, _ in _matches(nps[1], scene)
            )
            return mover_ok and static_ok
        return mover_ok
    raise ValueError(f"unknown caption form {form!r}")


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
        if scene["modality"] == "video" or _np_holds(np_, scene, strict=True):
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


# ----------------------------------------------------------------------------- rendering


def _background_array(bg: dict[str, Any], side: int) -> np.ndarray:
    img = np.empty((side, side, 3), dtype=np.float32)
    img[:] = np.asarray(bg["colour"], dtype=np.float32)
    if bg["texture"] == "striped":
        yy, xx = np.mgrid[0:side, 0:side]
        coord = {"horizontal": yy, "vertical": xx, "diagonal": xx + yy}[bg["orientation"]]
        # faint stripes: visible texture that never competes with a shape's colour
        img += np.where((coord // (bg["period"] // 2)) % 2 == 0, 10.0, -10.0)[..., None]
    return img


def _outline(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        h = 0.82 * r
        return [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    if shape == "triangle":
        return [(x, y - r), (x + 0.866 * r, y + 0.5 * r), (x - 0.866 * r, y + 0.5 * r)]
    if shape == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.42 * r)
        xs, ys = (x + radii * np.cos(angles)).tolist(), (y - radii * np.sin(angles)).tolist()
        return list(zip(xs, ys, strict=True))
    if shape == "cross":
        w, e = 0.32 * r, 0.95 * r
        pts = [(w, e), (w, w), (e, w), (e, -w), (w, -w), (w, -e)]
        pts += [(-w, -e), (-w, -w), (-e, -w), (-e, w), (-w, w), (-w, e)]
        return [(x + dx, y + dy) for dx, dy in pts]
    raise ValueError(f"unknown shape {shape!r}")


def _shape_alpha(shape: str, x: float, y: float, r: float, side: int) -> np.ndarray:
    """Coverage (0..1) of one shape, drawn supersampled and box-filtered for smooth edges."""
    s = SUPERSAMPLE
    mask = Image.new("L", (side * s, side * s), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "circle":
        rr = 0.92 * r
        draw.ellipse([(x - rr) * s, (y - rr) * s, (x + rr) * s, (y + rr) * s], fill=255)
    else:
        draw.polygon([(px * s, py * s) for px, py in _outline(shape, x, y, r)], fill=255)
    return np.asarray(mask.reduce(s), dtype=np.float32) / 255.0


def _paint(img: np.ndarray, obj: dict[str, Any], x: float, y: float) -> None:
    alpha = _shape_alpha(obj["shape"], x, y, obj["radius"], img.shape[0])[..., None]
    img *= 1.0 - alpha
    img += alpha * np.asarray(COLOURS[obj["colour"]], dtype=np.float32)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_image(scene: dict[str, Any]) -> np.ndarray:
    """The scene as an RGB uint8 array of shape (side, side, 3)."""
    img = _background_array(scene["background"], scene["side"])
    for obj in scene["objects"]:
        for k in range(obj["count"]):
            _paint(img, obj, *position_at(obj, k))
    return _to_uint8(img)


def render_frames(scene: dict[str, Any]) -> list[np.ndarray]:
    """The video scene as ``frames`` RGB uint8 arrays (static shapes are painted once)."""
    static = _background_array(scene["background"], scene["side"])
    movers = [o for o in scene["objects"] if o.get("motion")]
    for obj in scene["objects"]:
        if not obj.get("motion"):
            for k in range(obj["count"]):
                _paint(static, obj, *position_at(obj, k))
    out = []
    for t in range(scene["frames"]):
        img = static.copy()
        for obj in movers:
            for k in range(obj["count"]):
                _paint(img, obj, *position_at(obj, k, t))
        out.append(_to_uint8(img))
    return out
