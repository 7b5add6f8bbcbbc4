import base64
import json
import re

import pytest
from PIL import Image

from vilem.errors import ConfigError, DataError
from vilem.report import plots
from vilem.report.compare import Delta
from vilem.report.report import build_report, finding

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def benchmark(rec, tmp_path):
    """A small bench-like folder: <out>/results/<model>/*.json plus a training log."""
    out = tmp_path / "bench"
    log = out / "models" / "vilem" / "log.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(
        "".join(
            json.dumps(
                {"step": s, "loss": 3.0 - s / 100, "loss_itc": 2.0, "loss_ed": 1.0}
                | ({"val/rsum": {20: 100.0, 40: 110.0}[s]} if s in (20, 40) else {})
            )
            + "\n"
            for s in range(0, 50, 10)
        )
    )
    image = tmp_path / "scene.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(image)
    examples = [
        {
            "tokens": ["[CLS]", "a", "blue", "cir", "##cle", "[SEP]"],
            "error_prob": [0.0, 0.1, 0.9, 0.2, 0.3, 0.0],
            "is_error": [0, 0, 1, 0, 0, 0],
            "image": str(image),
        }
    ]
    train = {"train_log": "models/vilem/log.jsonl"}  # relative to <out>, as the bench writes it
    records = [
        rec.retrieval("vilem", [1] * 20, extra=train),  # rsum 600
        rec.retrieval("itc", [50] * 20),  # rsum 0
        rec.retrieval("twin", [50] * 20),  # identical to itc
        rec.probe("vilem", {"color": [1] * 10, "shape": [1] * 10}),
        rec.probe("itc", {"color": [0] * 10, "shape": [1] * 10}),
        rec.probe("twin", {"color": [0] * 10, "shape": [1] * 10}),
        rec.retrieval(
            "vilem", [1] * 10, dataset="msrvtt", modality="video", extra={"setting": "zero-shot"}
        ),
        rec.retrieval("itc", [3] * 10, dataset="msrvtt", modality="video"),
        rec.failed("twin", dataset="msrvtt"),
    ]
    proof = rec.retrieval("vilem", metrics={"ed_f1": 40.0}, extra={"examples": examples})
    proof["task"] = "proofread"
    records.append(proof)
    results = rec.save(out / "results", records)
    (results / "broken.json").write_text("{")
    return results


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
        "video_transfer.png",
        "train_vilem.png",
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
    assert "<table>" in html and "<style>" in html


def test_report_states_each_runs_validation_trend(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r").read_text()
    curves = md[md.index("## Training curves") :]
    line = "- vilem: validation RSUM (step) 100.0 (20) → 110.0 (40); last 20 steps: +10.0 (+10.0%)"
    assert line in curves.splitlines()


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


def test_report_lists_failed_cells_and_skipped_files(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r").read_text()
    failed = md[md.index("## Failed cells") : md.index("## Skipped files")]
    assert "twin on msrvtt/test (retrieval): RuntimeError: CUDA out of memory" in failed
    skipped = md[md.index("## Skipped files") :]
    assert "`broken.json`: result file is not valid JSON" in skipped


def test_findings_say_beats_or_does_not_beat_from_the_numbers(rec, tmp_path):
    md = build_report(benchmark(rec, tmp_path), tmp_path / "r", baseline="itc").read_text()
    findings = md[md.index("## Findings") : md.index("## Retrieval")]
    lines = {ln for ln in findings.splitlines() if ln.startswith("- ")}
    assert (
        "- vilem **beats** itc on retrieval RSUM (synthetic/test): Δ = +600.0, "
        "95% CI [+600.0, +600.0], significant." in lines
    )
    assert (
        "- twin **does not beat** itc on retrieval RSUM (synthetic/test): Δ = +0.0, "
        "95% CI [+0.0, +0.0], not significant." in lines
    )
    # per probe category: vilem fixes colour (0 -> 100%) but ties on shape (100% both)
    assert any(ln.startswith("- vilem **beats** itc on probe 'color'") for ln in lines)
    assert any(ln.startswith("- vilem **does not beat** itc on probe 'shape'") for ln in lines)
    # video transfer: rank 1 vs rank 3 everywhere -> R@1 100 vs 0, R@5/R@10 equal: +200
    assert any(
        ln.startswith("- vilem **beats** itc on video transfer RSUM (msrvtt/test): Δ = +200.0")
        for ln in lines
    )
    assert "twin vs itc on retrieval (msrvtt/test): not compared, twin's result is failed." in md
    # color, macro, synthetic RSUM and video RSUM beat; shape ties
    assert "Summary: vilem significantly beats itc in 4 of 5 comparisons" in findings


def test_finding_for_a_significantly_worse_model_and_an_untestable_one():
    worse = Delta("rsum", -5.0, -7.0, -3.0, higher_is_better=True)
    text = finding("m", "b", "retrieval RSUM", "coco/test", worse)
    assert "**does not beat**" in text and "significantly worse" in text
    untested = Delta("rsum", 5.0, None, None, higher_is_better=True, note="no per-query results")
    text = finding("m", "b", "retrieval RSUM", "coco/test", untested)
    assert "95% CI n/a (no per-query results)" in text and "**beats**" not in text


def test_report_of_an_empty_folder_or_unknown_baseline_is_a_clear_error(rec, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no vilem result files found"):
        build_report(tmp_path / "empty", tmp_path / "r")
    results = rec.save(tmp_path / "res", [rec.retrieval("itc-base")])
    with pytest.raises(ConfigError, match="did you mean 'itc-base'"):
        build_report(results, tmp_path / "r", baseline="itc_base")


def test_a_figure_that_cannot_be_drawn_is_listed_not_fatal(rec, tmp_path):
    bad = rec.retrieval(
        "vilem",
        metrics={"ed_f1": 40.0},
        extra={"examples": [{"tokens": ["a", "b"], "error_prob": [0.1], "is_error": [0, 1]}]},
    )
    bad["task"] = "proofread"
    md = build_report(rec.save(tmp_path / "res", [bad]), tmp_path / "r").read_text()
    assert "## Figures not drawn" in md and "differ in length" in md


def test_setting_comes_from_extra_or_the_model_name(rec):
    assert plots.setting_of(rec.retrieval("vilem", extra={"setting": "fine-tuned"})) == (
        "fine-tuned"
    )
    assert plots.setting_of(rec.retrieval("vilem-zs")) == "zero-shot"
    assert plots.setting_of(rec.retrieval("vilem_finetuned")) == "fine-tuned"
    assert plots.setting_of(rec.retrieval("vilem")) is None
    assert plots.base_model_name(rec.retrieval("vilem-ft")) == "vilem"


def test_training_curves_plot_each_loss_and_reject_a_log_without_steps(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 2.0, "loss_ed": 0.5}\n\n{"step": 2, "loss": 1.5}\n')
    png = plots.training_curves(log, tmp_path / "t.png")
    assert png.read_bytes().startswith(PNG_MAGIC)
    log.write_text('{"epoch": 1, "loss": 2.0}\n')
    with pytest.raises(DataError, match="no records with a 'step'"):
        plots.training_curves(log, tmp_path / "t.png")
    log.write_text("{oops\n")
    with pytest.raises(DataError, match="line 1 is not JSON"):
        plots.training_curves(log, tmp_path / "t.png")


def test_proofread_example_merges_word_pieces_and_drops_special_tokens():
    words = plots._words(
        {
            "tokens": ["[CLS]", "a", "cir", "##cle", "[SEP]"],
            "error_prob": [0.0, 0.1, 0.2, 0.7, 0.0],
            "is_error": [0, 0, 0, 1, 0],
        },
        0,
    )
    assert words == [("a", 0.1, False), ("circle", 0.7, True)]
