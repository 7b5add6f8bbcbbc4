"""A small bench-like results folder for the report tests: image and video retrieval, probes,
proofreading with examples of two images, a chance model, fine-tunes and a training log."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from vilem.results import ProofreadExample

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_log(path: Path, val_steps: dict[int, float], steps: range = range(0, 50, 10)) -> Path:
    """A training log with the total loss, its parts and validation RSUM at ``val_steps``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in steps:
        row = {"step": s, "loss": 3.0 - s / 100, "itc": 2.0, "ed_global": 1.0 - s / 200}
        if s in val_steps:
            row |= {"val/rsum": val_steps[s], "val/t2i_R@1": 10.0, "val/t2i_medr": 4.0}
        lines.append(json.dumps(row) + "\n")
    path.write_text("".join(lines))
    return path


def examples(tmp_path: Path) -> list[ProofreadExample]:
    """Three examples of two images: an edit EC fixes, an edit it misses, one of each again."""
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(red)
    Image.new("RGB", (32, 32), (40, 40, 200)).save(blue)

    def example(media: Path, edited: str, original: str, fix: str) -> ProofreadExample:
        return ProofreadExample(
            tokens=["[CLS]", "a", edited, "cir", "##cle", "[SEP]"],
            error_prob=[0.0, 0.1, 0.9, 0.2, 0.3, 0.0],
            is_error=[0, 0, 1, 0, 0, 0],
            category="colour",
            truth=f"a {original} circle",
            media=str(media),
            original=["[CLS]", "a", original, "cir", "##cle", "[SEP]"],
            correction=["[PAD]", "a", fix, "cir", "##cle", "[PAD]"],
        )

    return [
        example(red, "blue", "red", "red"),
        example(red, "green", "red", "blue"),
        example(blue, "red", "blue", "blue"),
    ]


def benchmark(rec, tmp_path: Path) -> Path:
    """<out>/results/<model>/*.json plus <out>/models/vilem/log.jsonl; returns the results."""
    out = tmp_path / "bench"
    write_log(out / "models" / "vilem" / "log.jsonl", {20: 100.0, 40: 110.0})
    write_log(out / "models" / "vilem-video" / "log.jsonl", {40: 50.0})  # one validation
    train = {"train_log": "models/vilem/log.jsonl", "setting": "zero-shot"}
    chance = {"setting": "chance"}
    records = [
        rec.retrieval("vilem", [1] * 20, extra=train),  # rsum 600
        rec.retrieval("itc", [50] * 20, extra={"setting": "zero-shot"}),  # rsum 0
        rec.retrieval("twin", [50] * 20),  # identical to itc
        rec.retrieval("random", [90] * 20, extra={"setting": "chance"}),
        rec.probe("vilem", {"color": [1] * 10, "shape": [1] * 10}),
        rec.probe("itc", {"color": [0] * 10, "shape": [1] * 10}),
        rec.probe("twin", {"color": [0] * 10, "shape": [1] * 10}),
        rec.probe("random", {"color": [0, 1] * 5, "shape": [1, 0] * 5}, extra=chance),
        rec.retrieval("vilem", [1] * 10, dataset="msrvtt", modality="video", extra=train),
        rec.retrieval("itc", [3] * 10, dataset="msrvtt", modality="video"),
        rec.retrieval(
            "vilem-video", [1] * 10, dataset="msrvtt", modality="video",
            extra={"setting": "fine-tuned", "train_log": "models/vilem-video/log.jsonl"},
        ),
        rec.retrieval(
            "itc-video", [2] * 5 + [1] * 5, dataset="msrvtt", modality="video",
            extra={"setting": "fine-tuned"},
        ),
        rec.failed("twin", dataset="msrvtt"),
    ]  # fmt: skip
    proof = rec.retrieval("vilem", metrics={"ed_f1": 40.0})
    proof.task, proof.examples = "proofread", examples(tmp_path)
    records.append(proof)
    results = rec.save(out / "results", records)
    (results / "broken.json").write_text("{")
    return results
