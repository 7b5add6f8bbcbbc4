"""LSMDC (Large Scale Movie Description Challenge, Rohrbach et al. 2017): clips of 202 movies
with their audio-description or script sentences.

Read from the challenge's tab-separated annotation files (no header; one clip and sentence per
line: clip id, start and end aligned, start and end extracted, sentence, tab-separated):
``LSMDC16_annos_training.csv`` (train), ``LSMDC16_annos_val.csv`` (val) and
``LSMDC16_challenge_1000_publictect.csv`` (test: the 1,000-clip public test of the movie
retrieval challenge, one sentence per clip, as CLIP4Clip and the field report). A clip id may
carry several sentences in the training file; each is a query of that clip (``protocol=multi``).

The times locate the clip in its movie; the clips are distributed already cut, so no clip
window is applied. Videos: ``videos/<movie>/<clip id>.avi`` (the movie is the clip id without its
trailing ``_<start>-<end>``), or ``videos/<clip id>.avi``; ``.mp4`` is accepted too.
"""

from __future__ import annotations

from pathlib import Path

from vilem.data.base import Split, register_dataset
from vilem.data.videotext import Video, VideoTextAdapter, problem, read_lines
from vilem.errors import DataError

FILES = {
    "train": "LSMDC16_annos_training.csv",
    "val": "LSMDC16_annos_val.csv",
    "test": "LSMDC16_challenge_1000_publictect.csv",
}
FIELDS = 6


def read_annotations(path: Path) -> dict[str, list[str]]:
    """clip id -> its sentences, in file order."""
    out: dict[str, list[str]] = {}
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        while len(fields) > FIELDS and not fields[-1].strip():
            fields.pop()  # trailing tabs (CLIP4Clip strips the line first)
        if len(fields) != FIELDS:
            raise problem(
                path,
                f"line {n}",
                f"{len(fields)} tab-separated fields, expected {FIELDS} "
                "(clip id, 4 times, sentence)",
            )
        clip, sentence = fields[0].strip(), fields[5].strip()
        if not clip:
            raise problem(path, f"line {n}", "empty clip id")
        if not sentence:
            raise problem(path, f"line {n}", f"empty sentence for {clip}")
        out.setdefault(clip, []).append(sentence)
    if not out:
        raise DataError(f"{path}: no clips")
    return out


@register_dataset("lsmdc")
class Lsmdc(VideoTextAdapter):
    """LSMDC clips and sentences; the adapter builds paths, evaluation checks the videos."""

    splits = ("train", "val", "test")
    description = (
        "LSMDC movie clip retrieval (the 1,000-clip public test); options: protocol=multi|sentence"
    )
    protocols = ("multi", "sentence")
    official = {"test": 1000}

    def _load(self, split: str) -> Split:
        path = self._find(FILES[split])
        sentences = read_annotations(path)
        videos = [Video(clip, texts) for clip, texts in sentences.items()]
        paths = self._video_paths(
            [
                [f"videos/{movie}/{v.id}{ext}" for ext in (".avi", ".mp4")]
                + [f"videos/{v.id}{ext}" for ext in (".avi", ".mp4")]
                for v in videos
                for movie in [v.id.rsplit("_", 1)[0]]
            ]
        )
        what = "the 1,000-clip public test" if split == "test" else f"the {split} annotations"
        notes = [f"split {split!r} = every clip of {path.name} ({what})"]
        return self._split(
            split, videos, paths, [path], notes, "whole clip (clips are cut)",
            looked_for="videos/<movie>/<clip id>.avi (or videos/<clip id>.avi; .mp4 accepted)",
        )  # fmt: skip
