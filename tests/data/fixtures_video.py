"""Tiny fixtures in the formats the video retrieval field distributes (MSVD, DiDeMo, ActivityNet
Captions, LSMDC, VATEX), written into a test's tmp_path, with MP4s whose grey level encodes the
frame index (``fixtures_real.frame_index`` reads it back)."""

from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
from fixtures_real import frame_level, write_csv, write_json


def write_clip(path: Path, num_frames: int, fps: int) -> Path:
    """An H.264 MP4 of ``num_frames`` frames at ``fps`` whose frame i is grey ``frame_level(i)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "0", "bf": "0"}
        for i in range(num_frames):
            pixels = np.full((48, 64, 3), frame_level(i), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# -- MSVD ----------------------------------------------------------------------------------

# clip -> (vid number in youtube_mapping.txt, English captions); the real corpus has ~40 each
MSVD_CLIPS: dict[str, tuple[int, list[str]]] = {
    "-4wsuPCjDBc_5_15": (1, ["a squirrel is eating a peanut", "a chipmunk eats"]),
    "-7KMZQEsJW4_205_208": (2, ["a man is singing", "someone sings on stage", "a man sings"]),
    "-8y1Q0rA3n8_108_115": (1201, ["a woman slices an onion"]),
    "-AwoiGR6c8M_10_14": (1301, ["a cat is playing the piano", "a cat plays a keyboard"]),
    "04Gt01vatkk_248_265": (1970, ["a boy is riding a bicycle", "a kid rides a bike"]),
}
MSVD_LISTS = {
    "train": ["-4wsuPCjDBc_5_15", "-7KMZQEsJW4_205_208"],
    "val": ["-8y1Q0rA3n8_108_115"],
    "test": ["-AwoiGR6c8M_10_14", "04Gt01vatkk_248_265"],
}
MSVD_HEADER = [
    "VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language", "Description",
]  # fmt: skip


def msvd_csv_rows() -> list[list[str]]:
    rows = []
    for k, (clip, (_, captions)) in enumerate(MSVD_CLIPS.items()):
        video, start, end = clip.rsplit("_", 2)
        for text in captions:
            rows.append([video, start, end, str(100 + k), "unverified", "17", "English", text])
        # other languages are in the same file and are not English captions
        rows.append([video, start, end, str(200 + k), "clean", "20", "German", "eine Katze"])
    return rows


def msvd_pickle() -> dict[str, list[list[str]]]:
    """raw-captions.pkl's shape: clip -> list of token lists."""
    return {clip: [t.split() for t in caps] for clip, (_, caps) in MSVD_CLIPS.items()}


def make_msvd(root: Path, captions: str = "csv", split: str = "lists", videos: int = 0) -> Path:
    """An MSVD root with captions from the corpus CSV or raw-captions.pkl and the split from
    CLIP4Clip's list files or youtube_mapping.txt; the first ``videos`` clips get an .avi-named
    folder entry (real MP4 content is fine for decord)."""
    if captions == "csv":
        write_csv(root / "MSR Video Description Corpus.csv", MSVD_HEADER, msvd_csv_rows())
    else:
        (root / "raw-captions.pkl").write_bytes(pickle.dumps(msvd_pickle()))
    if split == "lists":
        for name, clips in MSVD_LISTS.items():
            (root / f"{name}_list.txt").write_text("".join(f"{c}\n" for c in clips))
    else:
        lines = [f"{clip} vid{n}\n" for clip, (n, _) in MSVD_CLIPS.items()]
        (root / "youtube_mapping.txt").write_text("".join(lines))
    for clip in list(MSVD_CLIPS)[:videos]:
        write_clip(root / "YouTubeClips" / f"{clip}.avi", 6, 10)
    return root


# -- DiDeMo --------------------------------------------------------------------------------

DIDEMO_V1 = "26292851@N04_4253489686_265c3c8051.m4v"
DIDEMO_V2 = "10015567@N08_3655084291_d8b58466fa.mov"
DIDEMO_V3 = "54322086@N00_2408598493_f96e2d3aba.mp4"


def didemo_entries() -> list[dict]:
    """test_data.json entries; ``times`` are one [first, last] 5-s segment pair per annotator."""
    rows = [
        (DIDEMO_V1, "someone kicks the bug towards some rocks.", [[1, 1], [1, 1], [1, 2], [1, 1]]),
        (DIDEMO_V2, "a dog runs into the frame.", [[0, 0], [0, 0], [0, 1], [0, 0]]),
        (DIDEMO_V1, "the bug stops moving.", [[2, 2], [2, 2], [2, 2], [2, 2]]),
        (DIDEMO_V3, "camera pans left.", [[4, 5], [4, 5], [5, 5], [4, 5]]),
        (DIDEMO_V2, "the dog sits down.", [[3, 3], [3, 4], [3, 3], [3, 3]]),
    ]
    return [
        {
            "num_segments": 6,
            "description": d,
            "dl_link": f"https://www.flickr.com/video_download.gne?id={k}",
            "times": t,
            "video": v,
            "annotation_id": k,
        }
        for k, (v, d, t) in enumerate(rows)
    ]


def make_didemo(root: Path, with_list: bool = False) -> Path:
    write_json(root / "test_data.json", didemo_entries())
    if with_list:  # Collaborative Experts' list: the videos that could be downloaded
        (root / "test_list.txt").write_text(f"{DIDEMO_V2}\n{DIDEMO_V1}\n")
    return root


# -- ActivityNet Captions ------------------------------------------------------------------


def activitynet_val_1() -> dict:
    return {
        "v_uqiMw7tQ1Cc": {
            "duration": 55.15,
            "timestamps": [[0.28, 55.15], [13.79, 54.32]],
            "sentences": [
                "A weight lifting tutorial is given.",
                "  The coach helps the guy in red with the proper body placement and lifting.",
            ],
        },
        "v_bXdq2zI1Ms0": {
            "duration": 73.1,
            "timestamps": [[2.0, 4.5], [3.0, 6.0], [5.5, 7.0]],
            "sentences": [
                "Three men are standing on a mat.",
                " The man in front begins to do karate on the mat.",
                " He gets down on the ground and flips around.",
            ],
        },
    }


def make_activitynet(root: Path) -> Path:
    write_json(root / "val_1.json", activitynet_val_1())
    write_json(root / "val_2.json", {"v_K6Tm5xHkJ5c": activitynet_val_1()["v_bXdq2zI1Ms0"]})
    write_json(root / "train.json", {"v_QOlSCBRmfWY": activitynet_val_1()["v_uqiMw7tQ1Cc"]})
    return root


# -- LSMDC ---------------------------------------------------------------------------------

LSMDC_TRAIN = [
    ("0001_American_Beauty_00.00.51.926-00.00.54.129", "SOMEONE gets out of the car."),
    ("0001_American_Beauty_00.00.51.926-00.00.54.129", "He shuts the door."),
    ("0001_American_Beauty_00.01.02.340-00.01.05.000", "SOMEONE walks to the house."),
]
LSMDC_TEST = [
    ("1010_TITANIC_00.41.32.072-00.41.40.196", "A man in a suit stands on the deck."),
    ("1012_Unbreakable_00.05.14.612-00.05.18.519", "SOMEONE looks at the train."),
]


def lsmdc_lines(rows: list[tuple[str, str]]) -> str:
    return "".join(f"{c}\t00.00.01.0\t00.00.02.0\t00.00.01.0\t00.00.02.0\t{s}\n" for c, s in rows)


def make_lsmdc(root: Path) -> Path:
    (root / "LSMDC16_annos_training.csv").write_text(lsmdc_lines(LSMDC_TRAIN))
    (root / "LSMDC16_challenge_1000_publictect.csv").write_text(lsmdc_lines(LSMDC_TEST))
    return root


# -- VATEX ---------------------------------------------------------------------------------

VATEX_VALIDATION = {
    "Ptf_2VRj-V0_000122_000132": [f"a man is playing drums number {i}" for i in range(10)],
    "-0oL8QRYnvQ_000013_000023": [f"a woman is dancing in a room {i}" for i in range(10)],
    "--2HkyuN-Tg_000051_000061": [f"two kids play with a ball {i}" for i in range(10)],
}
VATEX_TEST = ["-0oL8QRYnvQ_000013_000023", "Ptf_2VRj-V0_000122_000132"]


def make_vatex(root: Path, split_format: str = "txt") -> Path:
    write_json(
        root / "vatex_validation_v1.0.json",
        [
            {"videoID": v, "enCap": caps, "chCap": ["一个人"] * 10}
            for v, caps in VATEX_VALIDATION.items()
        ],
    )
    if split_format == "txt":
        (root / "test_list.txt").write_text("".join(f"{v}\n" for v in VATEX_TEST))
    else:  # HGR's public_split/tst_names.npy
        (root / "public_split").mkdir(parents=True, exist_ok=True)
        np.save(root / "public_split" / "tst_names.npy", np.array(VATEX_TEST))
    return root
