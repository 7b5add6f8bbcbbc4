"""The negatives' masked LM: BERT masking statistics, and train-lm writes a folder that loads as
a fill-mask model with the text tower's vocabulary."""

from __future__ import annotations

import json

import pytest
import torch

from vilem.cli import main
from vilem.errors import DataError
from vilem.train.lm import mask_tokens, train_lm

CAPTIONS = [
    f"a {size} {colour} {shape} left of a {colour2} circle"
    for size in ("small", "large")
    for colour in ("red", "blue", "green")
    for colour2 in ("red", "blue", "green")
    for shape in ("square", "triangle")
]


def test_masking_picks_15_percent_never_special_and_splits_80_10_10():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (400, 50), generator=gen)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -10:] = True  # CLS and padding
    corrupted, labels = mask_tokens(
        ids, special, mask_token_id=103, vocab_size=30522, generator=gen
    )
    picked = labels != -100
    assert not picked[special].any()
    assert torch.equal(labels[picked], ids[picked])
    rate = picked.sum().item() / (~special).sum().item()
    assert 0.14 < rate < 0.16
    masked = (corrupted[picked] == 103).float().mean().item()
    kept = (corrupted[picked] == ids[picked]).float().mean().item()
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.12
    assert torch.equal(corrupted[~picked], ids[~picked])


def test_train_lm_writes_a_loadable_fill_mask_folder(tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    out = train_lm(
        CAPTIONS,
        tmp_path / "mlm",
        hidden=32,
        layers=1,
        heads=2,
        steps=60,
        batch_size=16,
        lr=3e-3,
        quiet=True,
        val_corpus=CAPTIONS[:2] + ["a large red square left of a small green circle"],
        eval_points=3,
    )
    info = json.loads((out / "vilem_lm.json").read_text())
    assert info["final_loss"] < info["first_loss"] - 3  # from ~ln(30522) = 10.3
    # held out: only the caption the LM never trained on, measured at steps 20, 40, 60
    assert info["heldout_captions"] == 1 and [s for s, _ in info["val_curve"]] == [20, 40, 60]
    assert info["final_val_loss"] == info["val_curve"][-1][1] < info["val_curve"][0][1]
    assert any(out.glob("*.safetensors")) and not any(out.glob("*.bin"))
    model = AutoModelForMaskedLM.from_pretrained(str(out), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, top_k=5)
    guesses = [r["token_str"] for r in fill("a small [MASK] square left of a red circle")]
    assert len(guesses) == 5
    # it learned the corpus vocabulary: the colours are among its best guesses
    assert {"red", "blue", "green"} & set(guesses)
    assert not list(tmp_path.glob(".mlm.*"))  # no temporary folders left


def test_train_lm_rejects_an_empty_corpus(tmp_path):
    with pytest.raises(DataError, match="empty"):
        train_lm(["", "  "], tmp_path / "x", steps=1, quiet=True)


def test_train_lm_command(tmp_path, synth_root, capsys):
    code = main(
        [
            "train-lm",
            "--dataset",
            "synthetic",
            "--root",
            str(synth_root),
            "--out",
            str(tmp_path / "m"),
            "--steps",
            "3",
            "--hidden",
            "32",
            "--layers",
            "1",
            "--quiet",
        ]
    )
    assert code == 0 and "masked LM trained on" in capsys.readouterr().out
    assert (tmp_path / "m" / "config.json").is_file()
