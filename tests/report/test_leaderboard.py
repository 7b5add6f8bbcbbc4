import csv
import io
import json

import pytest

from vilem.errors import ConfigError, DataError
from vilem.report.compare import Delta, paired_delta
from vilem.report.tables import leaderboard
from vilem.results import Protocol, collect, write_result


def md_table(text: str) -> dict[str, dict[str, str]]:
    """{model: {header: cell}} of the first Markdown table in ``text``."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if len(cells) != len(header):
            break  # the next table
        rows[cells[0].removesuffix(" (baseline)")] = dict(zip(header, cells, strict=True))
    return rows


def two_models(rec):
    # A has the better recall, B the better (lower) median rank: the marks must follow direction
    a = rec.retrieval("A", metrics={"t2i_R@1": 60.0, "t2i_medr": 3.0, "rsum": 300.0})
    b = rec.retrieval("B", metrics={"t2i_R@1": 50.0, "t2i_medr": 2.0, "rsum": 290.0})
    return [a, b]


def test_best_value_is_marked_per_column_by_direction(rec):
    rows = md_table(leaderboard(two_models(rec), "retrieval"))
    assert rows["A"]["t2i_R@1 ↑"] == "**60.0**"
    assert rows["B"]["t2i_R@1 ↑"] == "50.0"
    # ranks: lower is better, so B (2) is the best, not A (3)
    assert rows["B"]["t2i_medr ↓"] == "**2.0**"
    assert rows["A"]["t2i_medr ↓"] == "3.0"


def test_headers_carry_direction_arrows_in_every_format(rec):
    records = two_models(rec)
    md = leaderboard(records, "retrieval")
    assert "t2i_R@1 ↑" in md and "t2i_medr ↓" in md
    latex = leaderboard(records, "retrieval", fmt="latex")
    assert r"t2i\_R@1 $\uparrow$" in latex and r"t2i\_medr $\downarrow$" in latex
    html = leaderboard(records, "retrieval", fmt="html")
    assert "t2i_R@1 ↑" in html and "t2i_medr ↓" in html


def test_failed_cell_shows_failed_never_zero_and_missing_cell_a_dash(rec):
    records = [
        *two_models(rec),
        rec.failed("C"),
        rec.probe("D", {"color": [1, 0]}),  # D has no retrieval result at all
    ]
    rows = md_table(leaderboard(records, "retrieval"))
    assert set(rows) == {"A", "B", "C", "D"}
    assert rows["C"]["rsum ↑"] == "failed" and rows["C"]["t2i_R@1 ↑"] == "failed"
    assert "0.0" not in "".join(rows["C"].values())
    assert rows["D"]["rsum ↑"] == "—" and rows["D"]["t2i_medr ↓"] == "—"
    # rows: finished runs by the main metric (best first), then failed, then missing
    assert list(rows) == ["A", "B", "C", "D"]


def test_interval_is_shown_compactly_symmetric_or_not(rec):
    a = rec.retrieval(
        "A",
        metrics={"t2i_R@1": 61.2, "rsum": 300.0},
        intervals={"t2i_R@1": [59.9, 62.5], "rsum": [290.0, 305.0]},
    )
    rows = md_table(leaderboard([a], "retrieval"))
    assert rows["A"]["t2i_R@1 ↑"] == "61.2 ±1.3"
    assert rows["A"]["rsum ↑"] == "300.0 +5.0/−10.0"


def test_delta_vs_baseline_has_hand_checked_sign_and_significance(rec):
    n = 20
    records = [
        rec.retrieval("good", [1] * n),  # every query at rank 1: rsum 600
        rec.retrieval("base", [50] * n),  # every query at rank 50: rsum 0
        rec.retrieval("same", [50] * n),  # identical to the baseline
    ]
    rows = md_table(leaderboard(records, "retrieval", baseline="base"))
    assert rows["good"]["Δ rsum"] == "+600.0 [+600.0, +600.0] †"
    assert rows["same"]["Δ rsum"] == "+0.0 [+0.0, +0.0]"
    assert rows["base"]["Δ rsum"] == "baseline"
    # with the good model as baseline the sign flips
    rows = md_table(leaderboard(records, "retrieval", baseline="good"))
    assert rows["base"]["Δ rsum"] == "−600.0 [−600.0, −600.0] †"


def test_delta_interval_is_na_without_per_query_results(rec):
    records = [
        rec.retrieval("new", [1] * 5, per_query=False),
        rec.retrieval("base", [50] * 5),
    ]
    text = leaderboard(records, "retrieval", baseline="base")
    assert md_table(text)["new"]["Δ rsum"] == "+600.0 [n/a]"
    assert "no per-query results for the model" in text


def test_a_baseline_without_a_result_gets_no_delta_column_and_says_why(rec):
    # ITC-only models have no proofreading heads: a proofread table with baseline itc has no
    # itc row with a result, so a column of blanks would only suggest itc's run went missing
    p = rec.failed("vilem", "proofread")
    p.status, p.per_query, p.metrics = "ok", None, {"ed_f1": 40.0, "ec_accuracy": 80.0}
    records = [p, rec.retrieval("itc", [1] * 5)]
    for fmt in ("md", "html", "latex"):
        text = leaderboard(records, "proofread", baseline="itc", fmt=fmt)
        assert "Δ" not in text.replace("No Δ column", ""), fmt
        assert "No Δ column: the baseline itc has no result here." in text, fmt
    assert md_table(leaderboard(records, "proofread", baseline="itc"))["itc"]["ed_f1 ↑"] == "—"
    records = [*records[:1], rec.failed("itc", "proofread")]
    text = leaderboard(records, "proofread", baseline="itc")
    assert "No Δ column: the baseline itc failed here." in text
    # with a result, the column is there (the retrieval table of the same records)
    retrieval = [rec.retrieval("vilem", [1] * 5), rec.retrieval("itc", [2] * 5)]
    assert "Δ rsum" in md_table(leaderboard(retrieval, "retrieval", baseline="itc"))["vilem"]


def test_paired_probe_delta_resamples_within_category(rec):
    base = rec.probe("base", {"color": [0] * 10, "shape": [1] * 10})
    new = rec.probe("new", {"color": [1] * 10, "shape": [1] * 10})
    d = paired_delta(new, base, "macro")
    # color +100, shape +0 in every resample: the macro delta is exactly +50
    assert (d.value, d.lo, d.hi, d.verdict) == (50.0, 50.0, 50.0, "beats")
    assert paired_delta(new, base, "acc_shape").verdict == "tie"


def test_paired_probe_delta_of_the_balanced_accuracy_resamples_within_each_word(rec):
    words = ["above", "above", "above", "below"]
    base = rec.probe("base", {"relation": [1, 1, 1, 0]})  # a blind "above" preference
    new = rec.probe("new", {"relation": [1, 1, 1, 1]})
    for r, bal in ((base, 50.0), (new, 100.0)):
        r.per_query["word"] = words
        r.metrics["acc_relation_bal"] = bal
    d = paired_delta(new, base, "acc_relation_bal")
    # per word the outcomes are constant, so every resample gives exactly +50
    assert (d.value, d.lo, d.hi) == (50.0, 50.0, 50.0)
    raw = paired_delta(new, base, "acc_relation")
    assert raw.value == 25.0 and raw.lo <= 25.0 <= raw.hi
    base.per_query["word"] = ["above"] * 4
    assert "probe words" in paired_delta(new, base, "acc_relation_bal").note


def test_delta_verdict_follows_metric_direction():
    # a lower median rank is better: a negative delta with an interval below 0 beats
    assert Delta("t2i_medr", -3.0, -4.0, -2.0, higher_is_better=False).verdict == "beats"
    assert Delta("rsum", -3.0, -4.0, -2.0, higher_is_better=True).verdict == "worse"
    assert Delta("rsum", 1.0, -1.0, 2.0, higher_is_better=True).verdict == "tie"
    assert Delta("rsum", 1.0, None, None, higher_is_better=True).verdict == "unknown"


def test_one_table_per_dataset_and_split(rec):
    records = [
        rec.retrieval("A", dataset="coco"),
        rec.retrieval("A", dataset="flickr30k"),
        rec.retrieval("B", dataset="coco"),
    ]
    text = leaderboard(records, "retrieval")
    assert "### coco/test — retrieval" in text and "### flickr30k/test — retrieval" in text
    flickr = text[text.index("### flickr30k") :]
    assert md_table(flickr)["B"]["rsum ↑"] == "—"
    only = leaderboard(records, "retrieval", dataset="coco/test")
    assert "flickr30k" not in only


def test_csv_is_numeric_with_interval_best_and_status_columns(rec):
    records = [
        rec.retrieval("A", metrics={"rsum": 300.0}, intervals={"rsum": [295.0, 305.0]}),
        rec.retrieval("B", metrics={"rsum": 200.0}),
        rec.failed("C"),
    ]
    rows = list(csv.DictReader(io.StringIO(leaderboard(records, "retrieval", fmt="csv"))))
    by = {r["model"]: r for r in rows}
    # numbers only in number columns: no arrows in headers, no marks inside values
    assert by["A"]["rsum"] == "300.0" and by["A"]["rsum_best"] == "true"
    assert by["A"]["rsum_lo"] == "295.0" and by["A"]["rsum_hi"] == "305.0"
    assert by["B"]["rsum"] == "200.0" and by["B"]["rsum_lo"] == ""
    assert by["B"]["rsum_best"] == "false"
    assert by["C"]["status"] == "failed" and by["C"]["rsum"] == "" and by["C"]["rsum_best"] == ""
    assert {r["dataset"] for r in rows} == {"synthetic"}
    for row in rows:
        for key in ("rsum", "rsum_lo", "rsum_hi"):
            assert row[key] == "" or float(row[key]) >= 0
    assert not any("↑" in k or "↓" in k for k in rows[0])


def test_latex_is_booktabs_with_bold_best_and_escaped_names(rec):
    records = [
        rec.retrieval("my_model", metrics={"rsum": 300.0}),
        rec.retrieval("B", metrics={"rsum": 200.0}),
    ]
    text = leaderboard(records, "retrieval", fmt="latex")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert text.count(rule) == 1
    assert r"\hline" not in text
    assert r"my\_model" in text and r"\textbf{300.0}" in text


def test_html_table_marks_best_in_strong(rec):
    text = leaderboard(two_models(rec), "retrieval", fmt="html")
    assert "<table>" in text and "<strong>60.0</strong>" in text and "<strong>2.0</strong>" in text


def test_collect_reports_and_skips_corrupt_foreign_and_wrong_version_files(rec, tmp_path):
    rec.save(tmp_path, [rec.retrieval("A"), rec.failed("B")])
    (tmp_path / "corrupt.json").write_text('{"schema": "vilem.result", ')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "foreign.json").write_text(json.dumps({"loss": 1.0}))
    old = rec.retrieval("C").to_json()
    old["schema_version"] = 99
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "notes.txt").write_text("not json, not looked at")
    nulled = rec.retrieval("D").to_json()
    nulled["dataset"]["counts"] = None
    (tmp_path / "nulled.json").write_text(json.dumps(nulled))
    records, problems = collect(tmp_path)
    assert sorted(r.model.spec for r in records) == ["A", "B"]
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in problems}
    assert set(reasons) == {"corrupt.json", "foreign.json", "old.json", "nulled.json"}
    assert "'dataset.counts' is not an object" in reasons["nulled.json"]
    assert "not valid JSON" in reasons["corrupt.json"]
    assert "not a vilem result file" in reasons["foreign.json"]
    assert "schema version 99" in reasons["old.json"]
    # the failed cell is kept, and shown as failed
    assert "failed" in leaderboard(records, "retrieval")


def test_collect_keeps_the_finished_duplicate_and_reports_the_other(rec, tmp_path):
    rec.save(tmp_path / "run1", [rec.failed("A")])
    rec.save(tmp_path / "run2", [rec.retrieval("A")])
    records, problems = collect(tmp_path)
    assert [r.status for r in records] == ["ok"]
    assert len(problems) == 1 and "duplicate" in problems[0].reason


def test_a_rerun_that_failed_beside_a_finished_result_does_not_split_its_row(rec, tmp_path):
    # the bench keeps the ok result and writes the failure beside it; the failed run never
    # loaded the model, so it records no device or preprocessing (the files differ: no duplicate)
    done = rec.retrieval("A", [1] * 6 + [20] * 4)
    done.protocol = Protocol(preprocessing={"image_size": 32}, device="cpu")
    done.created = "2026-12-01T10:00:00Z"
    again = rec.failed("A")
    again.protocol = Protocol(preprocessing=None, device=None)
    again.created = "2026-12-01T11:00:00Z"
    write_result(tmp_path / "A" / "synthetic__retrieval.json", done)
    write_result(tmp_path / "A" / "synthetic__retrieval.failed.json", again)
    records, problems = collect(tmp_path)
    assert len(records) == 2 and not problems
    text = leaderboard(records, "retrieval")
    rows = md_table(text)
    assert list(rows) == ["A"] and rows["A"]["t2i_R@1 ↑"] == "60.0"
    assert "A: a later run failed" in text
    # an older failure (the finished rerun came after it) needs no note
    again.created = "2026-12-01T09:00:00Z"
    assert "a later run failed" not in leaderboard([done, again], "retrieval")


def test_collect_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="results folder not found"):
        collect(tmp_path / "nope")


def test_unknown_baseline_task_or_metric_suggests_the_closest(rec):
    records = two_models(rec)
    with pytest.raises(ConfigError, match="did you mean 'A'"):
        leaderboard(records, "retrieval", baseline="Ax")
    with pytest.raises(ConfigError, match="did you mean 'retrieval'"):
        leaderboard(records, "retreival")
    with pytest.raises(ConfigError, match="did you mean 't2i_R@1'"):
        leaderboard(records, "retrieval", metrics=["t2i_R1"])


def test_columns_and_paired_recipes_come_from_the_task_registry(rec):
    from vilem.eval.tasks import get_task

    # probe: registered without columns, so categories by name, then macro and overall
    records = [rec.probe("A", {"shape": [1, 0], "colour": [1, 1]}), rec.probe("B", {"shape": [0]})]
    header = next(ln for ln in leaderboard(records, "probe").splitlines() if ln.startswith("|"))
    cols = [c.strip() for c in header.strip("|").split("|")][1:]
    assert cols == ["acc_colour ↑", "acc_shape ↑", "macro ↑", "overall ↑"]
    # retrieval: the registered column order, whatever order the record lists its metrics in
    r = rec.retrieval("A", [1, 2, 3])
    r.metrics = dict(reversed(r.metrics.items()))
    header = next(ln for ln in leaderboard([r], "retrieval").splitlines() if ln.startswith("|"))
    cols = [c.strip().removesuffix(" ↑").removesuffix(" ↓") for c in header.strip("|").split("|")]
    assert cols[1:] == [m for m in get_task("retrieval").columns if m in r.metrics]
    # a task without a per-query recipe (proofread) or unknown to vilem: a delta, no interval
    for task in ("proofread", "somethingnew"):
        a, b = rec.failed("A", task), rec.failed("B", task)
        for x, v in ((a, 2.0), (b, 1.0)):
            x.status, x.metrics, x.per_query = "ok", {"ed_f1": v}, {"x": [1.0]}
        d = paired_delta(a, b, "ed_f1")
        assert (d.value, d.lo, d.note) == (1.0, None, f"no per-query recipe for task {task!r}")


def test_proofread_table_shows_the_binding_rates_not_every_kind_of_edit(rec):
    r = rec.failed("A", "proofread")
    r.status, r.per_query = "ok", None
    r.metrics = {"ed_f1": 40.0, "ec_accuracy": 80.0, "ed_flag_colour_binding": 3.0,
                 "ed_flag_colour_absent": 98.0, "ed_flag_shape": 0.0, "ed_flag_relation": 0.0,
                 "other": 1.0}  # fmt: skip
    header = next(ln for ln in leaderboard([r], "proofread").splitlines() if ln.startswith("|"))
    cols = [c.strip().removesuffix(" ↑").removesuffix(" ↓") for c in header.strip("|").split("|")]
    assert cols[1:] == ["ed_f1", "ec_accuracy", "ed_flag_colour_binding", "ed_flag_colour_absent",
                        "other"]  # fmt: skip
    asked = leaderboard([r], "proofread", metrics=["ed_flag_shape"])
    assert "ed_flag_shape" in asked


def test_leaderboard_function_and_tables_module_do_not_shadow_each_other():
    import importlib

    import vilem.report
    import vilem.report.tables
    import vilem.results

    assert callable(vilem.report.leaderboard)
    assert vilem.report.leaderboard is vilem.report.tables.leaderboard
    assert vilem.report.collect is vilem.results.collect
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("vilem.report.leaderboard")
