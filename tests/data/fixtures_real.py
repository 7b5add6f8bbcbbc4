"""Tiny fixtures in the real datasets' formats (field names as the public files spell them),
written on the fly into a test's tmp_path: Karpathy and LAVIS caption files, MSR-VTT files,
JPEGs with PIL and MP4s with PyAV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

# -- media ---------------------------------------------------------------------------------


def write_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), colour).save(path, format="JPEG")
    return path


def frame_level(index: int) -> int:
    """The grey level frame ``index`` is painted with; 8 levels apart survive lossy coding."""
    return 8 * index + 4


def frame_index(frame: np.ndarray) -> int:
    """Which frame a decoded (H, W, 3) frame is, read back from its grey level."""
    return round((float(frame.mean()) - 4) / 8)


def write_mp4(path: Path, num_frames: int, width: int = 64, height: int = 48) -> Path:
    """An H.264 (yuv420p) MP4 whose frame i is flat grey ``frame_level(i)``.

    64 pixels wide because decord 0.6 mis-sizes a few small widths (48, 72) when decoding.
    """
    assert frame_level(num_frames - 1) <= 255
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0"}
        for i in range(num_frames):
            pixels = np.full((height, width, 3), frame_level(i), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# -- COCO / Flickr30K ----------------------------------------------------------------------

# (filepath, filename, split, cocoid, captions): the shape of entries in dataset_coco.json.
# Test images carry 5 and 6 captions: the real test split has 25,010 captions, not 25,000.
COCO_IMAGES: list[tuple[str, str, str, int, list[str]]] = [
    ("train2014", "COCO_train2014_000000000009.jpg", "train", 9, ["A plate of food.", "Food."]),
    ("train2014", "COCO_train2014_000000000025.jpg", "train", 25, ["A giraffe eating leaves."]),
    ("val2014", "COCO_val2014_000000000042.jpg", "restval", 42, ["A dog on a bench."]),
    ("val2014", "COCO_val2014_000000000073.jpg", "val", 73, ["A red motorbike.", "A bike."]),
    (
        "val2014",
        "COCO_val2014_000000391895.jpg",
        "test",
        391895,
        [
            "A man with a red helmet on a small moped on a dirt road. ",
            "Man riding a motor bike on a dirt road on the countryside.",
            "A man riding on the back of a motorcycle.",
            "A dirt path with a young person on a motor bike rests to the foreground.",
            "A man in a red shirt and a red hat is on a motorcycle on a hill side.",
        ],
    ),
    (
        "val2014",
        "COCO_val2014_000000522418.jpg",
        "test",
        522418,
        [
            "A woman wearing a net on her head cutting a cake. ",
            "A woman cutting a large white sheet cake.",
            "A woman wearing a hair net cutting a large sheet cake.",
            "there is a woman that is cutting a white cake",
            "A woman marking a cake with the back of a chef's knife.",
            "A woman cutting a cake in a kitchen.",
        ],
    ),
]

# (filename, split, captions) as in dataset_flickr30k.json
FLICKR_IMAGES: list[tuple[str, str, list[str]]] = [
    ("1000092795.jpg", "train", ["Two young guys with shaggy hair look at their hands.", "Men."]),
    ("10002456.jpg", "val", ["Several men in hard hats are operating a giant pulley system."]),
    ("1007129816.jpg", "test", ["The man with pierced ears is wearing glasses.", "A man."]),
    ("1009434119.jpg", "test", ["A black and white dog is running in a grassy garden.", "Dog."]),
]


def _karpathy_images(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Fill imgid, sentids, tokens and sentid as Karpathy's files do."""
    sentid = 0
    images = []
    for imgid, entry in enumerate(entries):
        sentences = []
        for raw in entry.pop("captions"):
            tokens = [t for t in raw.lower().replace(".", " ").split() if t]
            sentences.append({"tokens": tokens, "raw": raw, "imgid": imgid, "sentid": sentid})
            sentid += 1
        images.append(
            {
                **entry,
                "sentids": [s["sentid"] for s in sentences],
                "imgid": imgid,
                "sentences": sentences,
            }
        )
    return {"images": images, "dataset": "?"}


def coco_karpathy() -> dict[str, Any]:
    data = _karpathy_images(
        [
            {"filepath": fp, "filename": fn, "split": sp, "cocoid": cid, "captions": list(caps)}
            for fp, fn, sp, cid, caps in COCO_IMAGES
        ]
    )
    data["dataset"] = "coco"
    return data


def flickr_karpathy() -> dict[str, Any]:
    data = _karpathy_images(
        [{"filename": fn, "split": sp, "captions": list(caps)} for fn, sp, caps in FLICKR_IMAGES]
    )
    data["dataset"] = "flickr30k"
    return data


def coco_lavis(split: str) -> list[dict[str, Any]]:
    """LAVIS's coco_karpathy_<split>.json: train merges Karpathy train + restval."""
    wanted = {"train", "restval"} if split == "train" else {split}
    rows = [r for r in COCO_IMAGES if r[2] in wanted]
    if split == "train":
        return [
            {"caption": cap, "image": f"{fp}/{fn}", "image_id": f"coco_{cid}"}
            for fp, fn, _, cid, caps in rows
            for cap in caps
        ]
    return [{"image": f"{fp}/{fn}", "caption": list(caps)} for fp, fn, _, _, caps in rows]


def flickr_lavis(split: str) -> list[dict[str, Any]]:
    rows = [r for r in FLICKR_IMAGES if r[1] == split]
    if split == "train":
        return [
            {"image": f"flickr30k-images/{fn}", "caption": cap, "image_id": i}
            for i, (fn, _, caps) in enumerate(rows)
            for cap in caps
        ]
    return [{"image": f"flickr30k-images/{fn}", "caption": list(caps)} for fn, _, caps in rows]


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def make_coco(root: Path, fmt: str = "karpathy", images: bool = True, subdir: str = ".") -> Path:
    """A COCO root in Karpathy's or LAVIS's format, annotations in ``root/subdir``."""
    if fmt == "karpathy":
        write_json(root / subdir / "dataset_coco.json", coco_karpathy())
    else:
        for split in ("train", "val", "test"):
            write_json(root / subdir / f"coco_karpathy_{split}.json", coco_lavis(split))
    if images:
        for fp, fn, *_ in COCO_IMAGES:
            write_image(root / fp / fn)
    return root


def make_flickr(root: Path, fmt: str = "karpathy", image_dir: str = "flickr30k-images") -> Path:
    if fmt == "karpathy":
        write_json(root / "dataset_flickr30k.json", flickr_karpathy())
    else:
        for split in ("train", "val", "test"):
            write_json(root / f"flickr30k_{split}.json", flickr_lavis(split))
    for fn, *_ in FLICKR_IMAGES:
        write_image(root / image_dir / fn)
    return root


# -- MSR-VTT -------------------------------------------------------------------------------

# video_id -> (official split, captions); real files use "train" / "validate" / "test"
MSRVTT_VIDEOS: dict[str, tuple[str, list[str]]] = {
    "video0": ("train", ["a car is shown", "a red car drives down the road"]),
    "video1": ("train", ["a man talks about cooking", "a chef cooks noodles", "cooking show"]),
    "video2": ("train", ["kids play football"]),
    "video3": ("validate", ["a woman sings on stage", "a concert"]),
    "video4": ("validate", ["cartoon characters fight"]),
    "video5": ("test", ["a person is connecting something to system", "a computer demo"]),
    "video6": ("test", ["a cat plays with a ball", "cat video", "a kitten jumps"]),
}
MSRVTT_JSFUSION = [  # (video_id, sentence): one sentence per 1k-A test video
    ("video4", "cartoon characters fight each other"),
    ("video0", "a red car drives down the road"),
    ("video2", "kids play football on grass"),
]
MSRVTT_TRAIN_9K = ["video1", "video3", "video5", "video6"]
MSRVTT_TRAIN_7K = ["video1", "video3"]


def msrvtt_data() -> dict[str, Any]:
    videos, sentences = [], []
    for i, (vid, (split, caps)) in enumerate(MSRVTT_VIDEOS.items()):
        videos.append(
            {
                "category": i % 20,
                "url": f"https://www.youtube.com/watch?v=fixture{i}",
                "video_id": vid,
                "start time": 1.5 * i,
                "end time": 1.5 * i + 10.0,
                "split": split,
                "id": i,
            }
        )
        sentences.extend({"caption": c, "video_id": vid} for c in caps)
    # the real file lists sentences in its own order, not grouped by video
    sentences = sentences[1::2] + sentences[0::2]
    for k, s in enumerate(sentences):
        s["sen_id"] = k
    return {"info": {"year": "2016"}, "videos": videos, "sentences": sentences}


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_msrvtt(root: Path, subdir: str = ".", video_dir: str = "videos", videos: int = 0) -> Path:
    """An MSR-VTT root; the first ``videos`` ids get a real 3-frame MP4 in ``video_dir``."""
    ann = root / subdir
    write_json(ann / "MSRVTT_data.json", msrvtt_data())
    write_csv(
        ann / "MSRVTT_JSFUSION_test.csv",
        ["key", "vid_key", "video_id", "sentence"],
        [
            [f"ret{i}", f"msr{vid[5:]}", vid, sentence]
            for i, (vid, sentence) in enumerate(MSRVTT_JSFUSION)
        ],
    )
    write_csv(ann / "MSRVTT_train.9k.csv", ["video_id"], [[v] for v in MSRVTT_TRAIN_9K])
    write_csv(ann / "MSRVTT_train.7k.csv", ["video_id"], [[v] for v in MSRVTT_TRAIN_7K])
    for vid in list(MSRVTT_VIDEOS)[:videos]:
        write_mp4(root / video_dir / f"{vid}.mp4", num_frames=3)
    return root
