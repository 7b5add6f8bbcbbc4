import base64
import json
import re

import pytest
from report_fixtures import PNG_MAGIC, benchmark

from vilem.errors import ConfigError, DataError
from vilem.report import plots
from vilem.report.report import build_report
from vilem.results import ProofreadExample


def test_report_writes_markdown_with_linked_figures_and_self_contained_html(rec, tmp_path):
    results = benchmark(rec, tmp_path)
    out = tmp_path / "report"
    md_path = build_report(results, out, baseline="itc", title="Test report")
    md = md_path.read_text()
    assert md_path == out / "report.md" and md.startswith("# Test report")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    names = {link.rsplit("/", 1)[-1] for link in links}
    assert {
        "recall_synthetic_test.png",
        "probes_synthetic_test.png",
        "forest_synthetic_test.png",
        "video_transfer.png",
        "train_vilem.png",
        "train_vilem-video.png",
    } <= names
    assert any(n.startswith("proofread_vilem") for n in names)
    for link in links:  # relative links that resolve to real PNG files
        assert not link.startswith("/")
        assert (out / link).read_bytes().startswith(PNG_MAGIC)
    html = (out / "report.html").read_text()
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(uris) == len(links)
    assert all(base64.b64decode(u).startswith(PNG_MAGIC) for u in uris)
    assert "figures/" not in html  # nothing outside the file is referenced
    assert "<table" in html and "<style>" in html


def test_notes_go_under_the_title_with_links_in_both_formats(rec, tmp_path):
    note = "One seed: see [the multi-seed report](../seeds/report.md) for **effects**."
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r", notes=[note]).read_text()
    assert md.index(note) < md.index("**Contents**")
    html = (tmp_path / "r" / "report.html").read_text()
    assert '<a href="../seeds/report.html">the multi-seed report</a>' in html
    assert "<strong>effects</strong>" in html


def test_spec_notes_must_be_paragraphs():
    from vilem.bench.spec import parse_spec

    base = {"models": {"r": {"spec": "random"}}, "datasets": {"s": {"dataset": "synthetic"}}}
    assert parse_spec({**base, "notes": [" one paragraph "]}).notes == ["one paragraph"]
    with pytest.raises(ConfigError, match="notes must be a list of non-empty strings"):
        parse_spec({**base, "notes": ["  "]})
    with pytest.raises(ConfigError, match=r"'notes\[0\]' must be str"):
        parse_spec({**base, "notes": [3]})


def test_report_states_each_runs_validation_trend(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r").read_text()
    curves = md[md.index("## Training curves") :]
    line = "- vilem: validation RSUM (step) 100.0 (20) → 110.0 (40); last 20 steps: +10.0 (+10.0%)"
    assert line in curves.splitlines()
    assert "- vilem-video: validation RSUM (step) 50.0 (40)" in curves.splitlines()


def test_report_states_the_negatives_each_run_trained_on(rec, tmp_path):
    results = benchmark(rec, tmp_path)
    report = {
        "grammatical_pct": 99.7,
        "edits_per_caption": 1.7,
        "mix_pct": {"shape": 60.0, "colour": 40.0},
        "text_only_detector": {"ap": 35.2, "prior_ap": 16.7},
    }
    (tmp_path / "bench" / "models" / "vilem" / "negatives.json").write_text(json.dumps(report))
    md = build_report(results, tmp_path / "r").read_text()
    line = (
        "- vilem: negatives: 99.7% of edits grammatical, 1.7 edits per caption, text-only "
        "detector AP 35.2 (prior 16.7); edit mix (% of edits) shape 60.0, colour 40.0"
    )
    assert line in md[md.index("## Training curves") :].splitlines()


def test_report_marks_the_ed_ec_ramp_it_finds_beside_the_log(rec, tmp_path):
    results = benchmark(rec, tmp_path)
    state = tmp_path / "bench" / "models" / "vilem" / "checkpoint" / "train_state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"config": {"proxy_ramp_steps": 40, "model": {"proxy_weight": 1}}}))
    md = build_report(results, tmp_path / "r").read_text()
    caption = next(ln for ln in md.splitlines() if ln.startswith("*Training of vilem:"))
    assert "ramps linearly from 0 to 1 over the first 40 steps" in caption
    assert "can rise while every part falls" in caption


def test_report_lists_failed_cells_and_skipped_files(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r").read_text()
    failed = md[md.index("## Failed cells") : md.index("## Skipped files")]
    assert "twin on msrvtt/test (retrieval): RuntimeError: CUDA out of memory" in failed
    skipped = md[md.index("## Skipped files") :]
    assert "`broken.json`: result file is not valid JSON" in skipped


def test_rows_of_models_not_evaluated_on_a_table_are_named_not_drawn_as_dashes(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r", baseline="itc").read_text()
    start = md.index("### synthetic/test — retrieval")
    table = md[start : md.index("\n#", start + 1)]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")][1:]
    assert {r.split("|")[1].strip() for r in rows} == {"vilem", "itc (baseline)", "twin", "random"}
    assert "Not evaluated here (no result for this table): itc-video, vilem-video." in table


def test_a_table_without_the_baseline_has_no_delta_column(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r", baseline="itc").read_text()
    table = md[md.index("### synthetic/test — proofread") :]
    header = next(ln for ln in table.splitlines() if ln.startswith("| model"))
    assert "Δ" not in header
    assert "No Δ column: the baseline itc has no result here." in table


def test_report_of_an_empty_folder_or_unknown_baseline_is_a_clear_error(rec, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no vilem result files found"):
        build_report(tmp_path / "empty", tmp_path / "r")
    results = rec.save(tmp_path / "res", [rec.retrieval("itc-base")])
    with pytest.raises(ConfigError, match="did you mean 'itc-base'"):
        build_report(results, tmp_path / "r", baseline="itc_base")
    with pytest.raises(ConfigError, match="unknown figure format 'jpg'"):
        build_report(results, tmp_path / "r", figures="jpg")


def test_a_figure_that_cannot_be_drawn_is_listed_not_fatal(rec, tmp_path):
    bad = rec.retrieval("vilem", metrics={"ed_f1": 40.0})
    bad.task = "proofread"
    bad.examples = [ProofreadExample(tokens=["a", "b"], error_prob=[0.1], is_error=[0, 1])]
    md = build_report(rec.save(tmp_path / "res", [bad]), tmp_path / "r").read_text()
    assert "## Figures not drawn" in md and "differ in length" in md


def test_a_missing_training_log_is_said_in_the_training_section(rec, tmp_path):
    r = rec.retrieval("vilem", extra={"train_log": "models/vilem/log.jsonl"})
    md = build_report(rec.save(tmp_path / "res", [r]), tmp_path / "r").read_text()
    curves = md[md.index("## Training curves") : md.index("## Failed cells")]
    assert (
        "1 training log(s) not found next to the results (e.g. `models/vilem/log.jsonl`" in curves
    )
    assert "training curves of vilem: log models/vilem/log.jsonl not found" in md


def test_setting_comes_from_the_model_record_or_its_name(rec):
    assert plots.setting_of(rec.retrieval("vilem", extra={"setting": "fine-tuned"})) == (
        "fine-tuned"
    )
    assert plots.setting_of(rec.retrieval("vilem-zs")) == "zero-shot"
    assert plots.setting_of(rec.retrieval("vilem_finetuned")) == "fine-tuned"
    assert plots.setting_of(rec.retrieval("vilem")) is None
    assert plots.base_model_name(rec.retrieval("vilem-ft")) == "vilem"
