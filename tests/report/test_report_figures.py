"""The report's figures: training curves, proofreading examples, video transfer, the forest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_fixtures import PNG_MAGIC, examples, write_log

from vilem.errors import DataError
from vilem.report import plots
from vilem.report.compare import Delta
from vilem.report.plot_proofread import annotations, pick_examples
from vilem.report.plot_training import Ramp, _panels, training_figure
from vilem.report.training import ramp_of
from vilem.results import ProofreadExample


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


def test_recalls_ranks_and_rsum_get_axes_of_their_own(tmp_path):
    rows = [json.loads(x) for x in write_log(tmp_path / "log.jsonl", {40: 50.0}).open()]
    panels = dict(_panels(rows))
    assert set(panels) == {"loss", "validation recall@K (%)", "validation rank (lower is better)",
                           "validation RSUM"}  # fmt: skip
    assert set(panels["loss"]) == {"loss", "itc", "ed_global"}
    assert panels["validation RSUM"] == {"val/rsum": ([40.0], [50.0])}


def test_a_single_validation_point_is_drawn_with_a_marker_and_the_ramp_is_shaded(tmp_path):
    log = write_log(tmp_path / "log.jsonl", {40: 50.0})
    fig = training_figure(log, ramp=Ramp(30))
    by_label = {ax.get_ylabel(): ax for ax in fig.axes}
    (line,) = by_label["validation RSUM"].get_lines()
    assert line.get_marker() == "o" and list(line.get_xdata()) == [40.0]
    loss = by_label["loss"]
    assert loss.patches, "the ramp is shaded"
    assert "ED/EC weight (dotted)" in by_label  # the weight on a second axis
    unramped = {ax.get_ylabel(): ax for ax in training_figure(log, ramp=Ramp(0)).axes}
    assert not unramped["loss"].patches and "ED/EC weight (dotted)" not in unramped


def test_the_ed_ec_ramp_is_read_from_the_run_or_its_recipe(rec, tmp_path):
    r = rec.retrieval("vilem")
    assert ramp_of(r, None) is None
    state = tmp_path / "run" / "checkpoint" / "train_state.json"
    state.parent.mkdir(parents=True)
    # older runs kept proxy_ramp_steps in the model block
    state.write_text(
        json.dumps({"config": {"model": {"proxy_ramp_steps": 300, "proxy_weight": 2}}})
    )
    assert ramp_of(r, tmp_path / "run" / "log.jsonl") == Ramp(300, 2.0)
    r.model.request = {"train": "small-vilem", "overrides": ["proxy_ramp_steps=77"]}
    assert ramp_of(r, None) == Ramp(77, 1.0)
    assert Ramp(99).at(0) == pytest.approx(0.01) and Ramp(99).at(500) == 1.0


def test_proofread_words_merge_pieces_and_carry_original_and_correction(tmp_path):
    first = examples(tmp_path)[0]
    words = plots._words(first, 0)
    assert [w.text for w in words] == ["a", "blue", "circle"]
    edited = words[1]
    assert (edited.prob, edited.edited, edited.original, edited.correction) == (
        0.9, True, "red", "red",
    )  # fmt: skip
    assert annotations(words) == ["“red” → “blue”:  p(error) 0.90, flagged;  EC: “red” ✓"]


def test_older_examples_read_the_original_word_off_the_unedited_caption():
    old = ProofreadExample(
        tokens=["a", "pink", "square", ",", "two", "stars"], error_prob=[0, 0.98, 0.7, 0, 0, 0],
        is_error=[0, 1, 0, 0, 0, 0], truth="a black square, two stars",
    )  # fmt: skip
    lines = annotations(plots._words(old, 0))
    assert lines == [
        "“black” → “pink”:  p(error) 0.98, flagged",
        "“square” (not edited):  p(error) 0.70, false alarm",
    ]


def test_examples_are_picked_from_different_items_first(tmp_path):
    picked = pick_examples(examples(tmp_path), 2)
    assert len({e.media for e in picked}) == 2
    assert len(pick_examples(examples(tmp_path), 6)) == 3


def test_a_video_example_shows_its_middle_frame(tmp_path):
    from vilem.data.synthetic import encode_mp4

    frames = [np.full((32, 32, 3), level, dtype=np.uint8) for level in (0, 0, 250, 0, 0)]
    video = tmp_path / "clip.mp4"
    video.write_bytes(encode_mp4(frames, fps=5))
    example = ProofreadExample(tokens=["a"], error_prob=[0.1], is_error=[0], media=str(video),
                               modality="video")  # fmt: skip
    image = plots._example_image(example, [])
    assert image is not None and image.mean() > 200
    png = plots.proofread_examples([example], tmp_path / "p.png")
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_transfer_pairs_each_zero_shot_model_with_its_fine_tune(rec, tmp_path):
    video = {"dataset": "msrvtt", "modality": "video"}
    zs = rec.retrieval("itc", [2] * 10, extra={"setting": "zero-shot"}, **video)
    ft = rec.retrieval("itc-video", [1] * 10, extra={"setting": "fine-tuned"}, **video)
    chance = rec.retrieval("random", [9] * 10, extra={"setting": "chance"}, **video)
    groups = plots.transfer_groups([zs, ft, chance], {"itc-video": "itc"})
    assert [(g.method, g.zero_shot.model.name, g.fine_tuned.model.name) for g in groups] == [
        ("itc", "itc", "itc-video")
    ]
    png = plots.video_transfer([zs, ft, chance], tmp_path / "v.png", parents={"itc-video": "itc"})
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_chance_rsum_is_that_of_a_random_ranking(rec):
    r = rec.retrieval("random")  # 10 items, 10 texts: one caption each
    # R@1 + R@5 + R@10 = 10% + 50% + 100% per direction
    assert plots.chance_rsum(r) == pytest.approx(2 * (10 + 50 + 100))
    r.dataset.counts = {"items": 100, "texts": 500}
    t2i = 1 + 5 + 10
    i2t = sum(100 * (1 - np.prod([(495 - j) / (500 - j) for j in range(k)])) for k in (1, 5, 10))
    assert plots.chance_rsum(r) == pytest.approx(t2i + i2t)
    r.dataset.counts = {}
    assert plots.chance_rsum(r) is None


def test_forest_draws_each_comparisons_deltas(tmp_path):
    d = Delta("acc_colour", 2.0, 0.5, 3.5, higher_is_better=True)
    tie = Delta("acc_shape", -1.0, -3.0, 1.0, higher_is_better=True)
    series = [plots.ForestSeries("a − b", "#0072B2", {"colour": d, "shape": tie})]
    png = plots.forest(["colour", "shape"], series, tmp_path / "f.svg")
    assert png.read_text().startswith("<?xml")
    with pytest.raises(DataError, match="no deltas"):
        plots.forest([], series, tmp_path / "g.png")


def test_png_figures_are_palette_encoded_and_smaller(tmp_path):
    from PIL import Image

    from vilem.report.figure import new_figure, save

    fig = new_figure(6, 4)
    ax = fig.add_subplot()
    for k in range(5):
        ax.plot(range(50), [((i * (k + 1)) % 17) for i in range(50)], label=str(k))
    ax.legend()
    path = save(fig, tmp_path / "f.png")
    with Image.open(path) as im:
        assert im.mode == "P" and im.size[0] > 500
    import io

    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=150, bbox_inches="tight")
    assert path.stat().st_size < len(raw.getvalue())
