"""ActivityNet Captions (Krishna et al., ICCV 2017): YouTube videos from ActivityNet 1.3, each
with several temporally localised sentences.

Read from the dataset's ``train.json``, ``val_1.json`` and ``val_2.json``: an object keyed by
video id (``v_<YouTube id>``) whose values hold ``duration`` (seconds), ``timestamps`` (one
``[start, end]`` per sentence) and ``sentences``. The usual retrieval test is ``val_1``
(4,917 videos; ``val_2`` has 4,885, ``train`` 10,009), evaluated paragraph-to-video as CLIP4Clip
does: a video's sentences joined into one query (``protocol=paragraph``, the default; ``multi``
makes every sentence a query of its video).

Clip window (``window``): ``video`` (default), the whole video, as CLIP4Clip reads [0,
ceil(duration)]; ``span``, from the earliest sentence start to the latest sentence end.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vilem.data.base import Split, Window, register_dataset
from vilem.data.videotext import Video, VideoTextAdapter, caption_list, problem
from vilem.errors import DataError
from vilem.io import read_json

FILES = {"train": "train.json", "val_1": "val_1.json", "val_2": "val_2.json"}
EXTS = (".mp4", ".mkv", ".webm")
_WINDOW_WORDS = {
    "video": "whole video (CLIP4Clip reads [0, ceil(duration)] s)",
    "span": "from the earliest sentence start to the latest sentence end of each video",
}


def _seconds(value: Any, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise problem(path, where, f"{value!r} is not a number of seconds")
    return float(value)


def _span(entry: dict, n: int, path: Path, where: str) -> Window | None:
    """Earliest start to latest end of the sentences, inside [0, duration] where it is known;
    None when that leaves nothing (every sentence past the stated duration)."""
    stamps = entry.get("timestamps")
    if not isinstance(stamps, list) or len(stamps) != n:
        raise problem(path, where, f"'timestamps' should list one [start, end] per sentence ({n})")
    pairs = []
    for pair in stamps:
        if not isinstance(pair, list) or len(pair) != 2:
            raise problem(path, where, f"timestamp {pair!r} is not a [start, end] pair")
        a, b = (_seconds(t, path, where) for t in pair)
        pairs.append((min(a, b), max(a, b)))  # a few real entries have them reversed
    start = max(0.0, min(a for a, _ in pairs))
    end = max(b for _, b in pairs)
    if entry.get("duration") is not None:  # known: the window ends there at the latest
        duration = _seconds(entry["duration"], path, f"{where} 'duration'")
        if duration <= 0:
            raise problem(path, where, f"'duration' {duration!r} is not positive")
        end = min(end, duration)
    return (start, end) if end > start else None


@register_dataset("activitynet")
class ActivityNet(VideoTextAdapter):
    """ActivityNet Captions videos and paragraphs; evaluation checks the videos."""

    splits = ("train", "val_1", "val_2")
    usual_test = "val_1"
    description = (
        "ActivityNet Captions paragraph-to-video retrieval (val_1: 4,917 videos); options: "
        "protocol=paragraph|multi, window=video|span"
    )
    protocols = ("paragraph", "multi")
    window_policies = ("video", "span")
    official = {"train": 10009, "val_1": 4917, "val_2": 4885}

    def _load(self, split: str) -> Split:
        path = self._find(FILES[split])
        data = read_json(path, "ActivityNet Captions annotation file")
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected an object keyed by video id")
        videos = []
        for video_id, entry in data.items():
            where = f"video {video_id}"
            if not isinstance(entry, dict):
                raise problem(path, where, f"expected an object, got {type(entry).__name__}")
            captions = caption_list(entry.get("sentences"), path, f"{where} 'sentences'")
            span = _span(entry, len(captions), path, where)
            if self.window == "span" and span is None:
                raise problem(path, where, "no sentence lies inside the video's duration")
            videos.append(Video(video_id, captions, span if self.window == "span" else None))
        # the files are named v_<id>.<ext> by the official crawler, <id>.<ext> in CLIP4Clip's copy
        stems = [[v.id, v.id[2:]] if v.id.startswith("v_") else [v.id] for v in videos]
        paths = self._video_paths([[f"videos/{s}{e}" for s in ss for e in EXTS] for ss in stems])
        notes = [
            f"split {split!r} = every video of {path.name}"
            + (" (the usual ActivityNet Captions retrieval test)" if split == "val_1" else ""),
        ]
        return self._split(
            split, videos, paths, [path], notes, _WINDOW_WORDS[self.window],
            looked_for="videos/<video id>.mp4 (or .mkv/.webm; with or without the 'v_' prefix)",
        )  # fmt: skip
