"""Video frames with decord: which frame indices to sample, and reading them as uint8 arrays.

Every failure to open or decode a file becomes a DataError that names the file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import decord
import numpy as np
from decord.base import DECORDError

from vilem.errors import ConfigError, DataError, one_line
from vilem.registry import closest

SAMPLING_MODES = ("uniform", "headtail", "random")

# decord raises RuntimeError when ffmpeg cannot open a file, AssertionError for a zero frame
# count, DECORDError from its C++ checks, IndexError for out-of-range frames.
_DECODE_ERRORS = (DECORDError, RuntimeError, AssertionError, IndexError, ValueError)


def sample_indices(
    num_total: int, num_frames: int, mode: str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Pick ``num_frames`` frame indices out of a clip of ``num_total`` frames.

    Modes (T = ``num_total``, N = ``num_frames``; the clip is cut into N equal segments
    ``[floor(i*T/N), floor((i+1)*T/N))``):

    - ``uniform``: the centre of each segment, ``floor((2i + 1) * T / (2N))`` for i in 0..N-1,
      as CLIP4Clip/LAVIS evaluate (100 frames, N=4 -> [12, 37, 62, 87]). Deterministic; when
      T < N the same rule repeats indices (3 frames, N=5 -> [0, 0, 1, 2, 2]).
    - ``headtail``: N//2 sorted random frames from the first half ``[0, T//2)`` and the rest from
      the second half ``[T//2, T)`` (LAVIS's training mode); without replacement when a half
      has enough frames, with replacement otherwise.
    - ``random``: one random frame inside each segment (TSN-style); an empty segment (T < N)
      takes its start frame. The result is sorted because segments are.

    Always exactly N indices, int64, non-decreasing, in ``[0, T)``. ``rng`` drives the random
    modes; without one a fresh unseeded generator is used.
    """
    if mode not in SAMPLING_MODES:
        raise ConfigError(
            f"unknown frame sampling mode {mode!r}{closest(mode, list(SAMPLING_MODES))}; "
            f"modes: {', '.join(SAMPLING_MODES)}"
        )
    if int(num_frames) < 1:
        raise ConfigError(f"num_frames must be at least 1, got {num_frames}")
    if int(num_total) < 1:
        raise ValueError(f"a clip needs at least one frame, got num_total={num_total}")
    t, n = int(num_total), int(num_frames)
    if mode == "uniform":
        # integer arithmetic: no float rounding surprises at segment boundaries
        return (2 * np.arange(n, dtype=np.int64) + 1) * t // (2 * n)
    rng = rng if rng is not None else np.random.default_rng()
    if mode == "headtail":
        half = t // 2
        head = _draw_sorted(rng, 0, max(half, 1), n // 2)
        tail = _draw_sorted(rng, half, t, n - n // 2)
        return np.concatenate([head, tail])
    starts = np.arange(n, dtype=np.int64) * t // n
    ends = np.maximum((np.arange(n, dtype=np.int64) + 1) * t // n, starts + 1)
    return rng.integers(starts, ends).astype(np.int64)


def _draw_sorted(rng: np.random.Generator, low: int, high: int, k: int) -> np.ndarray:
    """``k`` sorted frames from ``[low, high)``; repeats only when the range is too short."""
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    span = high - low
    picks = rng.choice(span, size=k, replace=span < k)
    return np.sort(picks).astype(np.int64) + low


class _NativeStderr:
    """Swallow what FFmpeg and decord's C++ logger print on file descriptor 2 while a video is
    opened or decoded: the DataError raised says what went wrong, in one line.

    Thread-safe and reentrant: the first thread in points fd 2 at /dev/null, the last one out
    restores it (so concurrent decodes never leave stderr redirected); a forked child starts
    with the real stderr back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self._depth, self._saved = 0, None

    @contextlib.contextmanager
    def silenced(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                sys.stderr.flush()
                self._saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved is not None:
                    os.dup2(self._saved, 2)
                    os.close(self._saved)
                    self._saved = None


_native_stderr_silenced = _NativeStderr().silenced


# decord's C++ messages start "[14:28:44] /github/workspace/src/video/video_reader.cc:486: "
_NATIVE_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


def _corrupt(path: Path, exc: Exception) -> DataError:
    reason = _NATIVE_PREFIX.sub("", one_line(str(exc)))
    return DataError(f"video {path} is corrupt or cannot be decoded: {reason}")


def _open(path: Path, width: int = -1, height: int = -1) -> decord.VideoReader:
    if not path.is_file():
        raise DataError(f"video not found: {path}")
    try:
        with _native_stderr_silenced():
            return decord.VideoReader(str(path), width=width, height=height, num_threads=1)
    except _DECODE_ERRORS as exc:
        raise _corrupt(path, exc) from exc


def _scaled_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the shorter side equal to ``size`` and the aspect ratio kept."""
    if height <= width:
        return size, max(1, round(width * size / height))
    return max(1, round(height * size / width)), size


def check_video(path: str | os.PathLike) -> int:
    """Cheap validity check: the file opens and reports frames. Returns the frame count."""
    path = Path(path)
    reader = _open(path)
    num_total = len(reader)
    if num_total < 1:
        raise DataError(f"video {path} has no frames")
    return num_total


def window_frames(timestamps: np.ndarray, window: tuple[float, float]) -> tuple[int, int]:
    """The frames ``[first, stop)`` of a clip window: those whose presentation time (the start
    of the frame, in seconds) lies in ``[start, end)``. A window past the video's end is cut at
    the end; one narrower than a frame gives the frame showing ``start``.

    Raises:
        ValueError: the window starts at or after the end of the video's last frame.
    """
    start, end = window
    begins = np.asarray(timestamps, dtype=np.float64)[:, 0]
    ends = np.asarray(timestamps, dtype=np.float64)[:, 1]
    eps = 1e-6  # timestamps are rounded to the stream's time base
    if start >= max(float(ends[-1]), float(begins[-1])) - eps:
        raise ValueError(
            f"clip window ({start:g}, {end:g}) s starts after the video ends at {ends[-1]:g} s"
        )
    inside = np.nonzero((begins >= start - eps) & (begins < end - eps))[0]
    if len(inside):
        return int(inside[0]), int(inside[-1]) + 1
    first = max(0, int(np.searchsorted(begins, start + eps, side="right")) - 1)
    return first, first + 1


def read_frames(
    path: str | os.PathLike,
    num_frames: int = 12,
    mode: str = "uniform",
    rng: np.random.Generator | None = None,
    size: int | None = None,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """Decode ``num_frames`` frames of a video chosen by :func:`sample_indices`.

    Args:
        path: the video file.
        num_frames: N, the number of frames returned (12 as CLIP4Clip; LAVIS uses 8).
        mode: ``uniform`` (evaluation), ``headtail`` or ``random`` (training).
        rng: the generator for the random modes.
        size: when given, decord resizes so the shorter side is ``size`` (aspect kept).
        window: ``(start, end)`` seconds: sample only among the frames of that clip window
            (:func:`window_frames`); None samples the whole video.

    Returns:
        uint8 array of shape (N, H, W, 3), RGB.
    """
    path = Path(path)
    if size is not None and int(size) < 1:
        raise ConfigError(f"frame size must be a positive integer, got {size}")
    reader = _open(path)
    num_total = len(reader)
    if num_total < 1:
        raise DataError(f"video {path} has no frames")
    first, stop = 0, num_total
    if window is not None:
        try:
            with _native_stderr_silenced():
                timestamps = reader.get_frame_timestamp(np.arange(num_total))
            first, stop = window_frames(timestamps, window)
        except ValueError as exc:
            raise DataError(f"video {path}: {exc}") from exc
        except _DECODE_ERRORS as exc:
            raise _corrupt(path, exc) from exc
    indices = first + sample_indices(stop - first, num_frames, mode, rng)
    try:
        # decord's output bridge is thread-local state that other code may have switched to
        # torch; pin the native bridge for this call so .asnumpy() is always available
        with decord.bridge._BridgeScope("native"), _native_stderr_silenced():
            if size is not None:
                height, width = reader.next().asnumpy().shape[:2]
                new_h, new_w = _scaled_size(height, width, int(size))
                if (new_h, new_w) != (height, width):
                    # decord resizes only at open time, so the probing reader is replaced
                    reader = _open(path, width=new_w, height=new_h)
            frames = reader.get_batch(indices).asnumpy()
    except _DECODE_ERRORS as exc:
        raise _corrupt(path, exc) from exc
    if frames.ndim != 4 or frames.shape[0] != len(indices) or frames.shape[-1] != 3:
        raise DataError(f"video {path} decoded to an unexpected shape {frames.shape}")
    return np.ascontiguousarray(frames, dtype=np.uint8)


SAMPLING_RULES = {
    "uniform": "the centre frame of each of N equal segments of the clip (CLIP4Clip/LAVIS)",
    "headtail": "N/2 random frames from each half of the clip (LAVIS training)",
    "random": "one random frame inside each of N equal segments (TSN-style training)",
}


def decoding_record(
    frames: int, sampling: str, clip_window: str = "whole video", size: int | None = None
) -> dict[str, object]:
    """How video frames were decoded, for a result file: the backend and its version, the
    number of frames and how they were placed, and the clip window policy
    (``Split.clip_window``)."""
    if sampling not in SAMPLING_MODES:
        raise ConfigError(
            f"unknown frame sampling mode {sampling!r}{closest(sampling, list(SAMPLING_MODES))}; "
            f"modes: {', '.join(SAMPLING_MODES)}"
        )
    return {
        "backend": "decord",
        "backend_version": getattr(decord, "__version__", "unknown"),
        "frames": int(frames),
        "sampling": sampling,
        "sampling_rule": SAMPLING_RULES[sampling],
        "clip_window": clip_window,
        "window_rule": "frames whose presentation time lies in [start, end) seconds; "
        "a window past the end is cut at the end",
        "resize": None if size is None else f"shorter side {int(size)} at decode",
    }
