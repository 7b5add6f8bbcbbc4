"""Evaluation: encode a split with a model (through the embedding cache), then score a task.

Kept free of CLI concerns: the CLI and the benchmark matrix both call ``evaluate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from vilem.data.base import Split
from vilem.data.media import MediaDataset
from vilem.dist import all_agree, gather_rows, rank_world, shard_bounds
from vilem.errors import ConfigError, DataError, one_line
from vilem.eval.cache import EmbeddingCache, cache_key, digest_strings
from vilem.eval.tasks import get_task
from vilem.io import atomic_write_bytes, atomic_write_json
from vilem.models.base import RetrievalModel
from vilem.results import make_result


@dataclass
class EvalOptions:
    batch_size: int = 64
    num_workers: int = 2
    frames: int = 12  # frames per video, sampled `sampling`-wise (CLIP4Clip: 12 uniform)
    sampling: str = "uniform"
    skip_bad_media: bool = False
    bootstrap: int = 1000  # resamples for 95% intervals; 0 disables
    seed: int = 0
    cache_dir: Path | None = None  # None disables the embedding cache
    quiet: bool = False


def _decoded_only(frames: np.ndarray) -> torch.Tensor:
    """The preprocessing validation uses: the decode is the check, the pixels are dropped."""
    return torch.zeros(len(frames))


class _MediaCheck(Dataset):
    """Item ``i`` decoded exactly as the encoding loader decodes it (``MediaDataset``: the same
    image loader, the same video frames); ``""`` when it decodes, else the DataError's text."""

    def __init__(self, split: Split, opts: EvalOptions):
        self.media = MediaDataset(
            split.item_paths, split.modality, _decoded_only, opts.frames, opts.sampling, opts.seed
        )

    def __len__(self) -> int:
        return len(self.media)

    def __getitem__(self, i: int) -> str:
        try:
            self.media[i]
        except DataError as exc:
            return one_line(str(exc))
        return ""


def validate_media(
    split: Split, skip_bad: bool, quiet: bool = True, opts: EvalOptions | None = None
) -> Split:
    """Decode every media item as encoding will (``opts``' frames, sampling and seed; its
    workers), so a bad file is caught before encoding starts. Bad ones stop the run with one
    line naming the first and the count, or with ``skip_bad`` are dropped and recorded in
    ``split.skipped``; a split with every item bad stops either way."""
    opts = opts or EvalOptions(num_workers=0)
    loader = DataLoader(
        _MediaCheck(split, opts), batch_size=None, num_workers=opts.num_workers, shuffle=False
    )
    checked = tqdm(loader, desc="checking media", total=len(split.items), disable=quiet)
    bad = [(i, msg) for i, msg in enumerate(checked) if msg]
    if not bad:
        return split
    where, n = f"{split.dataset}/{split.split}", len(split.items)
    if not skip_bad:
        raise DataError(
            f"{len(bad)} of {n} {split.modality}s in {where} are missing or corrupt, the first: "
            f"{bad[0][1]}; pass --skip-bad-media to evaluate the rest and record the skipped ids"
        )
    if len(bad) == n:
        raise DataError(
            f"all {n} {split.modality}s of {where} were skipped as missing or corrupt, "
            f"the first: {bad[0][1]}"
        )
    bad_idx = {i for i, _ in bad}
    keep = [i for i in range(n) if i not in bad_idx]
    return split.subset(keep, skipped=[split.items[i] for i in sorted(bad_idx)])


def _cache_parts(model: RetrievalModel, split: Split, opts: EvalOptions, kind: str) -> dict:
    parts = {"model": model.fingerprint(), "kind": kind}
    if kind == "items":
        parts |= {
            "dataset": split.dataset,
            "split": split.split,
            "revision": split.revision,
            "items": digest_strings(split.items),
            "paths": digest_strings([str(p) for p in split.item_paths]),
            "preprocessing": model.preprocessing(),
        }
        if split.modality == "video":
            parts |= {"frames": opts.frames, "sampling": opts.sampling, "seed": opts.seed}
    return parts


def media_dataset(split: Split, model: RetrievalModel, opts: EvalOptions) -> MediaDataset:
    """The split's items as the model sees them (its own preprocessing, the options' frames)."""
    return MediaDataset(
        split.item_paths, split.modality, model.preprocess, opts.frames, opts.sampling, opts.seed
    )


def encode_items(
    model: RetrievalModel, split: Split, opts: EvalOptions, cache: EmbeddingCache
) -> np.ndarray:
    def compute() -> np.ndarray:
        # this rank's whole batches; Subset keeps global indices (video frame seeds)
        n = len(split.items)
        start, stop = shard_bounds(n, *rank_world(), unit=opts.batch_size)
        loader = DataLoader(
            Subset(media_dataset(split, model, opts), range(start, stop)),
            batch_size=opts.batch_size,
            num_workers=opts.num_workers,
            shuffle=False,
        )
        encode = model.encode_images if split.modality == "image" else model.encode_videos
        out = []
        with torch.inference_mode():
            for pixels in tqdm(loader, desc=f"encoding {split.modality}s", disable=opts.quiet):
                out.append(encode(pixels).float().cpu().numpy())
        local = np.concatenate(out) if out else np.zeros((0, 1), np.float32)
        return gather_rows(local, n, unit=opts.batch_size)

    return _get_or_compute(cache, _cache_parts(model, split, opts, "items"), compute)


def encode_texts(
    model: RetrievalModel, texts: list[str], opts: EvalOptions, cache: EmbeddingCache
) -> np.ndarray:
    def compute() -> np.ndarray:
        lo, hi = shard_bounds(len(texts), *rank_world(), unit=opts.batch_size)
        out = []
        with torch.inference_mode():
            for start in tqdm(
                range(lo, hi, opts.batch_size), desc="encoding texts", disable=opts.quiet
            ):
                out.append(model.encode_texts(texts[start : start + opts.batch_size]).numpy())
        local = np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)
        return gather_rows(local, len(texts), unit=opts.batch_size)

    parts = {"model": model.fingerprint(), "kind": "texts", "texts": digest_strings(texts)}
    return _get_or_compute(cache, parts, compute)


def _get_or_compute(cache: EmbeddingCache, parts: dict, compute: Callable[[], np.ndarray]):
    """``cache.get_or_compute``, but under torchrun all ranks take the same branch: a rank that
    has the entry must not skip the all-gather the others are waiting in."""
    if rank_world()[1] > 1 and cache.directory is not None:
        hit = (cache.directory / f"{cache_key(parts)}.npy").is_file()
        if not all_agree(hit):
            array = compute()  # every rank joins the gather
            return cache.get_or_compute(parts, lambda: array)
    return cache.get_or_compute(parts, compute)


def save_embeddings(directory: Path, split: Split, items: np.ndarray, texts: np.ndarray) -> None:
    """Write ``items.npy`` (N, D), ``texts.npy`` (M, D) and ``index.json`` (item ids, texts and
    ``text_to_item``), enough to recompute every retrieval metric independently."""
    import io

    directory = Path(directory)
    for name, array in (("items.npy", items), ("texts.npy", texts)):
        buf = io.BytesIO()
        np.save(buf, array.astype(np.float32), allow_pickle=False)
        atomic_write_bytes(directory / name, buf.getvalue())
    atomic_write_json(
        directory / "index.json",
        {
            "format": "vilem.embeddings/1",
            "note": "rows are L2-normalised; similarity = items @ texts.T; "
            "text j describes item text_to_item[j]",
            "dataset": split.describe(),
            "items": split.items,
            "texts": split.texts,
            "text_to_item": split.text_to_item.tolist(),
        },
    )


def _timed(timings: dict[str, float], key: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    value = fn()
    timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - start, 4)
    return value


def evaluate(
    model: RetrievalModel,
    model_info: dict[str, Any],
    split: Split,
    task: str,
    opts: EvalOptions,
    save_embeddings_dir: Path | None = None,
) -> dict[str, Any]:
    """Run ``task`` (a name in ``vilem.eval.tasks``) on ``split`` and return a result record
    (see vilem.results)."""
    spec = get_task(task)
    if spec.needs_heads and not can_proofread(model):
        raise ConfigError(
            f"task {task!r} needs a ViLEM model with error-detection heads; "
            f"{model_info.get('spec', 'this model')} has none"
        )
    if save_embeddings_dir is not None and task != "retrieval":
        raise ConfigError(
            f"--save-embeddings needs --task retrieval (task {task!r} saves no embeddings)"
        )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cache = EmbeddingCache(opts.cache_dir)
    split = _timed(
        timings,
        "validate_media",
        lambda: validate_media(split, opts.skip_bad_media, opts.quiet, opts),
    )
    items = _timed(timings, "encode_items", lambda: encode_items(model, split, opts, cache))
    run = TaskRun(model, split, items, opts, cache, timings, save_embeddings_dir)
    out = spec.runner()(run)
    timings["total"] = round(time.perf_counter() - t0, 4)
    out.extra["cache"] = {"hits": cache.hits, "misses": cache.misses}
    intervals = out.scores.pop("intervals", {})
    result = make_result(
        model=model_info,
        dataset=split.describe(),
        task=task,
        metrics=out.scores,
        intervals=intervals,
        timings=timings,
        seed=opts.seed,
        extra=out.extra,
    )
    if out.per_query is not None:
        result["per_query"] = out.per_query
    return result


@dataclass
class TaskRun:
    """What a task's run function gets: the model, the (validated) split, its item embeddings,
    the options, the embedding cache, the timings to add to, and where to save embeddings."""

    model: RetrievalModel
    split: Split
    items: np.ndarray
    opts: EvalOptions
    cache: EmbeddingCache
    timings: dict[str, float]
    save_embeddings_dir: Path | None = None

    def timed(self, key: str, fn: Callable[[], Any]) -> Any:
        return _timed(self.timings, key, fn)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return encode_texts(self.model, texts, self.opts, self.cache)


def can_proofread(model: RetrievalModel) -> bool:
    """Whether the model has the ViLEM error-detection/correction heads."""
    return bool(getattr(model, "has_proofreading_heads", False))
