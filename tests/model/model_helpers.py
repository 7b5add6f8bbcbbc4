"""The tiny ViLEM config the model tests build (random init, 32 px images, a few layers)."""

from __future__ import annotations

import dataclasses

from vilem.model.config import NegativesCfg, TextCfg, ViLEMConfig, VisionCfg


def tiny_config(text_layers: int = 3, **overrides) -> ViLEMConfig:
    cfg = ViLEMConfig(
        vision=VisionCfg(image_size=32, patch_size=8, width=64, depth=4, heads=2),
        text=TextCfg(hidden=64, layers=text_layers, heads=2, intermediate=128, max_len=16),
        embed_dim=32,
        fusion_layer=2,
        negatives=NegativesCfg(p=0.5),
    )
    return dataclasses.replace(cfg, **overrides)
