"""Clip windows (decode only the frames inside (start, end) seconds), the decoding record, and
the Split fields that carry protocols and windows into results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_real import frame_index
from fixtures_video import make_activitynet, make_didemo, write_clip

from vilem.data import load_split
from vilem.data.base import Split
from vilem.data.media import MediaDataset
from vilem.data.video import decoding_record, read_frames, sample_indices, window_frames
from vilem.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def clip30(tmp_path_factory) -> Path:
    """30 frames at 10 fps: frame i shows from i/10 s and has grey level 8i + 4."""
    return write_clip(tmp_path_factory.mktemp("win") / "c.mp4", 30, 10)


def indices(frames: np.ndarray) -> list[int]:
    return [frame_index(f) for f in frames]


def test_uniform_frames_are_sampled_inside_the_window_only(clip30):
    # frames 10..19 start inside [1.0, 2.0); uniform N=4 over those 10 -> 1, 3, 6, 8 (+10)
    got = indices(read_frames(clip30, 4, "uniform", window=(1.0, 2.0)))
    assert got == [10 + i for i in sample_indices(10, 4, "uniform").tolist()] == [11, 13, 16, 18]
    assert indices(read_frames(clip30, 4, "uniform")) == [3, 11, 18, 26]  # whole video


@pytest.mark.parametrize("mode", ["uniform", "headtail", "random"])
@pytest.mark.parametrize("window", [(0.0, 0.5), (0.75, 1.65), (2.2, 9.0)])
def test_every_sampling_mode_stays_inside_the_window(clip30, mode, window):
    got = indices(read_frames(clip30, 6, mode, np.random.default_rng(0), window=window))
    start, end = window
    first, last = round(start * 10 + 0.4999), min(29, round(end * 10 + 0.4999) - 1)
    assert len(got) == 6 and all(first <= i <= last for i in got), (got, first, last)


def test_a_window_past_the_end_is_cut_and_one_after_it_is_a_data_error(clip30):
    assert indices(read_frames(clip30, 2, window=(2.5, 31.0))) == [26, 28]
    with pytest.raises(
        DataError, match=r"c\.mp4: clip window \(3\.5, 4\) s starts after the video"
    ):
        read_frames(clip30, 2, window=(3.5, 4.0))


def test_a_window_narrower_than_a_frame_gives_the_frame_showing_its_start(clip30):
    assert indices(read_frames(clip30, 3, window=(1.23, 1.27))) == [12, 12, 12]


def test_window_frames_rule_on_timestamps():
    stamps = np.array([[i / 4, (i + 1) / 4] for i in range(8)])  # 8 frames at 4 fps: 2 s
    assert window_frames(stamps, (0.5, 1.0)) == (2, 4)
    assert window_frames(stamps, (0.0, 10.0)) == (0, 8)
    assert window_frames(stamps, (1.9, 1.95)) == (7, 8)
    with pytest.raises(ValueError, match="starts after the video ends"):
        window_frames(stamps, (2.0, 3.0))


def test_media_dataset_passes_each_items_window_to_the_reader(clip30):
    def keep(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frames)

    data = MediaDataset([clip30, clip30], "video", keep, frames=4, windows=[(1.0, 2.0), None])
    assert indices(data[0].numpy()) == [11, 13, 16, 18]
    assert indices(data[1].numpy()) == [3, 11, 18, 26]
    with pytest.raises(ValueError, match="windows and paths differ"):
        MediaDataset([clip30], "video", keep, windows=[None, None])


def test_didemo_span_windows_reach_the_decoded_frames(tmp_path):
    make_didemo(tmp_path)
    from fixtures_video import DIDEMO_V1

    write_clip(tmp_path / "videos" / DIDEMO_V1, 30, 2)  # 15 s at 2 fps
    split = load_split("didemo", "test", root=tmp_path, window="span")
    assert split.windows[0] == (5.0, 15.0)  # frames 10..29
    data = MediaDataset(split.item_paths, "video", torch.from_numpy, 5, windows=split.windows)
    assert indices(data[0].numpy()) == [12, 16, 20, 24, 28]


def test_activitynet_span_windows_reach_the_decoded_frames(tmp_path):
    make_activitynet(tmp_path)
    write_clip(tmp_path / "videos" / "v_bXdq2zI1Ms0.mp4", 30, 2)  # 15 s at 2 fps
    split = load_split("activitynet", "val_1", root=tmp_path, window="span")
    assert split.windows[1] == (2.0, 7.0)  # frames 4..13
    got = indices(read_frames(split.item_paths[1], 5, "uniform", window=split.windows[1]))
    assert got == [5, 7, 9, 11, 13]


# -- the decoding record -------------------------------------------------------------------


def test_decoding_record_names_backend_frames_sampling_and_window():
    record = decoding_record(12, "uniform", "seconds 0-30 of each video", size=224)
    assert record["backend"] == "decord" and record["backend_version"]
    assert record["frames"] == 12 and record["sampling"] == "uniform"
    assert "centre frame" in record["sampling_rule"]
    assert record["clip_window"] == "seconds 0-30 of each video"
    assert "[start, end)" in record["window_rule"] and "224" in record["resize"]
    with pytest.raises(ConfigError, match="did you mean 'uniform'"):
        decoding_record(12, "unifrom")


# -- Split fields --------------------------------------------------------------------------


def _split(texts_per_item: list[int], **kwargs) -> Split:
    n = len(texts_per_item)
    return Split(
        dataset="toy",
        split="test",
        root=Path("."),
        modality="video",
        items=[f"v{i}" for i in range(n)],
        item_paths=[Path(f"v{i}.mp4") for i in range(n)],
        texts=[f"t{j}" for j in range(sum(texts_per_item))],
        text_to_item=np.repeat(np.arange(n), texts_per_item),
        revision="r",
        **kwargs,
    )


def test_protocol_is_inferred_from_captions_per_item_unless_given():
    assert _split([1, 1, 1]).protocol == "sentence"
    assert _split([1, 2, 1]).protocol == "multi"
    assert _split([1, 1], protocol="paragraph").protocol == "paragraph"
    with pytest.raises(ValueError, match="unknown protocol 'para'"):
        _split([1], protocol="para")


def test_windows_are_checked_and_kept_by_subset():
    split = _split([1, 2, 1], windows=[(0, 5), None, [2.5, 7]], clip_window="annotated")
    assert split.windows == [(0.0, 5.0), None, (2.5, 7.0)]
    sub = split.subset([0, 2], skipped=["v1"])
    assert sub.windows == [(0.0, 5.0), (2.5, 7.0)] and sub.protocol == "multi"
    assert sub.describe()["clip_window"] == "annotated"
    assert any("partial set: 1 of 3 videos skipped" in n for n in sub.notes)
    for bad in ([(5, 5), None, None], [(-1, 2), None, None], [(0, float("nan")), None, None]):
        with pytest.raises(ValueError, match="clip window needs 0 <= start < end"):
            _split([1, 2, 1], windows=bad)
    with pytest.raises(ValueError, match="windows and items differ"):
        _split([1, 2, 1], windows=[None])


def test_window_key_changes_with_the_windows_and_is_none_without():
    assert _split([1, 1]).window_key() is None
    a = _split([1, 1], windows=[(0, 5), None]).window_key()
    b = _split([1, 1], windows=[(0, 6), None]).window_key()
    assert a and b and a != b
    assert a == _split([1, 1], windows=[(0.0, 5.0), None]).window_key()


def test_describe_records_protocol_and_clip_window():
    described = _split([2, 3]).describe()
    assert described["protocol"] == "multi" and described["clip_window"] == "whole video"
