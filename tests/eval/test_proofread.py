"""The proofreading task end to end: a ViLEM checkpoint on synthetic probes, and the refusal for
models without heads."""

import json
from pathlib import Path

import pytest
import torch

from vilem.cli import main
from vilem.data.base import Probe
from vilem.data.synthetic import SyntheticConfig, generate
from vilem.eval.proofread import aligned_edits, flag_rates
from vilem.metrics import display_name, higher_is_better
from vilem.model.checkpoint import save_model
from vilem.model.config import TextCfg, ViLEMConfig, VisionCfg
from vilem.model.vilem import ViLEM

SMALL = SyntheticConfig(
    images_train=4, images_val=2, images_test=10, videos_train=2, videos_val=2, videos_test=4
)


def _checkpoint(folder: Path, **flags) -> Path:
    torch.manual_seed(0)
    cfg = ViLEMConfig(
        vision=VisionCfg(image_size=32, patch_size=8, width=32, depth=2, heads=2),
        text=TextCfg(hidden=32, layers=2, heads=2, intermediate=64, max_len=24),
        embed_dim=16, fusion_layer=2, **flags,
    )  # fmt: skip
    save_model(ViLEM(cfg), folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("proofread")
    generate(base / "synthetic", SMALL, seed=0)
    return base, _checkpoint(base / "vilem"), _checkpoint(base / "itc", use_ed=False, use_ec=False)


def test_aligned_edits_mark_exactly_the_edited_word_pieces(setup):
    from vilem.models import load_model

    _, vilem_dir, _ = setup
    model = load_model(f"vilem:{vilem_dir}")
    probes = [
        Probe(0, "a red circle left of a blue square", "a red circle right of a blue square", "r"),
        Probe(0, "a red circle", "a red circle and a cat", "added words are not aligned"),
    ]
    kept, original, edited = aligned_edits(model, probes)
    assert [p.category for p in kept] == ["r"]
    changed = (original != edited).nonzero()[:, 1].tolist()
    assert model.tokenizer.convert_ids_to_tokens(edited[0, changed].tolist()) == ["right"]


def test_proofread_task_writes_detection_and_correction_scores(setup, tmp_path, capsys):
    base, vilem_dir, _ = setup
    out = tmp_path / "p.json"
    code = main(["eval", "--model", f"vilem:{vilem_dir}", "--dataset", "synthetic", "--root",
                 str(base / "synthetic"), "--task", "proofread", "--out", str(out), "--quiet",
                 "--workers", "0", "--bootstrap", "0"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    flags = [k for k in result["metrics"] if k.startswith("ed_flag_")]
    assert "ed_flag_colour" in flags and "ed_flag_colour_absent" in flags
    for key in ("ed_precision", "ed_recall", "ed_f1", "ed_ap", "ec_accuracy", *flags):
        assert 0.0 <= result["metrics"][key] <= 100.0
    per_query = result["per_query"]
    assert len(per_query["binding"]) == len(per_query["detected"])
    examples = result["examples"]
    for example in examples:
        n = len(example["tokens"])
        assert n == len(example["error_prob"]) == len(example["is_error"])
        assert n == len(example["original"]) == len(example["correction"])
        assert sum(example["is_error"]) >= 1 and example["modality"] == "image"
        # the original token differs from the edited one exactly where the edit is
        edited = [t != o for t, o in zip(example["tokens"], example["original"], strict=True)]
        assert edited == [bool(e) for e in example["is_error"]]
    # examples come from different images
    assert len({e["media"] for e in examples}) == len(examples) > 1


def test_flag_rates_by_category_and_binding():
    probes = [
        Probe(0, "a", "b", "colour", binding=True),
        Probe(1, "a", "b", "colour", binding=True),
        Probe(2, "a", "b", "colour", binding=False),
        Probe(3, "a", "b", "relation"),
        Probe(4, "a", "b", "relation"),
    ]
    rates = flag_rates(probes, [1, 0, 1, 0, 0])
    assert rates == {
        "ed_flag_colour": pytest.approx(200 / 3),
        "ed_flag_colour_absent": 100.0,
        "ed_flag_colour_binding": 50.0,
        "ed_flag_relation": 0.0,
    }
    assert higher_is_better("ed_flag_colour_binding")
    assert display_name("ed_flag_colour_binding") == "ED flags colour (value on another object)"


@pytest.mark.parametrize(("flags", "present", "absent"), [
    ({"use_ec": False}, "ed_f1", "ec_accuracy"),  # the ablations of the multi-seed spec
    ({"use_ed": False}, "ec_accuracy", "ed_f1"),
])  # fmt: skip
def test_proofread_scores_a_model_with_one_head(setup, tmp_path, capsys, flags, present, absent):
    base, _, _ = setup
    model = _checkpoint(tmp_path / "one-head", **flags)
    out = tmp_path / "p.json"
    code = main(["eval", "--model", f"vilem:{model}", "--dataset", "synthetic", "--root",
                 str(base / "synthetic"), "--task", "proofread", "--out", str(out), "--quiet",
                 "--workers", "0", "--bootstrap", "0"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    metrics = json.loads(out.read_text())["metrics"]
    assert present in metrics and absent not in metrics
    assert any(k.startswith("ed_flag_") for k in metrics) == ("ed_f1" in metrics)


def test_proofread_refuses_a_model_without_heads(setup, capsys):
    base, _, itc_dir = setup
    code = main(
        [
            "eval",
            "--model",
            f"vilem:{itc_dir}",
            "--dataset",
            "synthetic",
            "--root",
            str(base / "synthetic"),
            "--task",
            "proofread",
            "--quiet",
            "--workers",
            "0",
        ]
    )
    assert code == 2
    assert "needs a ViLEM model with error-detection heads" in capsys.readouterr().err
