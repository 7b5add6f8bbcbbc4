"""Media validation before encoding: each item is decoded as the encoding loader decodes it, so
a bad file stops the run (one line) or is skipped and recorded, never failing in a worker."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vilem.data.base import Split
from vilem.errors import DataError
from vilem.eval.engine import EvalOptions, validate_media


def _truncated_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # Image.verify() passes it


def _split(tmp_path: Path, bad: dict[int, str], n: int = 4, modality: str = "image") -> Split:
    paths = []
    for i in range(n):
        path = tmp_path / f"im{i}.jpg"
        if bad.get(i) == "truncated":
            _truncated_jpeg(path)
        elif bad.get(i) != "missing":
            Image.new("RGB", (10, 8), (30 * i, 60, 90)).save(path)
        paths.append(path)
    return Split(
        dataset="toy", split="test", root=tmp_path, modality=modality,
        items=[f"im{i}" for i in range(n)], item_paths=paths,
        texts=[f"text {i}" for i in range(n)], text_to_item=list(range(n)), revision="r",
    )  # fmt: skip


@pytest.mark.parametrize("workers", [0, 1])
def test_a_truncated_jpeg_is_skipped_and_recorded(tmp_path, workers):
    split = _split(tmp_path, {1: "truncated", 3: "missing"})
    kept = validate_media(split, skip_bad=True, opts=EvalOptions(num_workers=workers))
    assert kept.items == ["im0", "im2"] and kept.skipped == ["im1", "im3"]
    assert kept.texts == ["text 0", "text 2"]


def test_without_skip_the_error_is_one_line_naming_the_first_the_count_and_the_flag(tmp_path):
    split = _split(tmp_path, {1: "truncated", 3: "missing"})
    with pytest.raises(DataError) as exc:
        validate_media(split, skip_bad=False)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("2 of 4 images in toy/test are missing or corrupt, the first: ")
    assert "im1.jpg" in message and "truncated" in message and "im3" not in message
    assert message.endswith("pass --skip-bad-media to evaluate the rest and record the skipped ids")


def test_all_items_skipped_says_so(tmp_path):
    split = _split(tmp_path, {0: "truncated", 1: "missing"}, n=2)
    with pytest.raises(DataError, match=r"^all 2 images of toy/test were skipped") as exc:
        validate_media(split, skip_bad=True)
    assert "\n" not in str(exc.value)


def test_videos_are_checked_by_reading_the_frames_the_loader_reads(tmp_path, monkeypatch):
    from vilem.data import video

    calls = []

    def fake_read_frames(path, num_frames, mode, rng):
        calls.append((Path(path).name, num_frames, mode, rng.integers(1 << 30)))
        if Path(path).name == "im1.jpg":
            raise DataError(f"video {path} is corrupt or cannot be decoded: frame 7")
        return np.zeros((num_frames, 4, 4, 3), np.uint8)

    monkeypatch.setattr(video, "read_frames", fake_read_frames)
    split = _split(tmp_path, {}, n=3, modality="video")
    opts = EvalOptions(num_workers=0, frames=5, sampling="random", seed=3)
    kept = validate_media(split, skip_bad=True, opts=opts)
    assert kept.skipped == ["im1"]
    # the same frame count, mode and per-item RNG as MediaDataset uses when encoding
    expected = [np.random.default_rng([3, i]).integers(1 << 30) for i in range(3)]
    assert calls == [(f"im{i}.jpg", 5, "random", expected[i]) for i in range(3)]


def test_a_split_that_passed_is_not_decoded_again_until_a_file_changes(tmp_path, monkeypatch):
    from vilem.eval import engine

    decoded = []
    real = engine._MediaCheck.__getitem__
    monkeypatch.setattr(
        engine._MediaCheck, "__getitem__", lambda self, i: decoded.append(i) or real(self, i)
    )
    split = _split(tmp_path, {}, n=3)
    assert validate_media(split, skip_bad=False) is split
    assert validate_media(split, skip_bad=False) is split  # the same files: no decoding
    assert decoded == [0, 1, 2]
    validate_media(split, skip_bad=False, opts=EvalOptions(num_workers=0, frames=4))
    assert decoded == [0, 1, 2] * 2  # other decoding settings: checked again
    _truncated_jpeg(split.item_paths[1])  # replaced in place: checked again, and caught
    with pytest.raises(DataError, match="1 of 3 images"):
        validate_media(split, skip_bad=False)
