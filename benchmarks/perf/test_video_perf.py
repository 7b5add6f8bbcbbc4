"""Video frame sampling: 12 uniform frames of 10 s H.264 clips through the adapter's decord path
(``vilem.data.video.read_frames``) against decoding every frame with PyAV and picking 12.

The adapter opens decord with one decoding thread (DataLoader workers parallelise across
videos), so the reference decodes with one thread too: the ratio measures "sample 12" against
"decode and convert everything", not threading. PyAV with its default threading, and clips at a
higher bitrate (decoding then dominates both paths), are measured as information.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import interleaved, require

CLIPS, SECONDS, FPS, WIDTH, HEIGHT = 3, 10, 30, 320, 240  # web-video-like clips, as MSR-VTT's
FRAMES = 12  # CLIP4Clip's evaluation setting
# (noise amplitude, grain in pixels) per kind of clip: ~340 kbit/s, about MSR-VTT's average
# (41.2 hours in a ~6 GB archive: ~330 kbit/s with audio), and ~0.8 Mbit/s
NOISE = {"web": (6, 4), "high_bitrate": (4, 1)}
VARIANTS = (
    "decord_adapter",
    "pyav_every_frame",
    "pyav_decode_only",
    "pyav_every_frame_default_threads",
    "decord_adapter_high_bitrate",
    "pyav_every_frame_high_bitrate",
)


def _write_clip(path: Path, seed: int, noise: int, grain: int) -> None:
    """A 10 s clip of shapes moving over a slowly changing gradient, with noise in ``grain``-pixel
    blocks (the texture real footage has; it sets the bitrate); libx264 defaults (a keyframe
    every 250 frames, B-frames), yuv420p."""
    import av

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for t in range(SECONDS * FPS):
            frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            frame[..., 0] = (xx + 2 * t) % 256
            frame[..., 1] = (yy + t) % 256
            frame[..., 2] = (xx + yy) // 3 % 256
            for k in range(3):
                cx = int((40 + 90 * k + 3 * t * (k + 1)) % WIDTH)
                cy = int(HEIGHT / 2 + 60 * np.sin(t / (10 + 5 * k)))
                frame[max(0, cy - 20) : cy + 20, max(0, cx - 20) : cx + 20] = (255, 40 * k, 0)
            grains = rng.integers(0, noise, (HEIGHT // grain, WIDTH // grain, 3), dtype=np.uint8)
            frame += np.repeat(np.repeat(grains, grain, axis=0), grain, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    require("av", "PyAV writes the test clips and is the reference decoder")
    require("decord", "decord is the adapter's video reader")
    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for kind, (noise, grain) in NOISE.items():
        out[kind] = [folder / f"{kind}{i}.mp4" for i in range(CLIPS)]
        for i, path in enumerate(out[kind]):
            _write_clip(path, seed=i, noise=noise, grain=grain)
    return out


def decord_uniform(paths: list[Path]) -> list[np.ndarray]:
    from vilem.data.video import read_frames

    return [read_frames(p, FRAMES, "uniform") for p in paths]


def pyav_every_frame(paths: list[Path], one_thread: bool = True) -> list[np.ndarray]:
    """The naive way: decode and convert every frame, then keep the 12 wanted ones."""
    import av

    from vilem.data.video import sample_indices

    out = []
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if one_thread:
                stream.thread_type = "NONE"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        out.append(np.stack([frames[i] for i in sample_indices(len(frames), FRAMES, "uniform")]))
    return out


def pyav_decode_only(paths: list[Path]) -> list[int]:
    """Every frame decoded, none converted (one thread): the least any frame-exact reader of
    these clips must do, since the 12 frames span the clip and keyframes are 250 frames apart.
    Returns the frame count of each clip."""
    import av

    counts = []
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            counts.append(sum(1 for _ in container.decode(stream)))
    return counts


def _call(variant: str, clips: dict[str, list[Path]]):
    paths = clips["high_bitrate" if variant.endswith("high_bitrate") else "web"]
    if variant.startswith("decord"):
        return lambda: decord_uniform(paths)
    if variant == "pyav_decode_only":
        return lambda: pyav_decode_only(paths)
    return lambda: pyav_every_frame(paths, one_thread="default_threads" not in variant)


def _kbps(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) * 8 / 1000 / (SECONDS * len(paths))


@pytest.mark.benchmark(group="video")
@interleaved(VARIANTS, rounds=4)
def test_video(benchmark, clips, variant, round_):
    fn = _call(variant, clips)
    if round_ == 0:
        fn()  # warm-up: file cache, decoder libraries
    frames = benchmark.pedantic(fn, rounds=1, iterations=1)
    if variant == "pyav_decode_only":
        assert frames == [SECONDS * FPS] * CLIPS
    else:
        assert all(f.shape == (FRAMES, HEIGHT, WIDTH, 3) for f in frames)
    kind = "high_bitrate" if variant.endswith("high_bitrate") else "web"
    benchmark.extra_info["kbps"] = round(_kbps(clips[kind]))
    benchmark.extra_info["clips"] = f"{CLIPS} x {SECONDS} s, {WIDTH}x{HEIGHT} @ {FPS} fps, H.264"
    if variant == "decord_adapter" and round_ == 0:
        # both paths must pick the same frames: the same pictures up to colour conversion
        reference = pyav_every_frame(clips["web"][:1])[0]
        gap = float(np.abs(frames[0].astype(np.int16) - reference.astype(np.int16)).mean())
        assert gap < 4.0, f"decord and PyAV frames differ by {gap:.1f}: not the same frames"
