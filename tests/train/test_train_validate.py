"""Validation during training goes through the evaluation engine and leaves training alone."""

from __future__ import annotations

import numpy as np
import torch
from train_helpers import tiny_train_dict

from vilem.data import load_split
from vilem.data.media import load_image
from vilem.metrics import retrieval_metrics
from vilem.model.config import config_from_dict
from vilem.models.base import resize_center_crop
from vilem.train.validate import Validator


def _tiny_model(root):
    from vilem.model.vilem import ViLEM

    raw = tiny_train_dict(root, None)
    raw["model"].update(use_ed=False, use_ec=False)
    torch.manual_seed(0)
    return ViLEM(config_from_dict(raw["model"]))


def _reference(model, split, batch: int) -> dict:
    """Images loaded, preprocessed and encoded by hand in batches of ``batch``."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in model.image_mean_std())
    size = model.config.vision.image_size
    items, texts = [], []
    with torch.no_grad():
        for s in range(0, len(split.items), batch):
            px = torch.cat(
                [
                    (resize_center_crop(np.array(load_image(p))[None], size) - mean) / std
                    for p in split.item_paths[s : s + batch]
                ]
            )
            items.append(model.encode_image(px).float())
        for s in range(0, len(split.texts), batch):
            ids, mask = model.tokenize(split.texts[s : s + batch])
            texts.append(model.encode_text(ids, mask).float())
    m = retrieval_metrics(torch.cat(items).numpy(), torch.cat(texts).numpy(), split.text_to_item)
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}


def test_validation_matches_a_hand_encoding_and_keeps_the_rng_and_train_mode(synth_root):
    model = _tiny_model(synth_root).train()
    split = load_split("synthetic", "val", synth_root)
    rng_before = torch.get_rng_state()
    metrics = Validator(split, frames=1, batch_size=16)(model, torch.device("cpu"), None)
    # the engine's DataLoader draws a seed from the global RNG; dropout must not notice
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert model.training
    assert metrics == _reference(model.eval(), split, 16)
    assert 0 <= metrics["rsum"] <= 600
