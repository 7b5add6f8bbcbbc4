"""Training: typed configs, the data pipeline, the loop (DDP, AMP, exact resume) and the small
masked LM that writes negatives. ``train`` and ``train_lm`` are imported on first use."""

from typing import Any

from vilem.train.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config", "train", "train_lm"]


def __getattr__(name: str) -> Any:
    # the loop pulls in torch, timm and transformers: only when training is asked for
    if name == "train":
        from vilem.train.loop import train

        return train
    if name == "train_lm":
        from vilem.train.lm import train_lm

        return train_lm
    raise AttributeError(f"module 'vilem.train' has no attribute {name!r}")
