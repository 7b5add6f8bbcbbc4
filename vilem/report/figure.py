"""Creating and saving report figures: matplotlib ``Figure`` objects on an Agg canvas (no pyplot,
no display, no global state left behind), written atomically as PNG, SVG or PDF.

Saved files are reproducible: SVG ids are salted with a fixed string and no creation date is
written, so regenerating a report from the same results gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vilem.errors import ConfigError
from vilem.io import atomic_write_bytes
from vilem.registry import closest

FORMATS = ("png", "svg", "pdf")  # what --figures accepts
DPI = 150  # PNG resolution: sharp at 100% on a 1400 px page, small enough to embed
_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


def check_figure_format(fmt: str) -> None:
    """Raise ConfigError (with a did-you-mean) when ``fmt`` is not one of FORMATS."""
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown figure format {fmt!r}{closest(fmt, list(FORMATS))}; "
            f"formats: {', '.join(FORMATS)}"
        )


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path | Sequence[str | Path]) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (.png, .svg, .pdf); given several
    paths, one file per path (a PDF and its PNG preview). Returns the first path."""
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    for p in paths:
        fmt = p.suffix.lstrip(".").lower()
        check_figure_format(fmt)
        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": "vilem-report", "svg.fonttype": "path"}):
            fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight", metadata=_METADATA[fmt])
        data = buf.getvalue()
        atomic_write_bytes(p, _palette_png(data) if fmt == "png" else data)
    return paths[0]


def _palette_png(data: bytes) -> bytes:
    """A PNG re-encoded with a 256-colour palette: plots are a few flat colours, so it looks the
    same at about a third of the bytes (the HTML report embeds every figure)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()
