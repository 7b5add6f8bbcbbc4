"""The synthetic grammar's vocabulary: colours, shapes, sizes, counts, relations, directions,
speeds and verbs (with the words captions use for them), and the probe categories.

All attribute words start with a consonant, so "a" never turns into "an" and an edit of one
attribute changes exactly one word.
"""

from __future__ import annotations

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
