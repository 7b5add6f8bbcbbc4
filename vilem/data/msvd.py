"""MSVD (Microsoft Research Video Description Corpus, Chen & Dolan 2011): 1,970 YouTube clips
with about 40 English captions each, and the standard 1,200 / 100 / 670 train / val / test split.

Captions come from the corpus's CSV release (``MSR Video Description Corpus.csv``, also shared as
``video_corpus.csv``: columns ``VideoID, Start, End, WorkerID, Source, AnnotationTime, Language,
Description``; English rows only; the clip is ``<VideoID>_<Start>_<End>``), or from the widely
shared ``raw-captions.pkl`` (clip -> list of token lists), which is read with a restricted
unpickler that builds only dicts, lists, strings and numbers and refuses everything else.

The split comes from ``train_list.txt`` / ``val_list.txt`` / ``test_list.txt`` (one clip per
line, as CLIP4Clip's ``msvd_data`` ships them) or, without those, from ``youtube_mapping.txt``
(``<clip> vid<N>``: vid1-vid1200 train, vid1201-vid1300 val, vid1301-vid1970 test).
"""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path
from typing import Any

from vilem.data.base import Split, register_dataset
from vilem.data.videotext import (
    Video,
    VideoTextAdapter,
    problem,
    read_ids,
    read_lines,
)
from vilem.errors import DataError, one_line

CSV_NAMES = ("MSR Video Description Corpus.csv", "video_corpus.csv")
PICKLE = "raw-captions.pkl"
MAPPING = "youtube_mapping.txt"
LISTS = {"train": "train_list.txt", "val": "val_list.txt", "test": "test_list.txt"}
RANGES = {"train": (1, 1200), "val": (1201, 1300), "test": (1301, 1970)}  # vid numbers
CSV_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")
MAX_PICKLE_BYTES = 256 << 20  # the real file is ~3 MB


class _PlainUnpickler(pickle.Unpickler):
    """Loads only what needs no class: dicts, lists, tuples, strings, numbers. Every global
    lookup (the only way a pickle can name a callable to run) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only plain data is read")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: only plain data is read")


def load_plain_pickle(path: Path) -> Any:
    """Unpickle ``path`` with ``_PlainUnpickler``; anything else is a one-line DataError."""
    if path.stat().st_size > MAX_PICKLE_BYTES:
        raise DataError(f"{path}: larger than {MAX_PICKLE_BYTES >> 20} MiB, refused")
    data = path.read_bytes()
    try:
        return _PlainUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except Exception as exc:  # a hostile or damaged pickle can raise anything while parsing
        raise DataError(f"{path}: not a plain-data pickle, refused ({one_line(str(exc))})") from exc


def _pickle_captions(path: Path) -> dict[str, list[str]]:
    """clip -> captions from raw-captions.pkl (each caption a token list or a string)."""
    data = load_plain_pickle(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of clip -> captions, got {type(data).__name__}")
    out: dict[str, list[str]] = {}
    for clip, caps in data.items():
        where = f"clip {clip!r}"
        if not isinstance(clip, str) or not isinstance(caps, list) or not caps:
            raise problem(path, where, "expected a clip name with a non-empty list of captions")
        texts = []
        for k, cap in enumerate(caps):
            if isinstance(cap, list) and all(isinstance(t, str) for t in cap):
                cap = " ".join(cap)
            if not isinstance(cap, str) or not cap.strip():
                raise problem(path, f"{where} caption {k}", "expected tokens or a non-empty string")
            texts.append(cap.strip())
        out[clip] = texts
    return out


def _number(text: str, path: Path, where: str) -> str:
    """A clip boundary as the clip names spell it (``5.0`` -> ``5``)."""
    try:
        value = float(text)
    except ValueError as exc:
        raise problem(path, where, f"{text!r} is not a number of seconds") from exc
    return str(int(value)) if value.is_integer() else text.strip()


def _csv_captions(path: Path) -> tuple[dict[str, list[str]], int]:
    """clip -> English captions from the corpus CSV, and the number of empty ones dropped."""
    out: dict[str, list[str]] = {}
    empty = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise problem(path, "row 1 (header)", f"missing column {missing[0]!r}")
            col = {c: header.index(c) for c in CSV_COLUMNS}
            last = reader.line_num
            for fields in reader:
                first, last = last + 1, reader.line_num
                if not fields:
                    continue
                where = f"row {reader.line_num}"
                if first != last and any("\n" in x or "\r" in x for x in fields):
                    # an unclosed quote: the reader ran on, taking the next rows as this text
                    raise problem(path, f"lines {first}-{last}", "one field spans several "
                                  "lines (an unbalanced \" quote?)")  # fmt: skip
                if len(fields) < len(header):
                    raise problem(
                        path, where, f"{len(fields)} fields, the header has {len(header)}"
                    )
                if fields[col["Language"]].strip() != "English":
                    continue
                text = fields[col["Description"]].strip()
                if not text:
                    empty += 1
                    continue
                start = _number(fields[col["Start"]], path, where)
                end = _number(fields[col["End"]], path, where)
                clip = f"{fields[col['VideoID']].strip()}_{start}_{end}"
                out.setdefault(clip, []).append(text)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise DataError(f"{path} is not a valid CSV file: {exc}") from exc
    return out, empty


def _mapping_ids(path: Path, split: str) -> list[str]:
    """The clips of ``split`` from youtube_mapping.txt, in vid order."""
    lo, hi = RANGES[split]
    found: dict[int, str] = {}
    clips: set[str] = set()
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith("vid") or not parts[1][3:].isdigit():
            raise problem(path, f"line {n}", f"expected '<clip> vid<N>', got {line.strip()!r}")
        number = int(parts[1][3:])
        if number in found:
            raise problem(path, f"line {n}", f"vid{number} is listed twice")
        if parts[0] in clips:  # one clip as two gallery items: one of them always misses
            raise problem(path, f"line {n}", f"clip {parts[0]!r} is listed twice")
        found[number] = parts[0]
        clips.add(parts[0])
    return [found[k] for k in sorted(found) if lo <= k <= hi]


@register_dataset("msvd")
class Msvd(VideoTextAdapter):
    """MSVD clips and captions; the adapter builds paths, evaluation checks the videos."""

    splits = ("train", "val", "test")
    description = (
        "MSVD video-text retrieval (1,200 / 100 / 670 clips, ~40 captions each); options: "
        "protocol=multi|sentence"
    )
    protocols = ("multi", "sentence")
    official = {"train": 1200, "val": 100, "test": 670}

    def _captions(self) -> tuple[Path, dict[str, list[str]], str]:
        csv_path = self._optional(*CSV_NAMES)
        if csv_path is not None:
            captions, empty = _csv_captions(csv_path)
            how = f"English captions of {csv_path.name}"
            return csv_path, captions, how + (f" ({empty} empty ones dropped)" if empty else "")
        path = self._find(*CSV_NAMES, PICKLE)
        return path, _pickle_captions(path), f"captions of {PICKLE} (read as plain data only)"

    def _load(self, split: str) -> Split:
        list_path = self._optional(LISTS[split])
        if list_path is not None:
            ids, split_how = read_ids(list_path), f"clips of {list_path.name}"
        else:
            list_path = self._find(LISTS[split], MAPPING)
            lo, hi = RANGES[split]
            ids, split_how = _mapping_ids(list_path, split), f"vid{lo}-vid{hi} of {MAPPING}"
        caption_path, captions, caption_how = self._captions()
        videos = []
        for video_id in ids:
            if video_id not in captions:
                raise DataError(
                    f"{list_path}: clip {video_id!r} has no captions in {caption_path.name}"
                )
            videos.append(Video(video_id, captions[video_id]))
        folder = "YouTubeClips" if (self.root / "YouTubeClips").is_dir() else "videos"
        paths = self._video_paths([[f"{folder}/{v}{ext}" for ext in (".avi", ".mp4")] for v in ids])
        notes = [
            f"split {split!r} = {split_how} (the standard split of Venugopalan et al. 2015, as "
            f"CLIP4Clip reports), {caption_how}",
        ]
        return self._split(
            split, videos, paths, [list_path, caption_path], notes,
            looked_for=f"{folder}/<clip>.avi (or .mp4)",
        )  # fmt: skip
