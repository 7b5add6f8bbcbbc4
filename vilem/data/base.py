"""The dataset adapter interface: one split = items (image or video files), texts, and the
text -> item mapping. Adapters register by name; outside packages add them through the
``vilem.datasets`` entry-point group."""

from __future__ import annotations

import hashlib
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from vilem.errors import DataError
from vilem.registry import Registry, closest

Modality = Literal["image", "video"]
Window = tuple[float, float]  # (start, end) seconds of a video to decode

# How texts query items, as the video retrieval literature names its protocols:
# - sentence: one text per item (MSR-VTT 1k-A: one sentence per video);
# - multi: every caption is a query (MSVD, VATEX, COCO); item->text counts a hit when any of the
#   item's captions is in the top k;
# - paragraph: all of an item's descriptions joined into one query (DiDeMo, ActivityNet).
PROTOCOLS: tuple[str, ...] = ("sentence", "multi", "paragraph")


@dataclass(frozen=True)
class Probe:
    """One fine-grained probe: for ``item`` a model is right when s(item, positive) >
    s(item, negative). Text-only chance is 50%."""

    item: int  # index into the split's items
    positive: str  # the true caption
    negative: str  # the same caption with one exact edit
    category: str  # e.g. "colour", "relation", "swap_att"
    # the positive's key word where the edit states its opposite ("above" -> "below"): the
    # category is then also scored word-balanced, so a text-only word preference scores 50%
    word: str | None = None
    # attribute edits of a scene (colour, shape, size): True when the new value is present on
    # another object of the item (a binding error: the words alone are all in the image), False
    # when it is absent, None where unknown or not an attribute edit
    binding: bool | None = None


@dataclass
class Split:
    """One evaluated or trained-on split of a dataset.

    ``text_to_item[j]`` is the index into ``items`` of the item text ``j`` describes; an item may
    have several texts (COCO: 5). ``scenes`` optionally holds one structured record per item (the
    synthetic data keeps them so probes can make exact edits).

    ``protocol`` names how the texts query the items (``PROTOCOLS``); left None, it is inferred:
    ``sentence`` when every item has exactly one text, else ``multi``. ``windows`` optionally
    gives, per item, the ``(start, end)`` seconds of the video to decode (None: the whole video);
    ``clip_window`` says in words which policy produced them.
    """

    dataset: str
    split: str
    root: Path
    modality: Modality
    items: list[str]  # item ids, unique
    item_paths: list[Path]  # media files, absolute, inside root
    texts: list[str]
    text_to_item: np.ndarray  # int64, shape (len(texts),)
    revision: str  # content hash of the annotations (or generator manifest)
    skipped: list[str] = field(default_factory=list)  # item ids dropped (missing/corrupt media)
    scenes: list[dict[str, Any]] | None = None
    probes: list[Any] | None = None  # vilem.eval.probes.Probe list, for datasets that ship probes
    notes: list[str] = field(default_factory=list)  # what exactly was evaluated, in words
    protocol: str | None = None  # sentence | multi | paragraph (None: inferred, see above)
    windows: list[Window | None] | None = None  # per item (start, end) seconds; None: whole
    clip_window: str = "whole video"  # the window policy, in words (results record it)
    media_hint: str = ""  # which files an item's media may be, in words (for a missing one)

    def __post_init__(self) -> None:
        self.text_to_item = np.asarray(self.text_to_item, dtype=np.int64)
        if self.windows is not None:
            if len(self.windows) != len(self.items):
                raise ValueError("windows and items differ in length")
            self.windows = [None if w is None else _window(w) for w in self.windows]
        if len(self.items) != len(self.item_paths):
            raise ValueError("items and item_paths differ in length")
        if len(set(self.items)) != len(self.items):  # one item as two: one always counts a miss
            first: dict[str, int] = {}
            for i, item in enumerate(self.items):
                if item in first:
                    raise DataError(
                        f"{self.dataset}/{self.split}: item {item!r} is listed twice "
                        f"(items {first[item]} and {i}); item ids must be unique"
                    )
                first[item] = i
        if len(self.texts) != len(self.text_to_item):
            raise ValueError("texts and text_to_item differ in length")
        if len(self.text_to_item) and (
            self.text_to_item.min() < 0 or self.text_to_item.max() >= len(self.items)
        ):
            raise ValueError("text_to_item points outside items")
        if self.protocol is None:
            per_item = np.bincount(self.text_to_item, minlength=len(self.items))
            self.protocol = "sentence" if len(per_item) and (per_item == 1).all() else "multi"
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; protocols: {PROTOCOLS}")

    @property
    def item_to_texts(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.items]
        for j, i in enumerate(self.text_to_item.tolist()):
            out[i].append(j)
        return out

    def counts(self) -> dict[str, int]:
        return {
            "items": len(self.items),
            "texts": len(self.texts),
            "skipped_items": len(self.skipped),
        }

    def subset(self, keep: list[int], skipped: list[str] | None = None) -> Split:
        """The split restricted to items ``keep`` (indices) and their texts."""
        keep_arr = np.asarray(sorted(keep), dtype=np.int64)
        new_index = np.full(len(self.items), -1, dtype=np.int64)
        new_index[keep_arr] = np.arange(len(keep_arr))
        text_keep = np.nonzero(new_index[self.text_to_item] >= 0)[0]
        notes = list(self.notes)
        if skipped:
            notes.append(
                f"partial set: {len(skipped)} of {len(self.items)} {self.modality}s skipped as "
                "missing or corrupt (their ids are in skipped_ids); numbers are not comparable "
                "with results on the full split"
            )
        return Split(
            dataset=self.dataset,
            split=self.split,
            root=self.root,
            modality=self.modality,
            items=[self.items[i] for i in keep_arr],
            item_paths=[self.item_paths[i] for i in keep_arr],
            texts=[self.texts[j] for j in text_keep],
            text_to_item=new_index[self.text_to_item[text_keep]],
            revision=self.revision,
            skipped=list(self.skipped) + list(skipped or []),
            scenes=None if self.scenes is None else [self.scenes[i] for i in keep_arr],
            probes=None
            if self.probes is None
            else [
                replace(p, item=int(new_index[p.item]))
                for p in self.probes
                if new_index[p.item] >= 0
            ],
            notes=notes,
            protocol=self.protocol,
            windows=None if self.windows is None else [self.windows[i] for i in keep_arr],
            clip_window=self.clip_window,
            media_hint=self.media_hint,
        )

    def window_key(self) -> str | None:
        """A short hash of the per-item windows (None without any): the windows change the
        decoded frames, so an embedding cache key must include it."""
        if self.windows is None:
            return None
        text = ";".join("-" if w is None else f"{w[0]!r},{w[1]!r}" for w in self.windows)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def training_pairs(self, seed: int = 0, epoch: int = 0) -> Iterator[tuple[int, int]]:
        """(item index, text index) pairs, one per text, shuffled deterministically per epoch."""
        rng = np.random.default_rng([seed, epoch])
        for j in rng.permutation(len(self.texts)).tolist():
            yield int(self.text_to_item[j]), j

    def describe(self) -> dict[str, Any]:
        """What a result file records about the data that was evaluated."""
        return {
            "name": self.dataset,
            "split": self.split,
            "modality": self.modality,
            "revision": self.revision,
            "counts": self.counts(),
            "skipped_ids": list(self.skipped),
            "notes": list(self.notes),
            "protocol": self.protocol,
            "clip_window": self.clip_window,
        }


def _window(window: Any) -> Window:
    """``(start, end)`` as floats with 0 <= start < end, both finite."""
    try:
        start, end = (float(x) for x in window)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a clip window is (start, end) seconds, got {window!r}") from exc
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise ValueError(f"a clip window needs 0 <= start < end, got ({start}, {end})")
    return (start, end)


class DatasetAdapter(ABC):
    """Reads one dataset's files. Subclasses set the class attributes and ``load_split``."""

    name: ClassVar[str]
    modality: ClassVar[Modality]
    splits: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""
    # where no split is called test: the one papers report (named when "test" or "val" is asked)
    usual_test: ClassVar[str | None] = None
    # follow symlinks inside the root that lead out of it (the ``allow_symlinks`` option)
    allow_symlinks: bool = False

    def __init__(self, root: str | os.PathLike | None = None, **options: Any):
        self.root = Path(root) if root is not None else default_root(self.name)
        self.options = options

    @classmethod
    def split_hint(cls, split: str) -> str:
        """' (did you mean X?)' for a split this dataset lacks, or the usual test split."""
        if cls.usual_test is not None and split in ("test", "val"):
            return f" (the usual retrieval test is {cls.usual_test!r})"
        return closest(split, list(cls.splits))

    @abstractmethod
    def _load(self, split: str) -> Split:
        """Build the split; the caller has already checked ``split`` and the root."""

    def load_split(self, split: str) -> Split:
        if split not in self.splits:
            raise DataError(
                f"dataset {self.name!r} has no split {split!r}{self.split_hint(split)}; "
                f"splits: {', '.join(self.splits)}"
            )
        if not self.root.is_dir():
            raise DataError(
                f"dataset root for {self.name!r} not found: {self.root} "
                f"(see datasets/{self.name}/README.md for the expected layout)"
            )
        return self._load(split)


def default_root(name: str) -> Path:
    """``$VILEM_DATA/<name>`` when set, else ``datasets/<name>`` under the current folder."""
    return Path(os.environ.get("VILEM_DATA", "datasets")) / name


def file_digest(*paths: Path) -> str:
    """A short content hash of annotation files: the dataset revision stored with results."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


DATASETS: Registry[type[DatasetAdapter]] = Registry(
    "dataset", base=DatasetAdapter, entry_point_group="vilem.datasets"
)


def register_dataset(name: str):
    """Class decorator: ``@register_dataset("coco")`` adds an adapter under ``name``."""

    def decorator(cls: type[DatasetAdapter]) -> type[DatasetAdapter]:
        cls.name = name
        DATASETS.register(name, cls)
        return cls

    return decorator
