"""Helpers shared by the training tests (a uniquely named module, importable from them)."""

from __future__ import annotations

import copy
from pathlib import Path

TINY_MODEL = {
    "vision": {
        "timm_name": "vit_tiny_patch16_224",
        "image_size": 32,
        "patch_size": 8,
        "width": 64,
        "depth": 2,
        "heads": 2,
    },
    "text": {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128, "max_len": 24},
    "embed_dim": 32,
    "fusion_layer": 1,
    "negatives": {"kind": "mlm", "p": 0.3},
}


def tiny_train_dict(root: Path, mlm: str | None, **sections) -> dict:
    """A training config dict for the tiny model on the fixture data; ``sections`` are merged
    one level deep (``optim={"steps": 3}``)."""
    model = copy.deepcopy(TINY_MODEL)
    raw = {
        "model": model,
        "mlm_path": mlm,
        "data": {"dataset": "synthetic", "root": str(root), "val_split": None},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "steps": 6, "batch_size": 8},
        "seed": 0,
        "log_every": 1,
        "plausibility_steps": 0,  # the negatives report without its (slow) text-only detector
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw
