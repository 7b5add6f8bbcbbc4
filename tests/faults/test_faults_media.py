"""Bad media: each stops the run with one line naming the file, before anything is encoded or
written; with ``--skip-bad-media`` the run finishes (exit 0) and the result lists the skipped
id."""

from __future__ import annotations

import pytest
from faults_build import broken_mp4, png_bomb, truncated_jpeg, write
from faults_cases import Case, check, params
from faults_runner import valid_json

BAD_IMAGE, BAD_VIDEO = "1009434119", "video7011"

IMAGE_FAULTS = {  # name -> (what the file is, its bytes; None = missing, key words)
    "missing": ("the image file is missing", None, ("not found", "missing")),
    "truncated-jpeg": ("a JPEG cut in half (header intact)", truncated_jpeg(),
                       ("corrupt", "truncated")),
    "zero-byte": ("a 0-byte .jpg", b"", ("corrupt", "empty", "not an image")),
    "png-bomb": ("a PNG declaring 30000x30000 pixels (429 bytes on disk)", png_bomb(),
                 ("too large", "bomb", "pixels")),
    "text-as-jpg": ("a text file named .jpg", b"hello, I am not a picture\n",
                    ("corrupt", "not an image")),
}  # fmt: skip
VIDEO_FAULTS = {
    "broken-mp4": ("an MP4 whose boxes are garbage", broken_mp4(), ("corrupt", "cannot", "decode")),
    "truncated-mp4": ("an MP4 cut in half", None, ("corrupt", "cannot", "decode", "truncated")),
    "zero-byte-mp4": ("a 0-byte .mp4", b"", ("corrupt", "empty", "cannot", "decode")),
    "missing-mp4": ("the video file is missing", None, ("not found", "missing")),
}  # fmt: skip


def image_setup(kind: str, skip: bool):
    def setup(ctx):
        root = ctx.flickr()
        path = root / "flickr30k-images" / f"{BAD_IMAGE}.jpg"
        data = IMAGE_FAULTS[kind][1]
        if data is None:
            path.unlink()
        else:
            write(path, data)
        if skip:
            return ctx.eval("flickr30k", root, "--skip-bad-media", out=ctx.dir / "new.json")
        return ctx.eval("flickr30k", root)

    return setup


def video_setup(kind: str, skip: bool):
    def setup(ctx):
        root = ctx.msrvtt()
        path = root / "videos" / f"{BAD_VIDEO}.mp4"
        if kind == "truncated-mp4":
            write(path, ctx.base.mp4[: len(ctx.base.mp4) // 2])
        elif kind == "missing-mp4":
            path.unlink()
        else:
            write(path, VIDEO_FAULTS[kind][1])
        more = ["--frames", "2"] + (["--skip-bad-media"] if skip else [])
        return ctx.eval("msrvtt", root, *more, out=ctx.dir / "new.json" if skip else "prev")

    return setup


def skipped(item: str, items: int):
    def then(ctx, outcome):
        dataset = valid_json(ctx.dir / "new.json")["dataset"]
        assert dataset["skipped_ids"] == [item], dataset
        assert dataset["counts"]["items"] == items and dataset["counts"]["skipped_items"] == 1

    return then


CASES = []
for faults, make, bad, ext, kept in (
    (IMAGE_FAULTS, image_setup, BAD_IMAGE, "jpg", 2),
    (VIDEO_FAULTS, video_setup, BAD_VIDEO, "mp4", 1),
):
    for kind, (fault, _, words) in faults.items():
        CASES += [
            Case(f"media-{kind}", fault, "refuses before encoding: names the file",
                 make(kind, False), words=(f"{bad}.{ext}", words)),
            Case(f"media-{kind}-skip", f"{fault}, with --skip-bad-media",
                 "evaluates the rest (exit 0); the result lists the skipped id",
                 make(kind, True), code=0, then=skipped(bad, kept)),
        ]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_media_fault(case, ctx, vilem):
    check(case, ctx, vilem)
