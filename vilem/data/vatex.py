"""VATEX (Wang et al., ICCV 2019): 10-second YouTube clips with 10 English (and 10 Chinese)
captions each; retrieval uses the English ones, every caption a query (``protocol=multi``).

Captions: the official ``vatex_training_v1.0.json`` (train) and ``vatex_validation_v1.0.json``
(val and test): a list of ``{"videoID": "<YouTube id>_<start>_<end>", "enCap": [10],
"chCap": [10]}``; CLIP2Video's ``vatex_data.json`` (an object ``videoID -> {"enCap": [...]}``)
is read as well.

Split: the partition of HGR (Chen et al., CVPR 2020) that the retrieval literature reports:
25,991 training videos, and the 3,000 official validation videos halved into 1,500 val and
1,500 test. It comes as ``train_list.txt`` / ``val_list.txt`` / ``test_list.txt`` (one videoID a
line, as CLIP2Video ships them) or as HGR's ``public_split/{trn,val,tst}_names.npy`` (read with
``allow_pickle=False``: plain string arrays only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vilem.data.base import Split, register_dataset
from vilem.data.videotext import Video, VideoTextAdapter, caption_list, problem, read_ids
from vilem.errors import DataError
from vilem.io import read_json

CAPTION_FILES = {
    "train": ("vatex_training_v1.0.json", "vatex_data.json"),
    "val": ("vatex_validation_v1.0.json", "vatex_data.json"),
    "test": ("vatex_validation_v1.0.json", "vatex_data.json"),
}
LISTS = {"train": "train_list.txt", "val": "val_list.txt", "test": "test_list.txt"}
NPY = {"train": "trn_names.npy", "val": "val_names.npy", "test": "tst_names.npy"}


def read_captions(path: Path) -> dict[str, list[str]]:
    """videoID -> English captions from an official VATEX file or CLIP2Video's dict form."""
    data = read_json(path, "VATEX caption file")
    if isinstance(data, dict):
        entries: list[Any] = []
        for k, v in data.items():
            if not isinstance(v, dict):
                raise problem(path, f"video {k}", f"expected an object with 'enCap', got "
                              f"{type(v).__name__}")  # fmt: skip
            entries.append({"videoID": k, **v})
    elif isinstance(data, list):
        entries = data
    else:
        raise DataError(f"{path}: expected a list of videos or an object keyed by videoID")
    out: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("videoID"), str):
            raise problem(path, f"entry {k}", "expected an object with a 'videoID' string")
        video_id = entry["videoID"].strip()
        if video_id in first:  # the later entry would silently replace the earlier captions
            raise problem(path, f"entry {k}", f"videoID {video_id!r} is listed twice "
                          f"(entries {first[video_id]} and {k})")  # fmt: skip
        first[video_id] = k
        out[video_id] = caption_list(entry.get("enCap"), path, f"video {video_id} 'enCap'")
    return out


def read_npy_ids(path: Path) -> list[str]:
    """Video ids from a numpy string array (no pickled objects)."""
    try:
        with path.open("rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if magic != b"\x93NUMPY":  # numpy would take any other file for a pickle
        raise DataError(
            f"{path} is not a .npy file (no NumPy header); write the ids to test_list.txt, one "
            "videoID a line (see datasets/vatex/README.md)"
        )
    try:
        names = np.load(path, allow_pickle=False)
    except ValueError as exc:  # an object array needs pickle: refused
        raise DataError(
            f"{path}: not a plain numpy string array ({exc}); convert it once to "
            "test_list.txt, one videoID a line (see datasets/vatex/README.md)"
        ) from exc
    except OSError as exc:
        raise DataError(f"{path} is not a numpy file: {exc}") from exc
    if names.dtype.kind not in "US" or names.ndim != 1:
        raise DataError(
            f"{path}: expected a 1-D array of video ids, got {names.dtype} {names.shape}"
        )
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]


@register_dataset("vatex")
class Vatex(VideoTextAdapter):
    """VATEX clips and English captions; the adapter builds paths, evaluation checks videos."""

    splits = ("train", "val", "test")
    description = (
        "VATEX English video-text retrieval (HGR split: 25,991 / 1,500 / 1,500); options: "
        "protocol=multi|sentence"
    )
    protocols = ("multi", "sentence")
    official = {"train": 25991, "val": 1500, "test": 1500}

    def _ids(self, split: str) -> tuple[Path, list[str]]:
        path = self._optional(LISTS[split])
        if path is not None:
            return path, read_ids(path)
        path = self._optional(NPY[split], f"public_split/{NPY[split]}")
        if path is None:
            self._find(LISTS[split], NPY[split])  # the error names both
        assert path is not None
        ids = read_npy_ids(path)
        if len(set(ids)) != len(ids):
            raise DataError(f"{path}: a video id is listed twice")
        return path, ids

    def _load(self, split: str) -> Split:
        list_path, ids = self._ids(split)
        caption_path = self._find(*CAPTION_FILES[split])
        captions = read_captions(caption_path)
        videos = []
        for video_id in ids:
            if video_id not in captions:
                raise DataError(
                    f"{list_path}: video {video_id!r} has no captions in {caption_path.name}"
                )
            videos.append(Video(video_id, captions[video_id]))
        paths = self._video_paths([[f"videos/{v}.mp4", f"videos/{v}.webm"] for v in ids])
        notes = [
            f"split {split!r} = the videos of {list_path.name} (HGR's partition, as the retrieval "
            f"literature reports VATEX) with the English captions (enCap) of {caption_path.name}",
        ]
        return self._split(
            split, videos, paths, [list_path, caption_path], notes, "whole clip",
            looked_for="videos/<videoID>.mp4 (or .webm), the 10-second clips",
        )  # fmt: skip
