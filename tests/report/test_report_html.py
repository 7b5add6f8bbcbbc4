"""The structure of the rendered report: sections, a contents list whose links resolve, tables
inside scroll boxes, images that decode, the figure formats and the toy-scale banner."""

from __future__ import annotations

import argparse
import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_fixtures import PNG_MAGIC, benchmark

from vilem.errors import ConfigError
from vilem.report.cli import add_parsers, parse_pair
from vilem.report.report import build_report
from vilem.results import Protocol, load_result, write_result

SECTIONS = ["findings", "configuration", "retrieval", "probes", "proofreading", "training-curves",
            "failed-cells", "skipped-files"]  # fmt: skip


class _Page(HTMLParser):
    """Ids, in-page links, each table's enclosing element classes, and image sources."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.h2: list[str] = []
        self.tables: list[list[str]] = []  # the classes of every open element around a table
        self.images: list[dict[str, str]] = []
        self._open: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.append(a["id"])
            if tag == "h2":
                self.h2.append(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
        if tag == "table":
            self.tables.append([cls for _, cls in self._open])
        if tag == "img":
            self.images.append(a)
        if tag not in ("img", "meta", "br", "hr", "link"):
            self._open.append((tag, a.get("class", "")))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture
def report(rec, tmp_path) -> Path:
    out = tmp_path / "report"
    build_report(benchmark(rec, tmp_path), out, baseline="itc", title="T")
    return out


def test_report_has_its_sections_in_order_and_a_contents_list_that_resolves(report):
    page = _page(report / "report.html")
    assert [s for s in page.h2 if s in SECTIONS] == SECTIONS
    assert len(page.ids) == len(set(page.ids)), "ids are unique"
    assert page.links and set(page.links) <= set(page.ids)
    assert set(SECTIONS) <= set(page.links)  # every section is in the contents
    md = (report / "report.md").read_text()
    anchors = re.findall(r"\]\(#([^)]+)\)", md)
    assert anchors == [a for a in page.links if a != "top"]  # the same anchors in both


def test_every_table_sits_in_a_horizontal_scroll_box(report):
    page = _page(report / "report.html")
    assert len(page.tables) >= 8
    assert all("table-scroll" in classes for classes in page.tables)
    css = (report / "report.html").read_text()
    assert re.search(r"\.table-scroll\s*\{[^}]*overflow-x:\s*auto", css)


def test_every_image_is_an_embedded_figure_that_decodes(report):
    page = _page(report / "report.html")
    assert len(page.images) >= 8
    for img in page.images:
        head, _, data = img["src"].partition(",")
        assert head == "data:image/png;base64"
        assert base64.b64decode(data).startswith(PNG_MAGIC)
        assert img.get("alt") and int(img["width"]) > 100


def test_configuration_block_names_recipes_protocol_and_versions(rec, tmp_path):
    results = benchmark(rec, tmp_path)
    path = results / "vilem" / "synthetic__retrieval.json"
    r = load_result(path)
    r.model.request = {"train": "small-vilem", "overrides": ["optim.steps=12"], "config": "c1"}
    r.model.train_seed = None
    # results from two machines (the others recorded none: older files): the report lists
    # both, so numbers that differ say why
    r.extra["machine"] = {"cpu": "Other CPU", "isa": "AVX2", "threads": 4, "follows_load": True,
                          "changes": 3, "fewest": 1}  # fmt: skip
    write_result(path, r)
    other = load_result(results / "itc" / "synthetic__retrieval.json")
    other.extra["machine"] = {"cpu": "AMD EPYC", "isa": "AVX512", "threads": 2,
                              "follows_load": False}  # fmt: skip
    write_result(results / "itc" / "synthetic__retrieval.json", other)
    md = build_report(results, tmp_path / "r", baseline="itc").read_text()
    config = md[md.index("## Configuration") : md.index("## Retrieval")]
    assert "recipe `small-vilem`" in config and "`optim.steps=12`" in config
    assert "| bootstrap resamples |" in config and "| device " in config
    assert "Packages: python" in config and "Result files: schema v2" in config
    machines = next(line for line in config.splitlines() if line.startswith("- Machine: "))
    assert machines.count(";") == 1
    assert "AMD EPYC, AVX512, 2 threads;" in machines
    assert "Other CPU, AVX2, 4 threads (following the load, fewest 1)" in machines


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_figures_come_as_svg_or_pdf_for_papers(rec, tmp_path, fmt):
    out = tmp_path / "r"
    md = build_report(benchmark(rec, tmp_path), out, baseline="itc", figures=fmt).read_text()
    files = sorted((out / "figures").glob(f"*.{fmt}"))
    assert len(files) >= 8
    magic = b"%PDF" if fmt == "pdf" else b"<?xml"
    assert all(f.read_bytes().startswith(magic) for f in files)
    html = (out / "report.html").read_text()
    if fmt == "svg":
        uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
        assert len(uris) == len(files)
        assert all(b"<svg" in base64.b64decode(u)[:2000] for u in uris)
    else:  # the pages show PNG previews and link the PDFs
        assert all(f.with_suffix(".png").read_bytes().startswith(PNG_MAGIC) for f in files)
        assert "data:image/png;base64," in html
        for f in files:
            assert f"([PDF](figures/{f.name}))" in md


def test_a_report_with_toy_results_says_so_at_the_top(rec, tmp_path):
    quick = Protocol(quick=True, preprocessing={}, device="cpu")
    toy = [rec.make("m", "synthetic", "test", "image", "retrieval", {"rsum": 1.0}, protocol=quick)]
    out = tmp_path / "r"
    md = build_report(rec.save(tmp_path / "res", toy), out).read_text()
    assert "> **Quick report (toy scale).** 1 of 1 results come from a `--quick`" in md
    assert md.index("Quick report") < md.index("**Contents**")
    assert (
        '<div class="banner" role="note"><strong>Quick report' in (out / "report.html").read_text()
    )
    md = build_report(rec.save(tmp_path / "full", [rec.retrieval("m")]), tmp_path / "f").read_text()
    assert "Quick report" not in md


def test_report_command_takes_pairs_and_a_figure_format(rec, tmp_path):
    parser = argparse.ArgumentParser(prog="vilem")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    results = benchmark(rec, tmp_path)
    out = tmp_path / "rep"
    args = parser.parse_args([
        "report", str(results), "--out", str(out), "--baseline", "itc",
        "--pair", "vilem:itc", "--pair", "vilem-video:itc-video", "--figures", "svg",
    ])  # fmt: skip
    assert args.func(args) == 0
    assert list((out / "figures").glob("*.svg"))
    findings = (out / "report.md").read_text().split("## Findings")[1].split("## ")[0]
    assert "vilem-video − itc-video" in findings and "twin − itc" not in findings
    with pytest.raises(ConfigError, match="expected MODEL:BASELINE"):
        parse_pair("vilem")
    args = parser.parse_args(["report", str(results), "--out", str(out), "--figures", "gif"])
    with pytest.raises(ConfigError, match="unknown figure format 'gif'"):
        args.func(args)
