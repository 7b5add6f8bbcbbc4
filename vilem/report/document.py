"""The report as a list of blocks, written twice: ``report.md`` (GitHub-flavoured Markdown,
figures linked) and a self-contained ``report.html`` (a Jinja2 template, figures embedded as data
URIs, wide tables scrolling inside their own box).

Text blocks hold the little Markdown the report writes (``**bold**``, ```code```); headings get
the ids GitHub gives them, so the contents list links the same anchors in both files.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup
from tabulate import tabulate

_TEMPLATES = Path(__file__).parent / "templates"
_MIME = {".png": "image/png", ".svg": "image/svg+xml"}


def slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[*`]", "", text.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def inline_html(text: str) -> Markup:
    """Escape, then turn the Markdown the report writes (**bold**, `code`, [links](url)) into
    tags; a link to a sibling report's ``.md`` goes to its ``.html``."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(
        r"\[([^\]]+)\]\(([^)\s]+?)(\.md)?\)",
        lambda m: f'<a href="{m[2]}{".html" if m[3] else ""}">{m[1]}</a>',
        out,
    )
    return Markup(re.sub(r"`(.+?)`", r"<code>\1</code>", out))


def _md_cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


@dataclass
class FigureFiles:
    """A drawn figure: its file in the chosen format and, for a PDF, the PNG shown in place."""

    main: Path
    preview: Path | None = None

    @property
    def shown(self) -> Path:
        return self.preview or self.main


@dataclass
class Block:
    kind: str  # heading, para, items, grid, leaderboard, figure, banner
    data: dict[str, Any]


@dataclass
class Doc:
    """Blocks in reading order; ``heading`` hands out unique ids (GitHub's ``-1``, ``-2``)."""

    blocks: list[Block] = field(default_factory=list)
    banners: list[str] = field(default_factory=list)  # shown above the contents
    _ids: set[str] = field(default_factory=set)

    def heading(self, level: int, text: str) -> str:
        base = slug(text) or "section"
        anchor, n = base, 0
        while anchor in self._ids:
            n += 1
            anchor = f"{base}-{n}"
        self._ids.add(anchor)
        self.blocks.append(Block("heading", {"level": level, "text": text, "id": anchor}))
        return anchor

    def para(self, text: str, cls: str = "") -> None:
        self.blocks.append(Block("para", {"text": text, "cls": cls}))

    def items(self, lines: list[str], cls: str = "") -> None:
        if lines:
            self.blocks.append(Block("items", {"lines": lines, "cls": cls}))

    def grid(
        self, headers: list[str], rows: list[list[str]], cls: str = "", swatches: list | None = None
    ) -> None:
        """A table of inline-Markdown cells; ``swatches`` (a colour or None per row) puts a
        colour mark before each row's first cell in the HTML."""
        self.blocks.append(Block("grid", {"headers": headers, "rows": rows, "cls": cls,
                                          "swatches": swatches or [None] * len(rows)}))  # fmt: skip

    def leaderboard(self, md: tuple, html_cells: tuple, swatches: list) -> None:
        """A built table: ``md`` and ``html_cells`` are ``render.table_cells`` of it."""
        self.blocks.append(Block("leaderboard", {"md": md, "html": html_cells,
                                                 "swatches": swatches}))  # fmt: skip

    def figure(self, files: FigureFiles, caption: str) -> None:
        anchor = "fig-" + (slug(files.main.stem) or "figure")
        self.blocks.append(Block("figure", {"files": files, "caption": caption, "id": anchor}))

    def contents(self) -> list[dict[str, Any]]:
        """Level-2 headings, each with its level-3 headings."""
        out: list[dict[str, Any]] = []
        for b in self.blocks:
            if b.kind != "heading" or b.data["level"] not in (2, 3):
                continue
            if b.data["level"] == 2 or not out:
                out.append({**b.data, "children": []})
            else:
                out[-1]["children"].append(b.data)
        return out

    # ------------------------------------------------------------------ Markdown
    def markdown(self, title: str, meta: list[str], out_dir: Path) -> str:
        parts = [f"# {title}", *meta]
        parts += [f"> {b}" for b in self.banners]
        toc = []
        for entry in self.contents():
            toc.append(f"- [{entry['text']}](#{entry['id']})")
            toc += [f"  - [{c['text']}](#{c['id']})" for c in entry["children"]]
        parts.append("**Contents**\n\n" + "\n".join(toc))
        parts += [self._md_block(b, out_dir) for b in self.blocks]
        return "\n\n".join(p for p in parts if p) + "\n"

    def _md_block(self, b: Block, out_dir: Path) -> str:
        d = b.data
        if b.kind == "heading":
            return f"{'#' * d['level']} {d['text']}"
        if b.kind == "para":
            return d["text"]
        if b.kind == "items":
            return "\n".join(f"- {line}" for line in d["lines"])
        if b.kind == "grid":
            return _md_table(d["headers"], [[_md_cell(c) for c in r] for r in d["rows"]])
        if b.kind == "leaderboard":
            headers, rows, legend = d["md"]
            legend_md = "\n".join(f"- {line}" for line in legend)
            return _md_table(headers, rows) + ("\n\n" + legend_md if legend else "")
        files: FigureFiles = d["files"]
        shown = Path(os.path.relpath(files.shown, out_dir)).as_posix()
        text = f"![{d['caption']}]({shown})\n\n*{d['caption']}*"
        if files.preview is not None:
            main = Path(os.path.relpath(files.main, out_dir)).as_posix()
            text += f" ([{files.main.suffix.lstrip('.').upper()}]({main}))"
        return text

    # ------------------------------------------------------------------ HTML
    def html(self, title: str, meta: list[str]) -> str:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        env = Environment(
            loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined,
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        )  # fmt: skip
        env.filters["md"] = inline_html
        env.filters["data_uri"] = _data_uri
        env.filters["display_width"] = display_width
        css = (_TEMPLATES / "report.css").read_text(encoding="utf-8")
        return env.get_template("report.html.j2").render(
            title=title, meta=meta, banners=self.banners, contents=self.contents(),
            blocks=[_html_block(b) for b in self.blocks], css=Markup(css),
        )  # fmt: skip


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    return tabulate(
        rows, headers=headers, tablefmt="github", disable_numparse=True,
        colalign=("left",) + ("right",) * (len(headers) - 1),
    )  # fmt: skip


def _html_block(b: Block) -> Block:
    """Leaderboard cells are escaped HTML already (``render.table_cells``): mark them safe."""
    if b.kind != "leaderboard":
        return b
    headers, rows, legend = b.data["html"]
    data = {**b.data, "headers": [Markup(h) for h in headers],
            "rows": [[Markup(c) for c in r] for r in rows], "legend": legend}  # fmt: skip
    return Block(b.kind, data)


def display_width(path: Path) -> int | None:
    """The CSS width of a figure at its natural size (its inches at 96 px per inch): a PNG's
    pixel width at ``figure.DPI``, an SVG's width in points."""
    from vilem.report.figure import DPI

    data = path.read_bytes()[:4096]
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        return round(int.from_bytes(data[16:20], "big") * 96 / DPI)
    match = re.search(rb'<svg[^>]*\swidth="([0-9.]+)pt"', data)
    return round(float(match.group(1)) * 96 / 72) if match else None


def _data_uri(path: Path) -> str:
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
