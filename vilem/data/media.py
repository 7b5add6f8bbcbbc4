"""Reading media: images, and the one load-and-preprocess dataset evaluation uses for images and
videos. Every failure becomes a DataError that names the file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from vilem.errors import DataError


def load_image(path: Path) -> Image.Image:
    """Open ``path`` as an RGB image, or raise DataError saying why it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path} is corrupt or not an image: {exc}") from exc


def check_image(path: Path) -> None:
    """Cheap validity check without decoding all pixels."""
    try:
        with Image.open(path) as im:
            im.verify()
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path} is corrupt or not an image: {exc}") from exc


class MediaDataset(Dataset):
    """Item ``i`` loaded and preprocessed: an image, or a video's ``frames`` frames sampled
    ``sampling``-wise with an RNG seeded by ``(seed, i)`` (so 1 or W processes sample alike)."""

    def __init__(
        self,
        paths: Sequence[Path],
        modality: str,
        preprocess: Callable[[np.ndarray], torch.Tensor],
        frames: int = 1,
        sampling: str = "uniform",
        seed: int = 0,
    ):
        self.paths, self.modality, self.preprocess = paths, modality, preprocess
        self.frames, self.sampling, self.seed = frames, sampling, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.modality == "image":
            return self.preprocess(np.asarray(load_image(self.paths[i]))[None])[0]
        from vilem.data.video import read_frames

        rng = np.random.default_rng([self.seed, i])
        return self.preprocess(read_frames(self.paths[i], self.frames, self.sampling, rng))
