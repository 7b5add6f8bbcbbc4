"""Frame sampling rules and decord reading, on MP4s whose grey level encodes the frame index."""

from __future__ import annotations

import decord
import numpy as np
import pytest
from fixtures_real import frame_index, write_mp4
from hypothesis import given, settings
from hypothesis import strategies as st

from vilem.data.video import check_video, read_frames, sample_indices
from vilem.errors import ConfigError, DataError

# -- sample_indices: uniform ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_total", "num_frames", "expected"),
    [
        (100, 4, [12, 37, 62, 87]),  # centres 12.5, 37.5, 62.5, 87.5 rounded down
        (10, 3, [1, 5, 8]),  # centres 1.67, 5, 8.33
        (20, 4, [2, 7, 12, 17]),
        (12, 12, list(range(12))),  # one frame per segment: every frame
        (13, 1, [6]),  # the middle frame
    ],
)
def test_uniform_takes_the_centre_of_each_segment(num_total, num_frames, expected):
    got = sample_indices(num_total, num_frames, "uniform", None)
    assert got.dtype == np.int64
    assert got.tolist() == expected


@pytest.mark.parametrize(
    ("num_total", "num_frames", "expected"),
    [
        (3, 5, [0, 0, 1, 2, 2]),  # centres 0.3, 0.9, 1.5, 2.1, 2.7
        (1, 4, [0, 0, 0, 0]),
        (2, 3, [0, 1, 1]),  # centres 0.33, 1, 1.67
    ],
)
def test_uniform_repeats_frames_when_the_clip_is_shorter_than_n(num_total, num_frames, expected):
    assert sample_indices(num_total, num_frames, "uniform", None).tolist() == expected


# -- sample_indices: headtail and random ---------------------------------------------------


def test_headtail_takes_half_from_each_half_sorted_and_distinct():
    got = sample_indices(100, 8, "headtail", np.random.default_rng(0))
    head, tail = got[:4], got[4:]
    assert head.min() >= 0 and head.max() < 50
    assert tail.min() >= 50 and tail.max() < 100
    assert (np.diff(head) > 0).all() and (np.diff(tail) > 0).all()


def test_headtail_odd_n_gives_the_extra_frame_to_the_tail():
    got = sample_indices(10, 5, "headtail", np.random.default_rng(3))
    assert len(got) == 5
    assert (got[:2] < 5).all() and (got[2:] >= 5).all()


def test_headtail_short_clip_repeats_within_each_half():
    got = sample_indices(3, 8, "headtail", np.random.default_rng(0))
    assert got[:4].tolist() == [0, 0, 0, 0]  # the first half is frame 0 only
    assert set(got[4:].tolist()) <= {1, 2} and (np.diff(got[4:]) >= 0).all()
    assert sample_indices(1, 4, "headtail", np.random.default_rng(0)).tolist() == [0, 0, 0, 0]


def test_random_takes_one_frame_inside_each_segment():
    got = sample_indices(100, 4, "random", np.random.default_rng(0))
    for i, index in enumerate(got.tolist()):
        assert 25 * i <= index < 25 * (i + 1)


def test_random_short_clip_uses_each_empty_segments_start():
    # segments of 3 frames in 5: [0,0) [0,1) [1,1) [1,2) [2,3) -> starts of the empty ones
    for seed in range(5):
        got = sample_indices(3, 5, "random", np.random.default_rng(seed))
        assert got.tolist() == [0, 0, 1, 1, 2]


@pytest.mark.parametrize("mode", ["headtail", "random"])
def test_random_modes_are_deterministic_given_the_seed(mode):
    a = sample_indices(1000, 8, mode, np.random.default_rng(7))
    b = sample_indices(1000, 8, mode, np.random.default_rng(7))
    c = sample_indices(1000, 8, mode, np.random.default_rng(8))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


@settings(max_examples=200, deadline=None)
@given(
    num_total=st.integers(1, 500),
    num_frames=st.integers(1, 32),
    mode=st.sampled_from(["uniform", "headtail", "random"]),
    seed=st.integers(0, 2**16),
)
def test_every_mode_returns_n_sorted_indices_inside_the_clip(num_total, num_frames, mode, seed):
    got = sample_indices(num_total, num_frames, mode, np.random.default_rng(seed))
    assert got.shape == (num_frames,) and got.dtype == np.int64
    assert got.min() >= 0 and got.max() < num_total
    assert (np.diff(got) >= 0).all()


def test_unknown_mode_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'uniform'"):
        sample_indices(10, 4, "unifrom", None)


def test_zero_frames_requested_is_a_config_error():
    with pytest.raises(ConfigError, match="num_frames"):
        sample_indices(10, 0, "uniform", None)


# -- read_frames / check_video -------------------------------------------------------------


@pytest.fixture(scope="module")
def clip20(tmp_path_factory):
    return write_mp4(tmp_path_factory.mktemp("video") / "clip20.mp4", num_frames=20)


def test_read_frames_returns_the_uniform_frames(clip20):
    frames = read_frames(clip20, num_frames=4)
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    assert [frame_index(f) for f in frames] == [2, 7, 12, 17]


def test_read_frames_default_is_twelve_frames(clip20):
    frames = read_frames(clip20)
    # centres of 12 segments of 20 frames: floor((2i+1)*20/24)
    assert [frame_index(f) for f in frames] == [0, 2, 4, 5, 7, 9, 10, 12, 14, 15, 17, 19]


def test_read_frames_repeats_frames_of_a_short_clip(tmp_path):
    path = write_mp4(tmp_path / "short.mp4", num_frames=3)
    frames = read_frames(path, num_frames=5)
    assert [frame_index(f) for f in frames] == [0, 0, 1, 2, 2]


def test_read_frames_random_mode_follows_the_rng(clip20):
    frames = read_frames(clip20, num_frames=4, mode="headtail", rng=np.random.default_rng(5))
    expected = sample_indices(20, 4, "headtail", np.random.default_rng(5))
    assert [frame_index(f) for f in frames] == expected.tolist()


def test_read_frames_resizes_the_shorter_side(clip20):
    frames = read_frames(clip20, num_frames=2, size=32)
    # 64x48 -> shorter side 32, longer 64 * 32 / 48 = 42.67 -> 43
    assert frames.shape == (2, 32, 43, 3)
    assert [frame_index(f) for f in frames] == [5, 15]


def test_read_frames_returns_numpy_even_under_the_torch_bridge(clip20):
    pytest.importorskip("torch")
    with decord.bridge.use_torch():
        frames = read_frames(clip20, num_frames=2)
        # the caller's bridge is left as it was
        outside = decord.VideoReader(str(clip20), num_threads=1).get_batch([0])
    assert isinstance(frames, np.ndarray)
    assert type(outside).__module__.startswith("torch")


def test_check_video_counts_frames(clip20):
    assert check_video(clip20) == 20


def test_missing_video_is_a_data_error_naming_it(tmp_path):
    path = tmp_path / "video9999.mp4"
    with pytest.raises(DataError, match=r"not found: .*video9999\.mp4"):
        read_frames(path)
    with pytest.raises(DataError, match="video9999"):
        check_video(path)


@pytest.mark.parametrize("content", [b"", b"random"])
def test_corrupt_video_is_a_data_error_naming_it(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096) if content else b"")
    with pytest.raises(DataError, match=r"broken\.mp4 is corrupt"):
        read_frames(path)
    with pytest.raises(DataError, match=r"broken\.mp4"):
        check_video(path)


def test_truncated_video_is_a_data_error(tmp_path, clip20):
    path = tmp_path / "cut.mp4"
    path.write_bytes(clip20.read_bytes()[: clip20.stat().st_size // 3])
    with pytest.raises(DataError, match=r"cut\.mp4"):
        read_frames(path)


def test_a_broken_video_prints_nothing_natively_and_fails_in_one_line(tmp_path, capfd):
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(DataError) as exc:
        read_frames(path)
    message = str(exc.value)
    assert "\n" not in message and "video_reader.cc" not in message
    assert capfd.readouterr().err == ""  # FFmpeg's and decord's own log lines are swallowed
    import sys

    print("still here", file=sys.stderr)
    assert capfd.readouterr().err == "still here\n"  # and stderr is back afterwards
