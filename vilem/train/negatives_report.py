"""How plausible a run's negatives are, measured before it trains.

On the embedded synthetic data the caption grammar is known, so ``vilem.train.plausibility`` can
say which edits keep a caption grammatical (only those need the image), the edit mix by word
class and how well a text-only detector finds the edits. The figures depend only on the
negatives config, the MLM and the data, so they are computed once and cached beside the MLM.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from vilem.io import atomic_write_json, read_json

GRAMMAR_DATASETS = ("synthetic", "synthetic-video")  # datasets whose caption grammar is known
REPORT_FILE = "negatives.json"


def _mlm_stamp(path: str | None) -> list[Any]:
    """Size and mtime of the MLM's weight files: a retrained MLM gets a new cache key."""
    if not path or not Path(path).is_dir():
        return []
    files = sorted(Path(path).glob("*.safetensors"))
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def negatives_report(
    editor: Any,
    tokenizer: Any,
    neg_cfg: Any,
    mlm_path: str | None,
    dataset: str,
    root: str | None,
    detector_steps: int = 300,
) -> dict[str, Any] | None:
    """Plausibility figures of ``editor`` on ``dataset``'s captions; None where the dataset's
    grammar is unknown (real captions)."""
    if dataset not in GRAMMAR_DATASETS:
        return None
    from vilem.data import load_split
    from vilem.train.plausibility import plausibility_summary

    train = load_split(dataset, "train", root)
    val = load_split(dataset, "val", root)
    config = dataclasses.asdict(neg_cfg)
    ident = [config, detector_steps, dataset, train.revision, val.revision]
    if neg_cfg.kind == "mlm":
        ident.append(_mlm_stamp(mlm_path))
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(mlm_path) / "plausibility" if neg_cfg.kind == "mlm" and mlm_path else None
    cached = cache / f"{key}.json" if cache is not None else None
    if cached is not None and cached.is_file():
        return read_json(cached, "negatives report")
    report = plausibility_summary(
        editor, tokenizer, train.texts, train.texts, train.texts, val.texts,
        detector_steps=detector_steps,
    )  # fmt: skip
    report = {"dataset": dataset, "revision": train.revision, "negatives": config, **report}
    if cached is not None:
        atomic_write_json(cached, report)
    return report


def summary_line(report: dict[str, Any]) -> str:
    """One line for logs: grammatical share, edits per caption, text-only AP vs its prior."""
    line = (
        f"negatives: {report['grammatical_pct']}% of edits grammatical, "
        f"{report['edits_per_caption']} edits per caption"
    )
    det = report.get("text_only_detector")
    if det:
        line += f", text-only detector AP {det['ap']} (prior {det['prior_ap']})"
    return line
