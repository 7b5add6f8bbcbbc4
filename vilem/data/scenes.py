"""Scenes of coloured shapes for the embedded ``synthetic`` dataset: sampling, what is true of
a scene, and rendering. The caption grammar and its edits live in ``vilem.data.scene_captions``,
the vocabulary in ``vilem.data.scene_words``.

Two readings of a caption are used: *strict* (each noun phrase picks out exactly the group it
names, relations hold with a clear gap) decides which captions are generated, so every caption
is true of its scene; *lenient* (a singular noun phrase needs at least one match, a relation only
needs not to be clearly the opposite) decides which edits are kept, so every probe's negative is
false under any fair reading.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from vilem.data.scene_words import COLOURS, DIRECTIONS, RELATIONS, SHAPES, SIZES, SPEEDS, TEXTURES

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


def np_holds(np_: dict[str, Any], scene: dict[str, Any], strict: bool) -> bool:
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
        return all(np_holds(n, scene, strict) for n in nps)
    if form == "relation":
        subj, obj = nps
        if strict and not (np_holds(subj, scene, True) and np_holds(obj, scene, True)):
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
