"""A deterministic chance baseline: each input gets a fixed random unit vector derived from a
hash of its content, so scores carry no meaning but are reproducible."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from vilem.errors import ConfigError
from vilem.models.base import RetrievalModel, register_model


def _vector(content: bytes, dim: int, seed: int) -> np.ndarray:
    digest = hashlib.sha256(seed.to_bytes(8, "little") + content).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class RandomModel(RetrievalModel):
    def __init__(self, dim: int = 64, seed: int = 0, image_size: int = 32):
        self.dim, self.seed, self.image_size = dim, seed, image_size

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        rows = [_vector(p.numpy().tobytes(), self.dim, self.seed) for p in pixels.float()]
        return torch.from_numpy(np.stack(rows))

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        rows = [_vector(t.encode("utf-8"), self.dim, self.seed) for t in texts]
        return torch.from_numpy(np.stack(rows)) if rows else torch.empty(0, self.dim)

    def config(self) -> dict[str, Any]:
        return {"name": "random", "dim": self.dim, "seed": self.seed}


@register_model("random")
def build_random(argument: str | None, device: str = "cpu") -> RandomModel:
    """``random`` or ``random:SEED``."""
    if argument is None:
        return RandomModel()
    try:
        return RandomModel(seed=int(argument))
    except ValueError as exc:
        raise ConfigError(f"model spec 'random:{argument}': expected an integer seed") from exc
