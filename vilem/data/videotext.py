"""What the video-text adapters (``msvd``, ``didemo``, ``activitynet``, ``lsmdc``, ``vatex``)
share: their options (``protocol``, ``window``), finding annotation files, id lists, video paths,
building the split from per-video captions under a protocol, and the official-size notes.

The conventions are MSR-VTT's (``vilem.data.msrvtt``): the root holds the files as the field
distributes them, the revision hashes the files a split was built from, paths leaving the root
are refused, a missing or malformed file is one DataError naming the file (and row or entry), and
the notes say exactly what was evaluated. Videos are not opened when a split is loaded:
evaluation checks each one (``--skip-bad-media`` skips and records the unreadable ones).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vilem.data.base import DatasetAdapter, Split, Window, file_digest
from vilem.data.karpathy import InsideRoot
from vilem.errors import ConfigError, DataError
from vilem.registry import closest

ANNOTATION_DIRS = (".", "annotations")  # where annotation files are looked for, in order

PROTOCOL_NOTES = {
    "sentence": (
        "protocol 'sentence': one query per video, its first caption in file order "
        "(sentence-to-video with one caption per video)"
    ),
    "multi": (
        "protocol 'multi' (multi-sentence): every caption is a query; video->text counts a hit "
        "when any of the video's captions is in the top k"
    ),
    "paragraph": (
        "protocol 'paragraph' (paragraph-to-video): each video's descriptions joined in file "
        "order, separated by spaces, into one query, as CLIP4Clip evaluates"
    ),
}


def problem(path: Path, where: str, message: str) -> DataError:
    return DataError(f"{path}: {where}: {message}")


def text_field(entry: Any, key: str, path: Path, where: str) -> str:
    """``entry[key]`` as a non-empty stripped string, or a DataError naming file and entry."""
    if not isinstance(entry, dict):
        raise problem(path, where, f"expected an object, got {type(entry).__name__}")
    if key not in entry:
        raise problem(path, where, f"missing key {key!r}")
    value = entry[key]
    if not isinstance(value, str):
        raise problem(path, where, f"{key!r} should be a string, got {type(value).__name__}")
    if not value.strip():
        raise problem(path, where, f"empty {key!r}")
    return value.strip()


def caption_list(value: Any, path: Path, where: str) -> list[str]:
    """A non-empty list of non-empty caption strings, stripped."""
    if not isinstance(value, list) or not value:
        raise problem(path, where, "expected a non-empty list of captions")
    out = []
    for k, text in enumerate(value):
        if not isinstance(text, str) or not text.strip():
            raise problem(path, f"{where}[{k}]", "expected a non-empty caption string")
        out.append(text.strip())
    return out


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark is fine), or a one-line DataError."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text: {exc}") from exc


def read_ids(path: Path) -> list[str]:
    """One id per line (blank lines skipped); an id listed twice is refused."""
    lines = read_lines(path)
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, start=1):
        video_id = line.strip()
        if not video_id:
            continue
        if video_id in seen:
            raise problem(
                path, f"line {n}", f"{video_id!r} is listed twice (first on line {seen[video_id]})"
            )
        seen[video_id] = n
    if not seen:
        raise DataError(f"{path}: no video ids")
    return list(seen)


def size_note(split: str, found: int, official: int | None, what: str = "videos") -> str:
    """Whether the split has its published size; a partial set says so."""
    if official is None:
        return f"split {split!r}: {found:,} {what} (no published size is checked for it)"
    if found == official:
        return f"split {split!r}: {found:,} {what}, the published size"
    return (
        f"partial or non-standard set: split {split!r} has {found:,} {what} where the published "
        f"split has {official:,}; numbers are not comparable with published ones"
    )


def choose(dataset: str, options: dict[str, Any], choices: dict[str, tuple[str, ...]]) -> dict:
    """The adapter's options, each one of its ``choices`` (the first is the default)."""
    unknown = sorted(set(options) - set(choices))
    if unknown:
        known = ", ".join(choices) or "none"
        raise ConfigError(
            f"dataset {dataset!r} has no option(s) {', '.join(unknown)}; options: {known}"
        )
    out = {}
    for key, allowed in choices.items():
        value = options.get(key, allowed[0])
        if value not in allowed:
            raise ConfigError(
                f"dataset {dataset!r} option {key} must be one of {', '.join(allowed)}, got "
                f"{value!r}{closest(str(value), list(allowed))}"
            )
        out[key] = value
    return out


@dataclass
class Video:
    """One video of a split while it is built: its id, captions in file order and window."""

    id: str
    captions: list[str]
    window: Window | None = None


def protocol_texts(videos: list[Video], protocol: str) -> tuple[list[str], np.ndarray]:
    """The queries of ``protocol`` and the video each describes."""
    if protocol == "sentence":
        groups = [v.captions[:1] for v in videos]
    elif protocol == "paragraph":
        groups = [[" ".join(v.captions)] for v in videos]
    else:
        groups = [v.captions for v in videos]
    texts = [t for g in groups for t in g]
    return texts, np.repeat(np.arange(len(videos)), [len(g) for g in groups])


def select_captions(
    groups: list[list[str]], protocol: str, keep: int | None = None
) -> tuple[list[str], np.ndarray, str]:
    """Queries of per-video caption lists under ``protocol``, using each video's first
    ``keep`` captions (default all), and the protocol to record: ``multi`` over one caption
    per video is the ``sentence`` protocol."""
    videos = [Video(str(i), g[:keep]) for i, g in enumerate(groups)]
    texts, owner = protocol_texts(videos, protocol)
    if protocol == "multi" and max(len(v.captions) for v in videos) == 1:
        protocol = "sentence"
    return texts, owner, protocol


def caption_options(dataset: str, options: dict[str, Any]) -> tuple[str, int | None]:
    """The ``protocol`` (multi, sentence or paragraph; default multi) and ``captions_per_video``
    (an integer >= 1, or None: all) options of an adapter whose videos have several captions."""
    protocol = choose(
        dataset,
        {"protocol": options.get("protocol", "multi")},
        {"protocol": ("multi", "sentence", "paragraph")},
    )["protocol"]
    keep = options.get("captions_per_video")
    if keep is not None and (type(keep) is not int or keep < 1):
        raise ConfigError(
            f"dataset {dataset!r} option captions_per_video must be an integer >= 1, got {keep!r}"
        )
    return protocol, keep


def regroup_captions(
    dataset: str, texts: list[str], owner: Any, n_items: int, protocol: str, keep: int | None
) -> tuple[list[str], np.ndarray, str, int]:
    """``texts`` (text j describes item ``owner[j]``) under ``protocol`` with each item's first
    ``keep`` captions (None: all): the queries, their items, the protocol to record and how
    many of each item's captions are used."""
    groups: list[list[str]] = [[] for _ in range(n_items)]
    for text, i in zip(texts, np.asarray(owner).tolist(), strict=True):
        groups[i].append(text)
    if not groups:  # an empty split
        return [], np.zeros(0, dtype=np.int64), protocol, keep or 0
    fewest = min(len(g) for g in groups)
    if keep is not None and keep > fewest:
        raise ConfigError(
            f"dataset {dataset!r} option captions_per_video={keep} exceeds the {fewest} "
            "captions each item has"
        )
    used = 1 if protocol == "sentence" else (keep or max(len(g) for g in groups))
    out, out_owner, recorded = select_captions(groups, protocol, used)
    return out, out_owner, recorded, used


class VideoTextAdapter(DatasetAdapter):
    """A video-text retrieval dataset read from its distributed files. Subclasses set the class
    attributes and ``_load``, building their ``Video`` list and calling ``_split``."""

    modality = "video"
    protocols: ClassVar[tuple[str, ...]] = ("multi", "sentence")  # the first is the default
    window_policies: ClassVar[tuple[str, ...]] = ()  # the ``window`` option; first: default
    official: ClassVar[dict[str, int]] = {}  # published videos per split

    def __init__(self, root: str | os.PathLike | None = None, **options: Any):
        choices = {"protocol": self.protocols}
        if self.window_policies:
            choices["window"] = self.window_policies
        chosen = choose(self.name, options, choices)
        super().__init__(root)
        self.options = dict(options)
        self.protocol: str = chosen["protocol"]
        self.window: str | None = chosen.get("window")

    def _find(self, *names: str) -> Path:
        """The first of ``names`` present in the annotation folders, else a DataError."""
        path = self._optional(*names)
        if path is None:
            dirs = ", ".join(str(self.root / d) for d in ANNOTATION_DIRS)
            raise DataError(
                f"{' or '.join(names)} not found for dataset {self.name!r} (looked in {dirs}; "
                f"see datasets/{self.name}/README.md)"
            )
        return path

    def _optional(self, *names: str) -> Path | None:
        for name in names:
            for d in ANNOTATION_DIRS:
                path = self.root / d / name
                if path.is_file():
                    return path
        return None

    def _video_paths(self, candidates: list[list[str]]) -> list[Path]:
        """Per video, the first of its candidate files (relative to the root) that exists, else
        the first candidate (evaluation then reports it missing). Paths leaving the root are
        refused."""
        inside = InsideRoot(self.root, self.allow_symlinks)
        out = []
        for names in candidates:
            paths = [inside(rel, f"dataset {self.name!r} video path") for rel in names]
            out.append(next((p for p in paths if p.is_file()), paths[0]))
        return out

    def _split(
        self,
        split: str,
        videos: list[Video],
        paths: list[Path],
        files: list[Path],
        notes: list[str],
        clip_window: str = "whole video",
        *,
        looked_for: str,
    ) -> Split:
        """The Split of ``videos`` under the adapter's protocol, with the shared notes;
        ``looked_for`` says in words which files ``_video_paths`` tried (a missing video's error
        repeats it)."""
        if not videos:
            raise DataError(f"{files[0]}: no videos for split {split!r}")
        texts, text_to_item, protocol = select_captions([v.captions for v in videos], self.protocol)
        per_video = [len(v.captions) for v in videos]
        windows = [v.window for v in videos]
        captions = sum(per_video)
        notes = [
            *notes,
            f"videos: {looked_for}",
            f"loaded from {', '.join(f.name for f in files)}: {len(videos):,} videos / "
            f"{captions:,} captions ({captions / len(videos):.1f} per video)",
            size_note(split, len(videos), self.official.get(split)),
            PROTOCOL_NOTES[protocol] + f": {len(texts):,} queries",
            f"clip window: {clip_window}",
            f"video paths: {self.root}/<...> (see datasets/{self.name}/README.md); videos missing "
            "from a download are checked at evaluation, which stops or, with --skip-bad-media, "
            "skips them and records their ids",
        ]
        return Split(
            dataset=self.name,
            split=split,
            root=self.root,
            modality="video",
            items=[v.id for v in videos],
            item_paths=paths,
            texts=texts,
            text_to_item=text_to_item,
            revision=file_digest(*files),
            notes=notes,
            protocol=protocol,
            windows=None if all(w is None for w in windows) else windows,
            clip_window=clip_window,
            media_hint=looked_for,
        )
