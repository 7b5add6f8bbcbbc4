"""MSR-VTT video-text retrieval, with the split definitions papers actually use.

Published numbers differ mostly because the split differs, so each split is named after its
definition and the loaded split's notes say which files and counts were used:

- ``test``: the 1k-A test set (JSFusion; what CLIP4Clip and LAVIS report): 1,000 videos, one
  sentence each, from ``MSRVTT_JSFUSION_test.csv``;
- ``train-9k``: the 9,000 videos of ``MSRVTT_train.9k.csv`` (1k-A's training set), every sentence
  of each from ``MSRVTT_data.json``;
- ``train-7k``: the 7,010 videos of ``MSRVTT_train.7k.csv`` (official train + val), likewise;
- ``full-test``: the official test split, ``videos[].split == "test"`` in ``MSRVTT_data.json``
  (2,990 videos), with all their sentences.
"""

from __future__ import annotations

import csv
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from vilem.data.base import DatasetAdapter, Split, file_digest, register_dataset
from vilem.data.karpathy import InsideRoot
from vilem.errors import ConfigError, DataError
from vilem.io import read_json

ANNOTATION_DIRS = (".", "annotations", "msrvtt_data")  # where annotation files are looked for
DATA_JSON = "MSRVTT_data.json"
TEST_CSV = "MSRVTT_JSFUSION_test.csv"
TRAIN_CSVS = {"train-9k": "MSRVTT_train.9k.csv", "train-7k": "MSRVTT_train.7k.csv"}
TEST_HEADER = ("key", "vid_key", "video_id", "sentence")

_SPLIT_NOTES = {
    "test": (
        "split 'test' = MSR-VTT 1k-A test (JSFusion split, as CLIP4Clip/LAVIS report) from "
        f"{TEST_CSV}, one sentence per video (1,000 / 1,000 in the full file); this is not the "
        "official 2,990-video test split, which is 'full-test'"
    ),
    "train-9k": (
        "split 'train-9k' = video ids of MSRVTT_train.9k.csv (9,000 in the full file: 1k-A's "
        f"training set) with every sentence of each video from {DATA_JSON}"
    ),
    "train-7k": (
        "split 'train-7k' = video ids of MSRVTT_train.7k.csv (7,010 in the full file: official "
        f"train + val) with every sentence of each video from {DATA_JSON}"
    ),
    "full-test": (
        f"split 'full-test' = official test split (videos[].split == 'test' in {DATA_JSON}; "
        "2,990 videos / 59,800 sentences in the full file) with all their sentences"
    ),
}


def _problem(path: Path, where: str, message: str) -> DataError:
    return DataError(f"{path}: {where}: {message}")


def _string(entry: Any, key: str, path: Path, where: str) -> str:
    if not isinstance(entry, dict):
        raise _problem(path, where, f"expected an object, got {type(entry).__name__}")
    if key not in entry:
        raise _problem(path, where, f"missing key {key!r}")
    value = entry[key]
    if not isinstance(value, str):
        raise _problem(path, where, f"{key!r} should be a string, got {type(value).__name__}")
    return value


def _read_csv(path: Path, required: tuple[str, ...], expected_header: str) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts (with ``_line`` added), checking header and field counts."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # a BOM is fine
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file, expected header {expected_header}")
            header = [h.strip() for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    f"{path}: row 1 (header): missing column {missing[0]!r}; got "
                    f"{','.join(header)!r}, expected {expected_header}"
                )
            rows = []
            for fields in reader:
                if not fields:  # blank line
                    continue
                if len(fields) != len(header):
                    raise _problem(
                        path,
                        f"row {reader.line_num}",
                        f"{len(fields)} fields, the header has {len(header)}",
                    )
                row = dict(zip(header, fields, strict=True))
                row["_line"] = str(reader.line_num)
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise DataError(f"{path} is not a valid CSV file: {exc}") from exc
    return rows


@register_dataset("msrvtt")
class MsrVtt(DatasetAdapter):
    """MSR-VTT videos and captions; the adapter builds paths, evaluation checks the videos."""

    modality = "video"
    splits = ("test", "train-9k", "train-7k", "full-test")
    description = "MSR-VTT video-text retrieval (1k-A test, 9k/7k train, official full test)"

    def __init__(self, root: str | os.PathLike | None = None, **options: Any):
        if options:
            raise ConfigError(
                f"dataset 'msrvtt' takes no options, got {', '.join(map(repr, options))}"
            )
        super().__init__(root)

    @cached_property
    def video_dir(self) -> str:
        """``videos``, or ``videos/all`` when the archive was unpacked that way."""
        return "videos/all" if (self.root / "videos" / "all").is_dir() else "videos"

    def _find(self, name: str) -> Path:
        for d in ANNOTATION_DIRS:
            path = self.root / d / name
            if path.is_file():
                return path
        dirs = ", ".join(str(self.root / d) for d in ANNOTATION_DIRS)
        raise DataError(
            f"{name} not found for dataset 'msrvtt' (looked in {dirs}; "
            "see datasets/msrvtt/README.md)"
        )

    def _sentences(self, path: Path) -> tuple[dict[str, list[str]], list[Any]]:
        """(video id -> its captions in file order, the ``videos`` list) from MSRVTT_data.json."""
        data = read_json(path, "MSR-VTT annotation file")
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected an object with 'videos' and 'sentences' lists")
        for key in ("videos", "sentences"):
            if not isinstance(data.get(key), list):
                raise DataError(f"{path}: expected a {key!r} list at the top level")
        captions: dict[str, list[str]] = {}
        for k, sentence in enumerate(data["sentences"]):
            where = f"sentences[{k}]"
            video_id = _string(sentence, "video_id", path, where)
            where = f"sentences[{k}] (video {video_id})"
            text = _string(sentence, "caption", path, where).strip()
            if not text:
                raise _problem(path, where, "empty caption")
            captions.setdefault(video_id, []).append(text)
        return captions, data["videos"]

    def _load(self, split: str) -> Split:
        order: list[str] = []  # video ids, in file order
        by_video: dict[str, list[str]] = {}
        if split == "test":
            files = [self._find(TEST_CSV)]
            header = ",".join(TEST_HEADER)
            for row in _read_csv(files[0], ("video_id", "sentence"), header):
                where = f"row {row['_line']}"
                video_id, text = row["video_id"].strip(), row["sentence"].strip()
                if not video_id:
                    raise _problem(files[0], where, "empty video_id")
                if not text:
                    raise _problem(files[0], where, f"empty sentence for {video_id}")
                if video_id not in by_video:
                    order.append(video_id)
                by_video.setdefault(video_id, []).append(text)
        elif split in TRAIN_CSVS:
            files = [self._find(TRAIN_CSVS[split]), self._find(DATA_JSON)]
            captions, _ = self._sentences(files[1])
            for row in _read_csv(files[0], ("video_id",), "video_id"):
                where = f"row {row['_line']}"
                video_id = row["video_id"].strip()
                if video_id in by_video:
                    raise _problem(files[0], where, f"{video_id!r} is listed twice")
                if video_id not in captions:
                    raise _problem(files[0], where, f"{video_id!r} has no sentences in {DATA_JSON}")
                order.append(video_id)
                by_video[video_id] = captions[video_id]
        else:  # full-test
            files = [self._find(DATA_JSON)]
            captions, videos = self._sentences(files[0])
            for k, video in enumerate(videos):
                video_id = _string(video, "video_id", files[0], f"videos[{k}]")
                if _string(video, "split", files[0], f"videos[{k}] ({video_id})") != "test":
                    continue
                if video_id not in captions:
                    raise _problem(files[0], f"videos[{k}]", f"{video_id!r} has no sentences")
                order.append(video_id)
                by_video[video_id] = captions[video_id]
        if not order:
            raise DataError(f"{files[0]}: no videos for split {split!r}")
        inside = InsideRoot(self.root, self.allow_symlinks)
        paths = [inside(f"{self.video_dir}/{v}.mp4", f"{files[0]}: video path") for v in order]
        texts = [t for v in order for t in by_video[v]]
        text_to_item = np.repeat(np.arange(len(order)), [len(by_video[v]) for v in order])
        notes = [
            _SPLIT_NOTES[split],
            f"loaded from {', '.join(f.name for f in files)}: "
            f"{len(order)} videos / {len(texts)} sentences",
            f"video paths: {self.root}/{self.video_dir}/<video_id>.mp4",
            "about 2k MSR-VTT videos are missing or broken in common downloads (DESIGN.md "
            "section 3): evaluation checks every video and stops, or with --skip-bad-media "
            "skips the unreadable ones and records their ids; compare numbers only on the same "
            "split with the same skipped videos",
        ]
        return Split(
            dataset=self.name,
            split=split,
            root=self.root,
            modality="video",
            items=order,
            item_paths=paths,
            texts=texts,
            text_to_item=text_to_item,
            revision=file_digest(*files),
            notes=notes,
        )
