"""The evaluation interface every model implements, and the model registry.

A model spec on the command line is ``NAME`` or ``NAME:ARGUMENT`` (``random``,
``hf-clip:path/to/folder``, ``vilem:runs/x/checkpoint``); the registry maps NAME to a builder
``(argument: str | None, device: str) -> RetrievalModel``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vilem.model.config import IMAGENET_MEAN, IMAGENET_STD
from vilem.registry import Registry


def resize_center_crop(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, size, size) in [0, 1]: shorter side to ``size``
    (bicubic, antialiased), then a centre crop, as CLIP and timm eval transforms do."""
    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2)
    x = x.float().div_(255)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top : top + size, left : left + size].clamp_(0, 1)


class RetrievalModel(ABC):
    """A dual encoder as seen by evaluation: embeddings are L2-normalised, similarity is the
    dot product."""

    image_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    device: str = "cpu"
    text_max_len: int | None = None  # tokens a caption is cut at (part of the protocol record)

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) -> normalised pixels (N, 3, S, S)."""
        x = resize_center_crop(frames, self.image_size)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std

    def preprocessing(self) -> dict[str, Any]:
        """Everything about preprocessing that changes embeddings (part of the cache key)."""
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, D), L2-normalised."""

    @abstractmethod
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """B strings -> (B, D), L2-normalised."""

    def encode_videos(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) -> (B, D): the mean of the L2-normalised frame embeddings,
        re-normalised (frames are encoded independently by the image tower)."""
        b, t = pixels.shape[:2]
        frames = self.encode_images(pixels.flatten(0, 1)).view(b, t, -1)
        return F.normalize(frames.mean(dim=1), dim=-1)

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """A JSON-able description of the model (architecture, source path, options)."""

    def weights_digest(self) -> str:
        """A hash of the weights; models without weights return ''."""
        return ""

    def fingerprint(self) -> str:
        """Identifies the model's function: config + weights. Keys the embedding cache."""
        payload = json.dumps(
            {"config": self.config(), "weights": self.weights_digest()}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {"config": self.config(), "fingerprint": self.fingerprint()}


def state_dict_digest(module: torch.nn.Module) -> str:
    """sha256 over parameter and buffer names and bytes, in a stable order."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


ModelBuilder = Callable[[str | None, str], RetrievalModel]
MODELS: Registry[ModelBuilder] = Registry("model", entry_point_group="vilem.models")


def register_model(name: str):
    """Function decorator: ``@register_model("random")`` over a builder ``(arg, device)``."""

    def decorator(fn: ModelBuilder) -> ModelBuilder:
        MODELS.register(name, fn)
        return fn

    return decorator
