"""Reading media: images, and the one load-and-preprocess dataset evaluation uses for images and
videos. Every failure becomes a DataError that names the file."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from vilem.errors import DataError


def load_image(path: Path) -> Image.Image:
    """Open ``path`` and decode every pixel as RGB, or raise DataError saying why it cannot be
    read: missing, not an image, truncated or otherwise corrupt, or so large that decoding it
    would be a decompression bomb (PIL's ``MAX_IMAGE_PIXELS``; its warning counts as an error)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"image {path} is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path} is corrupt or not an image: {exc}") from exc


def check_image(path: Path) -> None:
    """Decode the whole image as evaluation will (``load_image``): a truncated file fails here,
    not inside a DataLoader worker."""
    load_image(path)


class MediaDataset(Dataset):
    """Item ``i`` loaded and preprocessed: an image, or a video's ``frames`` frames sampled
    ``sampling``-wise with an RNG seeded by ``(seed, i)`` (so 1 or W processes sample alike),
    only inside ``windows[i]`` (``(start, end)`` seconds, ``Split.windows``) when given."""

    def __init__(
        self,
        paths: Sequence[Path],
        modality: str,
        preprocess: Callable[[np.ndarray], torch.Tensor],
        frames: int = 1,
        sampling: str = "uniform",
        seed: int = 0,
        windows: Sequence[tuple[float, float] | None] | None = None,
    ):
        if windows is not None and len(windows) != len(paths):
            raise ValueError("windows and paths differ in length")
        self.paths, self.modality, self.preprocess = paths, modality, preprocess
        self.frames, self.sampling, self.seed = frames, sampling, seed
        self.windows = windows

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.modality == "image":
            return self.preprocess(np.asarray(load_image(self.paths[i]))[None])[0]
        from vilem.data.video import read_frames

        rng = np.random.default_rng([self.seed, i])
        window = None if self.windows is None else self.windows[i]
        if window is None:  # the whole video
            return self.preprocess(read_frames(self.paths[i], self.frames, self.sampling, rng))
        frames = read_frames(self.paths[i], self.frames, self.sampling, rng, window=window)
        return self.preprocess(frames)
