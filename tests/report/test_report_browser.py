"""The report as a reader sees it: headless Chromium at 1400 px. No table may be wider than the
page (a wide one scrolls inside its own box), and the page itself never scrolls sideways.

Needs ``chromium`` (or ``chromium-browser``) on PATH (``apt-get install chromium``); skips,
saying so, where there is none or it cannot start.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fixtures import benchmark

from vilem.report.report import build_report

WIDTH = 1400
REPO = Path(__file__).resolve().parents[2]
COMMITTED = [REPO / "reports" / name / "report.html" for name in ("default", "seeds")]

# writes, after layout, the viewport and every table's box into the DOM that --dump-dom prints
_MEASURE = """<script>
(function () {
  var root = document.documentElement;
  var out = {viewport: root.clientWidth, scroll: root.scrollWidth, tables: []};
  document.querySelectorAll("table").forEach(function (t) {
    var r = t.getBoundingClientRect(), box = t.parentElement.getBoundingClientRect();
    out.tables.push({width: r.width, box: box.width, boxRight: box.right,
                     scrolls: getComputedStyle(t.parentElement).overflowX});
  });
  var pre = document.createElement("pre");
  pre.id = "vilem-widths";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def _browser() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium or chromium-browser on PATH (apt-get install chromium)")
    try:
        subprocess.run([exe, "--version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"{exe} does not start: {exc}")
    return exe


def _run(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def measure(exe: str, page: Path, tmp: Path) -> dict:
    """The page's viewport width, its scroll width and every table's width and box."""
    probe = tmp / f"measure-{page.parent.name}.html"
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", _MEASURE + "\n</body>"), encoding="utf-8")
    done = _run(exe, tmp / "profile", f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="vilem-widths">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the measuring script did not run: {done.stderr[-500:]}"
    return json.loads(html.unescape(found.group(1)))


def too_wide(m: dict) -> list[str]:
    """Tables wider than the page or than their box, and sideways scrolling of the page."""
    problems = []
    if m["scroll"] > m["viewport"]:
        problems.append(f"the page scrolls sideways: {m['scroll']} > {m['viewport']} px")
    for i, t in enumerate(m["tables"]):
        if t["width"] > t["box"] + 1 or t["boxRight"] > m["viewport"] + 1:
            problems.append(f"table {i}: {t['width']:.0f} px in a box of {t['box']:.0f} px")
    return problems


@pytest.fixture(scope="module")
def chromium() -> str:
    return _browser()


def test_the_measurement_catches_a_table_wider_than_the_page(chromium, tmp_path):
    wide = tmp_path / "wide" / "report.html"
    wide.parent.mkdir()
    cells = "".join(f"<td>column {i} with a long value</td>" for i in range(40))
    wide.write_text(f"<!DOCTYPE html><html><body><table><tr>{cells}</tr></table></body></html>")
    m = measure(chromium, wide, tmp_path)
    assert m["viewport"] == WIDTH
    assert too_wide(m), "a 40-column table must not pass"


def test_no_table_of_a_generated_report_is_wider_than_the_page(chromium, rec, tmp_path):
    out = tmp_path / "report"
    build_report(benchmark(rec, tmp_path), out, baseline="itc", title="T")
    page = out / "report.html"
    shot = tmp_path / "shot.png"
    _run(chromium, tmp_path / "profile", f"--window-size={WIDTH},2400", f"--screenshot={shot}",
         page.as_uri())  # fmt: skip
    assert shot.is_file() and int.from_bytes(shot.read_bytes()[16:20], "big") == WIDTH
    m = measure(chromium, page, tmp_path)
    assert len(m["tables"]) >= 8 and all(t["scrolls"] == "auto" for t in m["tables"])
    assert not too_wide(m), too_wide(m)


@pytest.mark.parametrize("page", COMMITTED, ids=lambda p: p.parent.name)
def test_no_table_of_a_committed_report_is_wider_than_the_page(chromium, tmp_path, page):
    if not page.is_file():
        pytest.skip(f"{page.relative_to(REPO)} is not in this checkout")
    m = measure(chromium, page, tmp_path)
    assert m["tables"], "the report has tables"
    assert not too_wide(m), too_wide(m)
