"""The findings table, the comparisons behind it, their wording, and one colour per model."""

import re

import pytest
from report_fixtures import benchmark

from vilem.errors import ConfigError
from vilem.report.colours import CHANCE_COLOUR, PALETTE, model_colours
from vilem.report.compare import Delta
from vilem.report.findings import (
    Pair,
    check_pairs,
    default_pairs,
    format_delta,
    verdict,
)
from vilem.report.lineage import fine_tune_parents
from vilem.report.report import build_report
from vilem.results import collect


def _findings(md: str) -> str:
    return md[md.index("## Findings") : md.index("## Configuration")]


def _table_rows(section: str) -> dict[str, list[str]]:
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    return {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines}


def test_findings_are_one_row_per_comparison_and_one_column_per_main_metric(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r", baseline="itc").read_text()
    rows = _table_rows(_findings(md))
    header = rows.pop("comparison")
    assert header == [
        "Δ synthetic/test RSUM", "Δ msrvtt/test RSUM", "Δ synthetic/test probe macro",
    ]  # fmt: skip
    # the chance model and the baseline against itself are left out; the fine-tune of vilem is
    # compared with the baseline's own fine-tune
    assert list(rows) == ["twin − itc", "vilem − itc", "vilem-video − itc-video", "itc-video − itc"]
    assert rows["vilem − itc"][0] == r"**+600.0 [+600.0, +600.0] †**"
    assert rows["twin − itc"][0] == "+0.0 [+0.0, +0.0]"
    fine_tuned = rows["vilem-video − itc-video"]
    assert fine_tuned[0] == fine_tuned[2] == "—"  # the fine-tunes saw videos only
    assert fine_tuned[1].startswith("**+100.0 [") and fine_tuned[1].endswith("] †**")


def test_declared_pairs_replace_the_every_model_default(rec, tmp_path):
    results = benchmark(rec, tmp_path)
    pairs = [("vilem-video", "itc-video"), ("vilem", "itc")]
    md = build_report(results, tmp_path / "r", baseline="itc", pairs=pairs).read_text()
    rows = _table_rows(_findings(md))
    assert list(rows)[1:] == ["vilem-video − itc-video", "vilem − itc"]


def test_a_positive_difference_that_is_not_significant_is_never_called_a_loss():
    tie = Delta("rsum", 2.1, -4.3, 8.3, higher_is_better=True)
    assert verdict(tie) == "no significant difference"
    assert format_delta(tie) == "+2.1 [−4.3, +8.3]"
    worse = Delta("rsum", -5.0, -7.0, -3.0, higher_is_better=True)
    assert verdict(worse) == "significantly worse"
    rank = Delta("t2i_medr", -3.0, -5.0, -1.0, higher_is_better=False)  # lower rank: better
    assert verdict(rank) == "significantly better"
    untested = Delta("rsum", 5.0, None, None, higher_is_better=True, note="no per-query results")
    assert verdict(untested) == "untested" and format_delta(untested) == "+5.0 [n/a]"
    assert format_delta(None) == "—"


def test_summary_lines_group_the_columns_by_verdict(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r", baseline="itc").read_text()
    findings = _findings(md)
    assert "does not beat" not in md
    line = next(ln for ln in findings.splitlines() if ln.startswith("- **vilem − itc**"))
    assert line.startswith(
        "- **vilem − itc**: Significantly better on synthetic/test RSUM (+600.0 [+600.0, +600.0])"
    )
    assert "no significant difference on synthetic/test probe macro" not in line
    twin = next(ln for ln in findings.splitlines() if ln.startswith("- **twin − itc**"))
    assert "No significant difference on synthetic/test RSUM (+0.0 [+0.0, +0.0])" in twin


def test_pairs_name_models_of_the_results_and_never_a_model_and_itself(rec, tmp_path):
    records, _ = collect(benchmark(rec, tmp_path))
    with pytest.raises(ConfigError, match="did you mean 'vilem'"):
        check_pairs(records, [("vilme", "itc")])
    with pytest.raises(ConfigError, match="compares a model with itself"):
        check_pairs(records, [("itc", "itc")])
    assert check_pairs(records, [("vilem", "itc"), ("vilem", "itc")]) == [Pair("vilem", "itc")]
    assert default_pairs(records, None) == []


def test_report_without_any_comparison_says_how_to_ask_for_one(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r").read_text()
    assert "pass `--baseline MODEL`" in _findings(md)


def test_fine_tunes_are_linked_to_their_start_by_request_or_by_name(rec):
    a = rec.retrieval("base", extra={"setting": "zero-shot"})
    b = rec.retrieval("tuned", extra={"setting": "fine-tuned"})
    a.model.request, b.model.request = {"config": "abc"}, {"init": "abc"}
    c = rec.retrieval("base-video", extra={"setting": "fine-tuned"})
    d = rec.retrieval("other-ft")
    e = rec.retrieval("other-zs")
    assert fine_tune_parents([a, b, c, d, e]) == {
        "tuned": "base", "base-video": "base", "other-ft": "other-zs",
    }  # fmt: skip


def test_each_model_keeps_one_colour_and_fine_tunes_a_shade_of_their_start(rec):
    records = [
        rec.retrieval("vilem"), rec.retrieval("itc"),
        rec.retrieval("itc-video", extra={"setting": "fine-tuned"}),
        rec.retrieval("random", extra={"setting": "chance"}),
    ]  # fmt: skip
    colours = model_colours(records)
    assert colours == model_colours(list(reversed(records)))  # by name, not by position
    assert colours["itc"] == PALETTE[0] and colours["vilem"] == PALETTE[1]
    assert colours["random"] == CHANCE_COLOUR
    assert colours["itc-video"] not in (colours["itc"], colours["vilem"])


def test_html_rows_carry_the_models_colour_in_every_table(rec, tmp_path):
    out = tmp_path / "r"
    build_report(benchmark(rec, tmp_path), out, baseline="itc")
    html = (out / "report.html").read_text()
    records, _ = collect(tmp_path / "bench" / "results")
    colours = model_colours(records)
    marks = re.findall(r'<span class="swatch" style="background: (#[0-9a-fA-F]{6})"></span>'
                       r"([^<]+?)(?: \(baseline\))?<", html)  # fmt: skip
    seen: dict[str, set[str]] = {}
    for colour, name in marks:
        seen.setdefault(name.strip().split(" − ")[0], set()).add(colour)
    assert seen and all(seen[n] == {colours[n]} for n in seen if n in colours)


def test_models_trained_with_several_seeds_are_compared_over_their_common_seeds(rec, tmp_path):
    records = []
    for seed, itc_ranks in ((0, [50] * 10), (1, [1] * 5 + [50] * 5)):
        seeded = {"train_seed": seed, "setting": "zero-shot"}
        records += [
            rec.retrieval("vilem", [1] * 10, extra=dict(seeded)),
            rec.retrieval("itc", itc_ranks, extra=dict(seeded)),
        ]
    md = build_report(rec.save(tmp_path / "res", records), tmp_path / "r", baseline="itc")
    rows = _table_rows(_findings(md.read_text()))
    (label,) = [k for k in rows if k != "comparison"]
    assert label == "vilem − itc (2 seeds)"
    assert rows[label][0].startswith("**+450.0 [") and rows[label][0].endswith("†**")
