"""Evaluation: encode a split with a model (through the embedding cache), then score a task.

Kept free of CLI concerns: the CLI and the benchmark matrix both call ``evaluate``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from vilem import threads
from vilem.data.base import Split
from vilem.data.media import MediaDataset
from vilem.data.video import decoding_record
from vilem.dist import all_agree, gather_rows, rank_world, shard_bounds
from vilem.errors import ConfigError, DataError, one_line
from vilem.eval.cache import EmbeddingCache, cache_key, digest_strings
from vilem.eval.tasks import get_task
from vilem.io import atomic_write_bytes, atomic_write_json
from vilem.metrics.info import RECALL_KS
from vilem.models.base import RetrievalModel
from vilem.results import DatasetRecord, ModelRecord, Protocol, Result, machine_record, typed
from vilem.threads import worker_init

PRECISIONS = ("fp32", "bf16", "fp16")
SAMPLINGS = ("uniform", "headtail", "random")  # where the frames of a video are taken


@dataclass
class EvalOptions:
    """How a split is evaluated. These are THE defaults: ``vilem eval``'s flags and a bench
    spec's top-level settings both start from them."""

    batch_size: int = 64
    num_workers: int = 2
    frames: int = 12  # frames per video, sampled `sampling`-wise (CLIP4Clip: 12 uniform)
    sampling: str = "uniform"
    skip_bad_media: bool = False
    bootstrap: int = 1000  # resamples for 95% intervals; 0 disables
    seed: int = 0  # bootstrap, probe and random-frame seed
    recall_ks: tuple[int, ...] = RECALL_KS
    precision: str = "fp32"  # fp32, or autocast to bf16 / fp16 while encoding
    limit: int | None = None  # evaluate only the first N items (marked in the result)
    quick: bool = False  # part of a --quick bench run (marked in the result)
    cache_dir: Path | None = None  # None disables the embedding cache
    quiet: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # task-specific protocol settings
    rerank: str | None = None  # retrieval re-ranked by "dsl" or "qb-norm" (a separate protocol)
    querybank: list[str] | None = None  # QB-Norm's querybank: training captions, never the test's
    querybank_label: str | None = None  # where it came from, e.g. "msrvtt/train-9k captions"
    # item->text among all texts, or "grouped": among items by their best text (CLIP4Clip)
    i2t_ranking: str = "all-texts"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ConfigError(
                f"unknown frame sampling {self.sampling!r}; choose one of {', '.join(SAMPLINGS)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        from vilem.metrics.ranking import check_i2t_ranking, int_param

        for name, minimum in (("bootstrap", 0), ("frames", 1), ("batch_size", 1),
                              ("num_workers", 0), ("seed", 0)):  # fmt: skip
            int_param(getattr(self, name), name, minimum)
        if not self.recall_ks or any(int(k) < 1 for k in self.recall_ks):
            raise ConfigError(f"recall Ks must be positive integers, got {list(self.recall_ks)}")
        self.recall_ks = tuple(sorted({int(k) for k in self.recall_ks}))
        check_i2t_ranking(self.i2t_ranking)
        if self.rerank is not None:
            from vilem.eval.rerank import RERANKERS

            if self.rerank not in RERANKERS:
                raise ConfigError(
                    f"unknown re-ranking {self.rerank!r}; choose one of {', '.join(RERANKERS)}"
                )
            if self.rerank == "qb-norm" and not (self.querybank and self.querybank_label):
                raise ConfigError(
                    "QB-Norm needs a querybank of training captions (--querybank-split)"
                )
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be a positive number of items, got {self.limit}")


def _decoded_only(frames: np.ndarray) -> torch.Tensor:
    """The preprocessing validation uses: the decode is the check, the pixels are dropped."""
    return torch.zeros(len(frames))


class _MediaCheck(Dataset):
    """Item ``i`` decoded exactly as the encoding loader decodes it (``MediaDataset``: the same
    image loader, the same video frames); ``""`` when it decodes, else the DataError's text."""

    def __init__(self, split: Split, opts: EvalOptions):
        self.media = MediaDataset(
            split.item_paths, split.modality, _decoded_only, opts.frames, opts.sampling, opts.seed,
            windows=split.windows,
        )  # fmt: skip

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
    key = _media_check_key(split, opts)
    if key in _MEDIA_OK:  # every file decoded under these settings and none has changed since
        return split
    loader = DataLoader(
        _MediaCheck(split, opts), batch_size=None, num_workers=opts.num_workers,
        worker_init_fn=worker_init if opts.num_workers else None, shuffle=False,
    )  # fmt: skip
    checked = tqdm(loader, desc="checking media", total=len(split.items), disable=quiet)
    bad = [(i, msg) for i, msg in enumerate(checked) if msg]
    if not bad:
        _MEDIA_OK.add(key)
        return split
    where, n = f"{split.dataset}/{split.split}", len(split.items)
    first = bad[0][1]
    if split.media_hint and not split.item_paths[bad[0][0]].is_file():
        first += f" ({split.modality}s are looked for as {split.media_hint})"
    if not skip_bad:
        raise DataError(
            f"{len(bad)} of {n} {split.modality}s in {where} are missing or corrupt, the first: "
            f"{first}; pass --skip-bad-media to evaluate the rest and record the skipped ids"
        )
    if len(bad) == n:
        raise DataError(
            f"all {n} {split.modality}s of {where} were skipped as missing or corrupt, "
            f"the first: {first}"
        )
    bad_idx = {i for i, _ in bad}
    keep = [i for i in range(n) if i not in bad_idx]
    return split.subset(keep, skipped=[split.items[i] for i in sorted(bad_idx)])


# media checks that passed in this process (a bench evaluates the same split once per model
# and task): the files' paths, sizes and modification times and the decoding settings
_MEDIA_OK: set[tuple] = set()


def _media_check_key(split: Split, opts: EvalOptions) -> tuple:
    windows = None if split.windows is None else digest_strings([str(w) for w in split.windows])
    paths = digest_strings([str(p) for p in split.item_paths])
    return (paths, media_stamp(split.item_paths), split.modality, windows, opts.frames,
            opts.sampling, opts.seed)  # fmt: skip


def media_stamp(paths: list[Path]) -> str:
    """A digest of each media file's size and modification time: a file replaced in place
    changes it (the embedding cache key covers the media, not only the annotations)."""
    stamps = []
    for p in paths:
        try:
            st = os.stat(p)
            stamps.append(f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            stamps.append("missing")
    return digest_strings(stamps)


def _model_parts(model: RetrievalModel, opts: EvalOptions, kind: str) -> dict:
    parts = {"model": model.fingerprint(), "kind": kind}
    if opts.precision != "fp32":  # fp32 keys stay as they were: existing caches still hit
        parts["precision"] = opts.precision
    return parts


def _cache_parts(model: RetrievalModel, split: Split, opts: EvalOptions, kind: str) -> dict:
    parts = _model_parts(model, opts, kind)
    if kind == "items":
        parts |= {
            "dataset": split.dataset,
            "split": split.split,
            "revision": split.revision,
            "items": digest_strings(split.items),
            "paths": digest_strings([str(p) for p in split.item_paths]),
            "media": media_stamp(split.item_paths),
            "preprocessing": model.preprocessing(),
        }
        if split.modality == "video":
            parts |= {"frames": opts.frames, "sampling": opts.sampling, "seed": opts.seed}
            if split.windows is not None:
                parts["windows"] = split.window_key()
    return parts


def media_dataset(split: Split, model: RetrievalModel, opts: EvalOptions) -> MediaDataset:
    """The split's items as the model sees them (its own preprocessing, the options' frames)."""
    return MediaDataset(
        split.item_paths, split.modality, model.preprocess, opts.frames, opts.sampling, opts.seed,
        windows=split.windows,
    )  # fmt: skip


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
            worker_init_fn=worker_init if opts.num_workers else None,
            shuffle=False,
        )
        encode = model.encode_images if split.modality == "image" else model.encode_videos
        out = []
        with torch.inference_mode(), autocast(model, opts.precision):
            for pixels in tqdm(loader, desc=f"encoding {split.modality}s", disable=opts.quiet):
                out.append(encode(pixels).float().cpu().numpy())
                threads.tick()
        local = np.concatenate(out) if out else np.zeros((0, 1), np.float32)
        return gather_rows(local, n, unit=opts.batch_size)

    return _get_or_compute(cache, _cache_parts(model, split, opts, "items"), compute)


def encode_texts(
    model: RetrievalModel, texts: list[str], opts: EvalOptions, cache: EmbeddingCache
) -> np.ndarray:
    def compute() -> np.ndarray:
        lo, hi = shard_bounds(len(texts), *rank_world(), unit=opts.batch_size)
        out = []
        with torch.inference_mode(), autocast(model, opts.precision):
            for start in tqdm(
                range(lo, hi, opts.batch_size), desc="encoding texts", disable=opts.quiet
            ):
                chunk = model.encode_texts(texts[start : start + opts.batch_size])
                out.append(chunk.float().numpy())
                threads.tick()
        local = np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)
        return gather_rows(local, len(texts), unit=opts.batch_size)

    parts = _model_parts(model, opts, "texts") | {"texts": digest_strings(texts)}
    return _get_or_compute(cache, parts, compute)


def autocast(model: RetrievalModel, precision: str) -> contextlib.AbstractContextManager:
    """Encoding in ``precision``: fp32 as is, bf16/fp16 under torch.autocast on the model's
    device (the embeddings are returned as float32 either way)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(torch.device(model.device).type, dtype=dtype)


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


def protocol(
    model: RetrievalModel | None,
    split: Split | None,
    opts: EvalOptions,
    data_options: dict | None = None,
    modality: str | None = None,
) -> Protocol:
    """The protocol record of evaluating ``split`` with ``model`` under ``opts`` (without a
    model: the benchmark side only, as the bench plans a cell; without a split, ``modality``
    says which and the video decoding record stays unknown, as for a migrated result)."""
    video = (split.modality if split is not None else modality) == "video"
    decoding = None
    if video and split is not None:
        decoding = decoding_record(opts.frames, opts.sampling, split.clip_window)
    settings = dict(opts.settings)
    if opts.rerank is not None:
        settings["rerank"] = opts.rerank
        if opts.rerank == "qb-norm":
            settings["querybank"] = opts.querybank_label
    if opts.i2t_ranking != "all-texts":  # default: earlier protocols unchanged
        settings["i2t_ranking"] = opts.i2t_ranking
    return Protocol(
        frames=opts.frames if video else None,
        sampling=opts.sampling if video else None,
        recall_ks=list(opts.recall_ks),
        bootstrap=opts.bootstrap,
        seed=opts.seed,
        precision=opts.precision,
        limit=opts.limit,
        quick=opts.quick,
        options=dict(data_options or {}),
        settings=settings,
        decoding=decoding,
        preprocessing=None if model is None else model.preprocessing(),
        text_max_len=None if model is None else model.text_max_len,
        device=None if model is None else torch.device(model.device).type,
    )


def check_ranking_options(task: str, rerank: str | None, i2t_ranking: str) -> None:
    """Re-ranking and the item->text ranking are retrieval's: refused for another task."""
    if task != "retrieval" and (rerank or i2t_ranking != "all-texts"):
        what = "--rerank" if rerank else "--i2t-ranking"
        raise ConfigError(f"{what} applies to --task retrieval only (task {task!r} ranks nothing)")


def evaluate(
    model: RetrievalModel,
    split: Split,
    task: str,
    opts: EvalOptions,
    *,
    record: ModelRecord | None = None,
    dataset_key: str | None = None,
    data_options: dict[str, Any] | None = None,
    save_embeddings_dir: Path | None = None,
) -> Result:
    """Run ``task`` (a name in ``vilem.eval.tasks``) on ``split`` and return its ``Result``.

    ``record`` names the model (default: its config's name and fingerprint); ``dataset_key`` and
    ``data_options`` (the bench spec's key and the adapter options the split was loaded with) go
    into the protocol record, so results of differently loaded data are told apart."""
    spec = get_task(task)
    record = record or ModelRecord(name=str(model.config().get("name", "model")))
    record.config, record.fingerprint = model.config(), model.fingerprint()
    if spec.needs_heads and not can_proofread(model):
        raise ConfigError(
            f"task {task!r} needs a ViLEM model with error-detection heads; "
            f"{record.spec or record.name} has none"
        )
    check_ranking_options(task, opts.rerank, opts.i2t_ranking)
    if save_embeddings_dir is not None and task != "retrieval":
        raise ConfigError(
            f"--save-embeddings needs --task retrieval (task {task!r} saves no embeddings)"
        )
    if opts.limit is not None and opts.limit < len(split.items):
        split = split.subset(list(range(opts.limit)))
        split.notes.append(f"--limit {opts.limit}: only the first {opts.limit} items")
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
    out.extra["machine"] = machine_record()  # the scores' last bits depend on it
    intervals = out.scores.pop("intervals", {})
    return Result(
        model=record,
        dataset=typed(DatasetRecord, split.describe() | {"key": dataset_key}),
        task=task,
        protocol=protocol(model, split, opts, data_options),
        metrics=out.scores,
        intervals=intervals,
        per_query=out.per_query,
        examples=out.examples,
        timings=timings,
        extra=out.extra,
    )


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
