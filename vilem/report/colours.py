"""One colour per model for a whole report, so a model looks the same in every figure and table.

Models that start no family (every model that is not a fine-tune of another) take the colours
of a colour-blind-safe palette (Okabe & Ito) in the order of their names; a fine-tuned model
takes a lighter shade of the model it started from (``lineage.fine_tune_parents``), so the two
versions of one method read as one family; chance models are grey.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from matplotlib.colors import to_hex, to_rgb

from vilem.report.lineage import chance_models, fine_tune_parents
from vilem.results import Result

PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#CC79A7",  # reddish purple
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#8C6D31",  # brown
    "#000000",  # black
)
CHANCE_COLOUR = "#999999"
_SHADES = (0.35, 0.6, 0.75)  # how far each further fine-tune of one model moves towards white


def lighter(colour: str, amount: float) -> str:
    """``colour`` moved ``amount`` (0-1) of the way to white."""
    r, g, b = to_rgb(colour)
    return to_hex((r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount))


def model_colours(records: Iterable[Result]) -> dict[str, str]:
    """``{model name: hex colour}`` for every model of ``records`` (see the module docstring)."""
    records = list(records)
    names = sorted({r.model.name for r in records})
    chance = chance_models(records)
    parents = fine_tune_parents(records)
    roots = [n for n in names if n not in chance and n not in parents]
    out = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(roots)}
    out |= dict.fromkeys(chance, CHANCE_COLOUR)
    children: dict[str, list[str]] = {}
    for child in sorted(parents):
        children.setdefault(parents[child], []).append(child)

    def paint(parent: str, depth: int) -> None:
        for i, child in enumerate(children.get(parent, [])):
            if child in out:
                continue
            out[child] = lighter(out[parent], _SHADES[min(i + depth, len(_SHADES) - 1)])
            paint(child, depth + 1)

    for root in [*roots, *sorted(chance)]:
        paint(root, 0)
    for i, n in enumerate(n for n in names if n not in out):  # a cycle of fine-tunes
        out[n] = PALETTE[(len(roots) + i) % len(PALETTE)]
    return out


def colour_of(colours: Mapping[str, str] | None, name: str) -> str:
    """The model's colour; a model the mapping does not know gets one by its name's hash."""
    if colours and name in colours:
        return colours[name]
    return PALETTE[sum(map(ord, name)) % len(PALETTE)]
