"""Training data: (pixels, caption, item id) triples over a ``Split``, batched by an epoch-seeded,
rank-aware batch sampler, tokenized in the collate.

Determinism: the order of an epoch comes from ``Split.training_pairs(seed, epoch)`` and every
random choice for one sample (video frames, crops) from a generator seeded by
``(seed, epoch, text index)``, so the batches are the same with 0 or N workers, across resumes,
and independent of the global RNG (which dropout uses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from vilem.data.base import Split
from vilem.data.media import load_image
from vilem.errors import ConfigError, DataError
from vilem.model.config import IMAGENET_MEAN, IMAGENET_STD
from vilem.model.towers import tokenize
from vilem.models.base import resize_center_crop
from vilem.threads import worker_init

# decoded uint8 images above this size are read from disk each time instead of cached
MAX_CACHE_BYTES = 2 << 30

Index = tuple[int, int]  # (epoch, text index)


@dataclass(frozen=True)
class Preprocess:
    """How one image or clip becomes model pixels."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    frames: int = 4  # frames per clip (video)
    sampling: str = "random"  # frame sampling in training
    augment: bool = False  # random resized crop, scale [0.7, 1]

    @classmethod
    def for_training(cls, cfg: Any, model: Any) -> Preprocess:
        """What a training config asks for, with the model's own pixel normalisation."""
        mean, std = model.image_mean_std()
        return cls(
            image_size=cfg.model.vision.image_size,
            mean=tuple(mean),
            std=tuple(std),
            frames=cfg.data.frames,
            sampling=cfg.data.sampling,
            augment=cfg.data.augment,
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std


def random_resized_crop(x: torch.Tensor, rng: np.random.Generator, size: int) -> torch.Tensor:
    """Crop a random box (70-100% of the area, aspect 3/4-4/3) of (N, 3, H, W) and resize it
    back to ``size``. The same box is used for every frame of a clip. Flips are left out on
    purpose: captions say "left of" / "right of"."""
    h, w = x.shape[-2:]
    area = h * w * rng.uniform(0.7, 1.0)
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    ch = int(min(h, max(1, round((area / aspect) ** 0.5))))
    cw = int(min(w, max(1, round((area * aspect) ** 0.5))))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    crop = x[..., top : top + ch, left : left + cw]
    out = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)
    return out.clamp_(0, 1)


class CaptionPairs(Dataset):
    """Indexed by ``(epoch, text index)``; returns ``(pixels, caption, item index)``.

    Images give pixels (3, S, S), videos (T, 3, S, S), normalised with the model's mean/std.
    Small image splits are decoded once into memory as uint8 at the model's size.
    """

    def __init__(self, split: Split, prep: Preprocess, seed: int, cache_images: bool = True):
        if not split.texts:
            raise ConfigError(f"split {split.dataset}/{split.split} has no texts to train on")
        for j, text in enumerate(split.texts):
            if not isinstance(text, str) or not text.strip():
                item = split.items[int(split.text_to_item[j])]
                raise DataError(
                    f"{split.dataset}/{split.split}: caption {j} (of item {item!r}) is empty"
                )
        self.split, self.prep, self.seed = split, prep, seed
        self._cache: torch.Tensor | None = None
        size = prep.image_size
        small = len(split.items) * size * size * 3 <= MAX_CACHE_BYTES
        if cache_images and split.modality == "image" and small:
            self._cache = torch.stack([self._decode(i) for i in range(len(split.items))])

    def _decode(self, i: int) -> torch.Tensor:
        """Item ``i`` resized + centre-cropped, as uint8 (3, S, S)."""
        image = np.array(load_image(self.split.item_paths[i]))[None]
        x = resize_center_crop(image, self.prep.image_size)
        return x[0].mul(255).round_().to(torch.uint8)

    def __len__(self) -> int:
        return len(self.split.texts)

    def __getitem__(self, index: Index) -> tuple[torch.Tensor, str, int]:
        epoch, j = index
        item = int(self.split.text_to_item[j])
        rng = np.random.default_rng([self.seed, epoch, j])
        if self.split.modality == "image":
            raw = self._cache[item] if self._cache is not None else self._decode(item)
            x = raw.unsqueeze(0).float().div_(255)
        else:
            from vilem.data.video import read_frames

            window = None if self.split.windows is None else self.split.windows[item]
            frames = read_frames(
                self.split.item_paths[item], self.prep.frames, self.prep.sampling, rng,
                window=window,
            )  # fmt: skip
            x = resize_center_crop(frames, self.prep.image_size)
        if self.prep.augment:
            x = random_resized_crop(x, rng, self.prep.image_size)
        x = self.prep.normalize(x)
        pixels = x[0] if self.split.modality == "image" else x
        return pixels, self.split.texts[j], item


class EpochBatches(Sampler[list[Index]]):
    """Global batches of ``batch_size * world_size`` texts in the epoch's shuffled order; rank
    ``r`` gets the contiguous slice ``[r * batch_size, (r + 1) * batch_size)`` of each, so the
    union over ranks is exactly what one process with the global batch would see. The last
    incomplete batch is dropped (contrastive losses want full batches).
    """

    def __init__(
        self, split: Split, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ):
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.global_batch = batch_size * world_size
        self.epoch, self.start = 0, 0
        if self.batches_per_epoch() == 0:
            raise ConfigError(
                f"global batch {self.global_batch} (optim.batch_size {batch_size} x "
                f"{world_size} processes) is larger than the {len(split.texts)} texts of "
                f"{split.dataset}/{split.split}"
            )

    def batches_per_epoch(self) -> int:
        return len(self.split.texts) // self.global_batch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` from its batch ``start`` (a resumed run skips done ones)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start

    def __iter__(self) -> Iterator[list[Index]]:
        order = [j for _, j in self.split.training_pairs(self.seed, self.epoch)]
        lo = self.rank * self.batch_size
        for b in range(self.start, self.batches_per_epoch()):
            chunk = order[b * self.global_batch : (b + 1) * self.global_batch]
            yield [(self.epoch, j) for j in chunk[lo : lo + self.batch_size]]


class Collate:
    """Stacks pixels and tokenizes captions with the model's tokenization
    (``vilem.model.towers.tokenize``), on the CPU: it runs in DataLoader workers, which must not
    touch CUDA."""

    def __init__(self, tokenizer: Callable[..., Any], max_len: int):
        self.tokenizer, self.max_len = tokenizer, max_len

    def __call__(self, batch: list[tuple[torch.Tensor, str, int]]) -> dict[str, torch.Tensor]:
        ids, mask = tokenize(self.tokenizer, [b[1] for b in batch], self.max_len)
        return {
            "pixels": torch.stack([b[0] for b in batch]),
            "input_ids": ids,
            "attention_mask": mask,
            "item_ids": torch.tensor([b[2] for b in batch], dtype=torch.long),
        }


def make_loader(
    dataset: CaptionPairs, batches: EpochBatches, collate: Collate, num_workers: int
) -> DataLoader:
    """A DataLoader over ``batches``; workers persist across epochs (the sampler runs in the
    main process, so ``batches.set_epoch`` still applies)."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=worker_init if num_workers else None,  # one thread per worker
        # a private generator: creating an iterator must not consume the global RNG,
        # or dropout after a resume would differ from an uninterrupted run
        generator=torch.Generator().manual_seed(0),
    )
