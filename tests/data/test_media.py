"""Reading images: every way a file can fail to decode is a DataError naming it, caught by the
same full decode that evaluation's loader does (``load_image``)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vilem.data.media import check_image, load_image
from vilem.errors import DataError


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )
    return path


def truncated_jpeg(path: Path) -> Path:
    """A noisy JPEG cut in half: ``Image.verify()`` passes it, decoding it fails."""
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def test_a_good_image_decodes_as_rgb(tmp_path):
    Image.new("L", (8, 6), 100).save(tmp_path / "grey.png")
    image = load_image(tmp_path / "grey.png")
    assert image.mode == "RGB" and image.size == (8, 6)
    check_image(tmp_path / "grey.png")


def test_a_truncated_jpeg_fails_the_check(tmp_path):
    path = truncated_jpeg(tmp_path / "cut.jpg")
    with Image.open(path) as im:
        im.verify()  # the old check passed it
    with pytest.raises(DataError, match=r"cut\.jpg is corrupt or not an image: .*truncated"):
        check_image(path)


@pytest.mark.parametrize("side", [30000, 15000])
def test_a_decompression_bomb_is_a_data_error(tmp_path, side):
    path = png_claiming(tmp_path / "bomb.png", side, side)
    with pytest.raises(DataError, match=r"bomb\.png is too large to decode"):
        load_image(path)
    with pytest.raises(DataError, match=r"bomb\.png"):
        check_image(path)


def test_missing_and_non_image_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"image not found: .*gone\.jpg"):
        check_image(tmp_path / "gone.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(DataError, match=r"text\.jpg is corrupt or not an image"):
        check_image(tmp_path / "text.jpg")
