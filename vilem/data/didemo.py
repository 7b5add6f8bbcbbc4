"""DiDeMo (Distinct Describable Moments, Hendricks et al. ICCV 2017): Flickr videos whose
first 30 seconds are cut into six 5-second segments; each description localises a moment.

Read from LocalizingMoments' ``{train,val,test}_data.json``: a list of entries with
``annotation_id``, ``description``, ``video`` (the file name, e.g.
``26292851@N04_4253489686_265c3c8051.m4v``), ``times`` (one ``[first, last]`` segment pair per
annotator, segments 0-5) and ``num_segments``, ``dl_link``. When present, the split lists of
Collaborative Experts (``{train,val,test}_list.txt``: the videos that could be downloaded, one
``video`` per line; 8,392 / 1,065 / 1,004), which CLIP4Clip uses, restrict the split to them.

Retrieval is paragraph-to-video, as CLIP4Clip reports it: all descriptions of a video joined in
file order into one query (``protocol=paragraph``, the default; ``multi`` makes each description a
query of its video). The clip window (``window``):

- ``annotated`` (default): seconds 0-30, the part the annotators saw (LocalizingMoments: longer
  videos were cut to 30 s for annotation); CLIP4Clip reads [0, 31] s for the same reason;
- ``span``: from the earliest to the latest moment of the video's descriptions, a moment being
  [5 x mean first segment, 5 x (mean last segment + 1)] s over its annotators (CLIP4Clip's rule);
- ``video``: the whole file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vilem.data.base import Split, Window, register_dataset
from vilem.data.videotext import Video, VideoTextAdapter, problem, read_ids, text_field
from vilem.errors import DataError
from vilem.io import read_json

SEGMENT_SECONDS = 5.0
ANNOTATED = (0.0, 30.0)  # six 5-second segments
LAST_SEGMENT = 5  # segments are numbered 0-5
_WINDOW_WORDS = {
    "annotated": "seconds 0-30 of each video, the annotated part (DiDeMo's six 5-s segments)",
    "span": "from the earliest to the latest described moment of each video "
    "(moment = 5 x mean annotator segments, as CLIP4Clip)",
    "video": "whole video",
}


def moment(times: Any, path: Path, where: str) -> Window:
    """The seconds of one description: its annotators' segment pairs averaged (CLIP4Clip)."""
    if not isinstance(times, list) or not times:
        raise problem(path, where, "'times' should be a non-empty list of [first, last] segments")
    firsts, lasts = [], []
    for pair in times:
        ok = isinstance(pair, list) and len(pair) == 2
        if not ok or not all(isinstance(t, int | float) and not isinstance(t, bool) for t in pair):
            raise problem(path, where, f"'times' entry {pair!r} is not a [first, last] pair")
        if not all(0 <= t <= LAST_SEGMENT for t in pair):  # NaN fails this too
            raise problem(
                path, where, f"'times' entry {pair!r} is not a pair of segments 0-{LAST_SEGMENT}"
            )
        firsts.append(min(pair))
        lasts.append(max(pair))
    start = SEGMENT_SECONDS * sum(firsts) / len(firsts)
    end = SEGMENT_SECONDS * (sum(lasts) / len(lasts) + 1)
    return (float(start), float(end))


def read_descriptions(path: Path) -> tuple[dict[str, list[str]], dict[str, list[Window]]]:
    """video -> descriptions and -> moments, in file order, from a ``*_data.json``."""
    data = read_json(path, "DiDeMo annotation file")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of annotations, got {type(data).__name__}")
    texts: dict[str, list[str]] = {}
    moments: dict[str, list[Window]] = {}
    for k, entry in enumerate(data):
        where = f"entry {k}"
        video = text_field(entry, "video", path, where)
        where = f"entry {k} (video {video})"
        texts.setdefault(video, []).append(text_field(entry, "description", path, where))
        moments.setdefault(video, []).append(moment(entry.get("times"), path, where))
    return texts, moments


@register_dataset("didemo")
class DiDeMo(VideoTextAdapter):
    """DiDeMo videos and descriptions; the adapter builds paths, evaluation checks the videos."""

    splits = ("train", "val", "test")
    description = (
        "DiDeMo paragraph-to-video retrieval (1,004 test videos as CLIP4Clip); options: "
        "protocol=paragraph|multi, window=annotated|span|video"
    )
    protocols = ("paragraph", "multi")
    window_policies = ("annotated", "span", "video")
    official = {"train": 8392, "val": 1065, "test": 1004}

    def _load(self, split: str) -> Split:
        data_path = self._find(f"{split}_data.json")
        texts, moments = read_descriptions(data_path)
        files = [data_path]
        list_path = self._optional(f"{split}_list.txt")
        if list_path is not None:
            files.append(list_path)
            ids = read_ids(list_path)
            for video in ids:
                if video not in texts:
                    raise DataError(
                        f"{list_path}: video {video!r} has no descriptions in {data_path.name}"
                    )
            how = f"the videos of {list_path.name} (Collaborative Experts' list, as CLIP4Clip)"
        else:
            ids = list(texts)
            how = (
                f"every video of {data_path.name} (no {split}_list.txt: CLIP4Clip's split is "
                "the downloadable videos that list names)"
            )
        videos = [Video(v, texts[v], self._clip(moments[v])) for v in ids]
        paths = self._video_paths(
            [[f"videos/{v}", f"videos/{v}.mp4", f"videos/{Path(v).stem}.mp4"] for v in ids]
        )
        return self._split(
            split, videos, paths, files, [f"split {split!r} = {how}"], _WINDOW_WORDS[self.window],
            looked_for="videos/<video> as named in the annotation (or <video>.mp4, <stem>.mp4)",
        )  # fmt: skip

    def _clip(self, spans: list[Window]) -> Window | None:
        if self.window == "annotated":
            return ANNOTATED
        if self.window == "span":
            return (min(s for s, _ in spans), max(e for _, e in spans))
        return None
