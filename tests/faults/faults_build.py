"""Tiny inputs for the fault catalogue, good and bad: dataset roots in the real formats
(Karpathy, LAVIS, MSR-VTT), media (good, truncated, bombs, impostors), a malicious pickle, a
tiny training recipe."""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

BOM = b"\xef\xbb\xbf"

# -- media ---------------------------------------------------------------------------------


def jpeg_bytes(colour=(200, 30, 30), size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    # noise, so the JPEG has enough scan data that cutting it in half loses real pixels
    rng = np.random.default_rng(sum(colour))
    pixels = (rng.integers(0, 60, (size[1], size[0], 3)) + np.asarray(colour) // 2).astype("u1")
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def truncated_jpeg() -> bytes:
    data = jpeg_bytes()
    return data[: len(data) // 2]  # header intact, half the scan gone, no EOI marker


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A small PNG whose header declares width x height RGB pixels (2.7 GB decoded)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * width) * 4, 9)  # 4 rows of data; the rest is missing
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")
    )


def mp4_bytes(frames: int = 3, width: int = 64, height: int = 48) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            pixels = np.full((height, width, 3), 30 + 40 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def broken_mp4() -> bytes:
    """An ``ftyp`` box and then garbage: looks like an MP4 to a sniffer, decodes to nothing."""
    return struct.pack(">I", 24) + b"ftypisom\0\0\2\0isomiso2" + bytes(range(256)) * 8


class PickleBomb:
    """Unpickling this creates ``marker``: proof that a loader ran pickle."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def pickle_bomb(marker: Path) -> bytes:
    import pickle

    return pickle.dumps({"state_dict": PickleBomb(marker)})


# -- COCO / Flickr30K ------------------------------------------------------------------------

COCO_TEST = [  # (filepath, filename, captions)
    ("val2014", "COCO_val2014_000000391895.jpg", ["A man on a moped.", "A dirt road."]),
    ("val2014", "COCO_val2014_000000522418.jpg", ["A woman cutting a cake.", "A cake."]),
    ("val2014", "COCO_val2014_000000184613.jpg", ["A boy and a cow.", "Cattle."]),
]
FLICKR_TEST = [  # (filename, captions)
    ("1007129816.jpg", ["The man with pierced ears is wearing glasses.", "A man."]),
    ("1009434119.jpg", ["A black and white dog is running.", "Dog."]),
    ("101362133.jpg", ["A young female student performing.", "A girl."]),
]


def coco_karpathy() -> dict[str, Any]:
    images, sentid = [], 0
    for imgid, (fp, fn, caps) in enumerate(COCO_TEST):
        sentences = []
        for raw in caps:
            sentences.append({"tokens": raw.lower().split(), "raw": raw, "imgid": imgid,
                              "sentid": sentid})  # fmt: skip
            sentid += 1
        images.append({"filepath": fp, "filename": fn, "split": "test", "imgid": imgid,
                       "cocoid": imgid, "sentids": [s["sentid"] for s in sentences],
                       "sentences": sentences})  # fmt: skip
    return {"images": images, "dataset": "coco"}


def flickr_karpathy() -> dict[str, Any]:
    data = coco_karpathy()
    for entry, (fn, caps) in zip(data["images"], FLICKR_TEST, strict=True):
        del entry["filepath"], entry["cocoid"]
        entry["filename"] = fn
        for s, raw in zip(entry["sentences"], caps, strict=True):
            s["raw"] = raw
    data["dataset"] = "flickr30k"
    return data


def coco_lavis_test() -> list[dict[str, Any]]:
    return [{"image": f"{fp}/{fn}", "caption": list(caps)} for fp, fn, caps in COCO_TEST]


def flickr_lavis_test() -> list[dict[str, Any]]:
    return [{"image": f"flickr30k-images/{fn}", "caption": list(caps)} for fn, caps in FLICKR_TEST]


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1)


def make_coco(root: Path, fmt: str = "karpathy") -> Path:
    if fmt == "karpathy":
        write(root / "dataset_coco.json", dump(coco_karpathy()))
    else:
        write(root / "coco_karpathy_test.json", dump(coco_lavis_test()))
    for k, (fp, fn, _) in enumerate(COCO_TEST):
        write(root / fp / fn, jpeg_bytes((60 * k, 90, 150)))
    return root


def make_flickr(root: Path, fmt: str = "karpathy") -> Path:
    if fmt == "karpathy":
        write(root / "dataset_flickr30k.json", dump(flickr_karpathy()))
    else:
        write(root / "flickr30k_test.json", dump(flickr_lavis_test()))
    for k, (fn, _) in enumerate(FLICKR_TEST):
        write(root / "flickr30k-images" / fn, jpeg_bytes((150, 60 * k, 90)))
    return root


# -- MSR-VTT ---------------------------------------------------------------------------------

MSRVTT = {  # video_id -> (official split, captions)
    "video0": ("train", ["a red car drives down the road", "a car"]),
    "video1": ("train", ["a chef cooks noodles"]),
    "video7010": ("test", ["a cat plays with a ball", "cat video"]),
    "video7011": ("test", ["kids play football", "a match"]),
}
JSFUSION = [("video7010", "a cat plays with a ball"), ("video7011", "kids play football")]
TRAIN_9K = ["video0", "video1"]


def msrvtt_json() -> dict[str, Any]:
    videos = [
        {
            "video_id": v,
            "split": s,
            "id": i,
            "category": i,
            "url": "u",
            "start time": 0.0,
            "end time": 5.0,
        }
        for i, (v, (s, _)) in enumerate(MSRVTT.items())
    ]
    sentences = [{"caption": c, "video_id": v, "sen_id": 0}
                 for v, (_, caps) in MSRVTT.items() for c in caps]  # fmt: skip
    return {"info": {"year": "2016"}, "videos": videos, "sentences": sentences}


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def jsfusion_csv(rows=None) -> str:
    rows = rows if rows is not None else [
        [f"ret{i}", f"msr{v[5:]}", v, s] for i, (v, s) in enumerate(JSFUSION)
    ]  # fmt: skip
    return csv_text(["key", "vid_key", "video_id", "sentence"], rows)


def make_msrvtt(root: Path, mp4: bytes) -> Path:
    write(root / "MSRVTT_data.json", dump(msrvtt_json()))
    write(root / "MSRVTT_JSFUSION_test.csv", jsfusion_csv())
    write(root / "MSRVTT_train.9k.csv", csv_text(["video_id"], [[v] for v in TRAIN_9K]))
    for vid in MSRVTT:
        write(root / "videos" / f"{vid}.mp4", mp4)
    return root


# -- training --------------------------------------------------------------------------------


def tiny_recipe(data_root: Path, steps: int = 3) -> dict[str, Any]:
    """An ITC-only tiny model (no masked LM needed) on the tiny synthetic images."""
    return {
        "model": {
            "vision": {"timm_name": "vit_tiny_patch16_224", "image_size": 32, "patch_size": 8,
                       "width": 32, "depth": 1, "heads": 2},
            "text": {"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64, "max_len": 16},
            "embed_dim": 16, "fusion_layer": 1, "use_ed": False, "use_ec": False,
        },
        "data": {"dataset": "synthetic", "root": str(data_root), "val_split": None},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "steps": steps, "batch_size": 4},
        "seed": 0, "log_every": 1, "save_every": 1, "plausibility_steps": -1,
    }  # fmt: skip
