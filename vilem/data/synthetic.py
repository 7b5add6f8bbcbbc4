"""The embedded default dataset: shapes images and moving-shape videos that ``vilem`` generates
itself, deterministically from a seed, into a data root it then reuses.

Layout under the root (default ``datasets/synthetic``)::

    manifest.json                      generator version, config, seed, annotation hashes
    annotations/images_{split}.json    items: id, file, 5 captions, structured scene
    annotations/videos_{split}.json
    images/{split}/<id>.png            64x64 RGB
    videos/{split}/<id>.mp4            H.264 yuv420p, 16 frames at 8 fps

The manifest is written last: a root without one (fresh or interrupted) is generated again.
"""

from __future__ import annotations

import hashlib
import io
import operator
import os
import random
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from multiprocessing import get_context
from numbers import Integral
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from vilem.data import scene_captions as cap
from vilem.data import scenes as sc
from vilem.data.base import DatasetAdapter, Modality, Probe, Split, default_root, register_dataset
from vilem.data.scene_words import IMAGE_PROBES, VIDEO_PROBES
from vilem.data.videotext import caption_options, regroup_captions
from vilem.errors import ConfigError, DataError
from vilem.io import atomic_write_bytes, atomic_write_json, read_json, resolve_inside

GENERATOR = "vilem.synthetic"
GENERATOR_VERSION = "1"  # bump whenever the same seed and config would give different data
SPLITS: tuple[str, ...] = ("train", "val", "test")
_KINDS: dict[str, tuple[str, str, str]] = {  # modality -> (folder, id prefix, file suffix)
    "image": ("images", "img", ".png"),
    "video": ("videos", "vid", ".mp4"),
}
_MEDIA_NAME = re.compile(r"^(img|vid)_(train|val|test)_\d+\.(png|mp4)$")


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate (the seed is passed separately). Sizes are items per split."""

    image_size: int = 64  # side of the square PNG images, pixels
    video_size: int = 64  # side of the square video frames, pixels (even, for yuv420p)
    frames: int = 16  # frames per video
    fps: int = 8  # video frame rate
    captions_per_item: int = 5  # distinct true captions per image or video, as COCO
    images_train: int = 5000
    images_val: int = 500
    images_test: int = 1000
    videos_train: int = 1000
    videos_val: int = 200
    videos_test: int = 300

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"synthetic config {f.name} must be an integer, got {value!r}")
            if value < 0:
                raise ConfigError(f"synthetic config {f.name} must not be negative, got {value}")
        if self.image_size < 32 or self.video_size < 32:
            raise ConfigError("synthetic image_size and video_size must be at least 32 pixels")
        if self.video_size % 2:
            raise ConfigError(f"synthetic video_size must be even (yuv420p), got {self.video_size}")
        if self.frames < 2 or self.fps < 1:
            raise ConfigError("synthetic videos need frames >= 2 and fps >= 1")
        if not 1 <= self.captions_per_item <= 10:
            raise ConfigError("synthetic captions_per_item must be between 1 and 10")

    def split_size(self, modality: str, split: str) -> int:
        return getattr(self, f"{_KINDS[modality][0]}_{split}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticConfig:
        """Build from a manifest's or the CLI's dict, naming any unknown key."""
        if not isinstance(data, dict):
            raise ConfigError(f"synthetic config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown synthetic config key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**data)


DEFAULT_CONFIG = SyntheticConfig()  # what a fresh root gets on first load

# ----------------------------------------------------------------------------- generation


def _item_id(modality: str, split: str, index: int) -> str:
    return f"{_KINDS[modality][1]}_{split}_{index:05d}"


def _media_rel(modality: str, split: str, item_id: str) -> str:
    folder, _, suffix = _KINDS[modality]
    return f"{folder}/{split}/{item_id}{suffix}"


def encode_png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def encode_mp4(frames: list[np.ndarray], fps: int) -> bytes:
    """H.264 yuv420p MP4 bytes, written with PyAV; one encoder thread keeps output reproducible."""
    import av  # deferred: only video generation needs it

    height, width = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # near-lossless and no B-frames: colours survive chroma subsampling, any reader seeks
        stream.options = {"crf": "12", "preset": "veryfast", "bf": "0", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _make_item(
    root: Path, modality: str, split: str, index: int, seed: int, config: SyntheticConfig
) -> dict[str, Any]:
    """Sample, caption, render and write one item; its own RNG makes it order-independent."""
    rng = np.random.default_rng([seed, list(_KINDS).index(modality), SPLITS.index(split), index])
    if modality == "image":
        scene = sc.sample_image_scene(rng, config.image_size)
    else:
        scene = sc.sample_video_scene(rng, config.video_size, config.frames, config.fps)
    captions = cap.make_captions(
        random.Random(int(rng.integers(2**62))), scene, config.captions_per_item
    )
    scene["captions"] = captions
    item_id = _item_id(modality, split, index)
    rel = _media_rel(modality, split, item_id)
    if modality == "image":
        data = encode_png(sc.render_image(scene))
    else:
        data = encode_mp4(sc.render_frames(scene), config.fps)
    # atomic: a killed run never leaves a truncated PNG/MP4 under the final name
    atomic_write_bytes(root / rel, data)
    return {
        "id": item_id,
        "file": rel,
        "captions": [cap.render_caption(c) for c in captions],
        "scene": scene,
    }


def _make_chunk(job: tuple[str, str, str, int, int, int, dict[str, int]]) -> list[dict[str, Any]]:
    root, modality, split, start, stop, seed, config = job
    cfg = SyntheticConfig(**config)
    return [_make_item(Path(root), modality, split, i, seed, cfg) for i in range(start, stop)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _annotation_rel(modality: str, split: str) -> str:
    return f"annotations/{_KINDS[modality][0]}_{split}.json"


def _content_hash(file_hashes: dict[str, str]) -> str:
    """One hash over the annotation files (in a fixed order): the dataset revision."""
    h = hashlib.sha256()
    for rel in sorted(file_hashes):
        h.update(f"{rel}\0{file_hashes[rel]}\n".encode())
    return h.hexdigest()[:16]


def _reusable(root: Path, config: SyntheticConfig, seed: int) -> dict[str, Any] | None:
    """The existing manifest when it matches and everything it lists is there, else None."""
    try:
        manifest = read_json(root / "manifest.json", "synthetic manifest")
    except DataError:
        return None
    if not isinstance(manifest, dict):
        return None
    expected = (GENERATOR, GENERATOR_VERSION, seed, config.to_dict())
    found = tuple(manifest.get(k) for k in ("generator", "version", "seed", "config"))
    files = manifest.get("files")
    if found != expected or not isinstance(files, dict):
        return None
    wanted = {_annotation_rel(m, s) for m in _KINDS for s in SPLITS}
    if set(files) != wanted or manifest.get("content_hash") != _content_hash(files):
        return None
    for rel, digest in files.items():
        path = root / rel
        if not path.is_file() or _sha256(path) != digest:
            return None
    # item ids follow from the config alone, so presence is checked without parsing annotations
    for modality, (folder, _, suffix) in _KINDS.items():
        for split in SPLITS:
            directory = root / folder / split
            present = set(os.listdir(directory)) if directory.is_dir() else set()
            for i in range(config.split_size(modality, split)):
                if f"{_item_id(modality, split, i)}{suffix}" not in present:
                    return None
    return manifest


def _check_owned(root: Path) -> None:
    """Refuse to overwrite a folder whose manifest.json some other tool wrote (a wrong --root)."""
    path = root / "manifest.json"
    if not path.exists():
        return
    try:
        ours = read_json(path, "manifest").get("generator") == GENERATOR
    except (DataError, AttributeError):
        ours = False
    if not ours:
        raise DataError(
            f"{path} exists and was not written by vilem's synthetic generator; "
            "choose another root for the synthetic data, or delete that file"
        )


def _remove_stale_media(root: Path, keep: set[str]) -> None:
    """Delete media of an earlier, larger generation; only files named as this module names them."""
    for folder, _, _ in _KINDS.values():
        for split in SPLITS:
            directory = root / folder / split
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                rel = f"{folder}/{split}/{path.name}"
                if _MEDIA_NAME.match(path.name) and rel not in keep:
                    path.unlink()


def generate(
    root: str | os.PathLike,
    config: SyntheticConfig | dict[str, int] = DEFAULT_CONFIG,
    seed: int = 0,
    force: bool = False,
    workers: int | None = None,
) -> dict[str, Any]:
    """Generate the synthetic images and videos into ``root`` and return the manifest.

    Existing data is reused, untouched, when its manifest has the same generator version,
    config and seed, the annotation files hash as recorded and every media file is present;
    otherwise (or with ``force``) everything is generated again. The output depends only on
    ``config`` and ``seed``, never on ``workers`` (default: all CPUs for large configs).
    """
    root, config, seed = _checked_args(root, config, seed)
    if not force and (manifest := _reusable(root, config, seed)) is not None:
        return manifest
    _check_owned(root)
    n_images = sum(config.split_size("image", s) for s in SPLITS)
    n_videos = sum(config.split_size("video", s) for s in SPLITS)
    print(f"vilem: generating the synthetic dataset in {root} ({n_images} images, {n_videos} "
          "videos; once, then reused)", file=sys.stderr, flush=True)  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    # an interrupted regeneration must not be mistaken for a finished one
    (root / "manifest.json").unlink(missing_ok=True)
    by_split = _make_items(root, config, seed, workers)
    files = _write_annotations(root, by_split, seed)
    _remove_stale_media(root, {item["file"] for items in by_split.values() for item in items})
    manifest = {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "config": config.to_dict(),
        "counts": {f"{_KINDS[m][0]}_{s}": config.split_size(m, s) for m in _KINDS for s in SPLITS},
        "files": files,
        "content_hash": _content_hash(files),
    }
    atomic_write_json(root / "manifest.json", manifest)
    return manifest


def _checked_args(
    root: str | os.PathLike, config: SyntheticConfig | dict[str, int], seed: int
) -> tuple[Path, SyntheticConfig, int]:
    """``generate``'s root, config and seed, validated and normalised."""
    root = Path(root)
    if isinstance(config, dict):
        config = SyntheticConfig.from_dict(config)
    try:
        valid = not isinstance(seed, bool) and operator.index(seed) >= 0
    except TypeError:
        valid = False
    if not valid:
        raise ConfigError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    seed = operator.index(seed)
    if root.exists() and not root.is_dir():
        raise DataError(f"synthetic data root {root} exists and is not a folder")
    return root, config, seed


def _make_items(
    root: Path, config: SyntheticConfig, seed: int, workers: int | None
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Render and write every item, in chunks (in a process pool for large configs); the
    annotation records by (modality, split), in index order."""
    jobs = []
    for modality, (folder, _, _) in _KINDS.items():
        chunk = 250 if modality == "image" else 40
        for split in SPLITS:
            (root / folder / split).mkdir(parents=True, exist_ok=True)
            n = config.split_size(modality, split)
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                jobs.append((str(root), modality, split, start, stop, seed, config.to_dict()))
    total = sum(job[4] - job[3] for job in jobs)
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers <= 1 or total < 300:  # a pool costs more than it saves on tiny configs
        chunks = [_make_chunk(job) for job in jobs]
    else:
        # spawn, not fork: the caller may hold torch/OpenMP threads that a fork would break
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            chunks = list(pool.map(_make_chunk, jobs))
    by_split: dict[tuple[str, str], list[dict[str, Any]]] = {
        (m, s): [] for m in _KINDS for s in SPLITS
    }
    for job, items in zip(jobs, chunks, strict=True):
        by_split[(job[1], job[2])].extend(items)
    return by_split


def _write_annotations(
    root: Path, by_split: dict[tuple[str, str], list[dict[str, Any]]], seed: int
) -> dict[str, str]:
    """One annotation file per (modality, split); their sha256 by relative path."""
    files: dict[str, str] = {}
    for (modality, split), items in by_split.items():
        rel = _annotation_rel(modality, split)
        atomic_write_json(
            root / rel,
            {
                "dataset": "synthetic" if modality == "image" else "synthetic-video",
                "modality": modality,
                "split": split,
                "generator_version": GENERATOR_VERSION,
                "seed": seed,
                "items": items,
            },
        )
        files[rel] = _sha256(root / rel)
    return files


# ----------------------------------------------------------------------------- adapters


class _SyntheticAdapter(DatasetAdapter):
    """Reads one modality of a synthetic root, generating the defaults into a fresh root."""

    splits: ClassVar[tuple[str, ...]] = SPLITS
    # load-time options beyond seed and config (the video adapter's protocol options)
    extra_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: str | os.PathLike | None = None, **options: Any):
        # images and videos live in one root, whatever the adapter's registered name
        super().__init__(root if root is not None else default_root("synthetic"), **options)
        known = ("seed", "config", *self.extra_options)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"dataset {self.name!r} has no option(s) {', '.join(unknown)}; "
                f"options: {', '.join(known)}"
            )
        # the protocol options (only the video adapter takes them; the defaults change nothing)
        self.protocol, self.captions_per_video = caption_options(self.name, options)
        # sizes to generate (SyntheticConfig fields): the root is made to hold exactly this data
        overrides = options.get("config")
        if overrides is not None and not isinstance(overrides, dict):
            raise ConfigError(
                f"dataset {self.name!r} option config must be a mapping of sizes "
                f"(e.g. {{images_train: 64}}), got {overrides!r}"
            )
        self.config = (
            None
            if overrides is None
            else SyntheticConfig.from_dict({**DEFAULT_CONFIG.to_dict(), **overrides})
        )
        seed = options.get("seed")
        if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
            seed = int(seed)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0
        ):  # 1.5 or true is a mistake, not seed 1; -1 is no seed `vilem data` takes
            raise ConfigError(
                f"dataset {self.name!r} option seed must be a non-negative integer, got {seed!r}"
            )
        self.seed = None if seed is None else int(seed)
        self.manifest: dict[str, Any] | None = None

    def load_split(self, split: str) -> Split:
        if split in self.splits:
            self.manifest = self._ensure()
        return super().load_split(split)

    def _ensure(self) -> dict[str, Any]:
        path = self.root / "manifest.json"
        if self.config is not None:  # explicit sizes: reuse if they match, else regenerate
            return generate(self.root, self.config, 0 if self.seed is None else self.seed)
        if not path.is_file():  # the fresh-machine path
            return generate(self.root, DEFAULT_CONFIG, 0 if self.seed is None else self.seed)
        manifest = read_json(path, "synthetic manifest")
        if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR:
            raise DataError(
                f"{path} is not a vilem synthetic manifest; "
                f"regenerate with `vilem data synthetic --root {self.root}`"
            )
        try:
            config = SyntheticConfig.from_dict(manifest.get("config"))
        except ConfigError as exc:
            raise DataError(
                f"{path} has an unusable config ({exc}); "
                f"regenerate with `vilem data synthetic --root {self.root}`"
            ) from exc
        if self.seed is not None and self.seed != manifest.get("seed"):
            raise DataError(
                f"{self.root} holds synthetic data generated with seed {manifest.get('seed')}, "
                f"not {self.seed}; run `vilem data synthetic --root {self.root} "
                f"--seed {self.seed}` or use another root"
            )
        # same config and seed: reused as is, or rebuilt identically if files went missing
        return generate(self.root, config, int(manifest.get("seed", 0)))

    def _load(self, split: str) -> Split:
        assert self.manifest is not None
        folder = _KINDS[self.modality][0]
        path = self.root / _annotation_rel(self.modality, split)
        doc = read_json(path, "synthetic annotation file")
        items, texts, text_to_item, paths, ids, scenes = doc.get("items"), [], [], [], [], []
        if not isinstance(items, list):
            raise DataError(f"{path}: 'items' must be a list")
        for i, item in enumerate(items):
            try:
                ids.append(str(item["id"]))
                what = f"{path.name} media path"
                paths.append(resolve_inside(self.root, item["file"], what, self.allow_symlinks))
                captions = list(item["captions"])
                scenes.append(item["scene"])
            except (KeyError, TypeError) as exc:
                raise DataError(f"{path}: item {i} is malformed ({exc!r})") from exc
            texts.extend(captions)
            text_to_item.extend([i] * len(captions))
        cfg = self.manifest["config"]
        if self.modality == "image":
            what = f"{cfg['image_size']}x{cfg['image_size']} PNG images of 1-3 groups of shapes"
        else:
            what = (
                f"{cfg['video_size']}x{cfg['video_size']} H.264 videos, {cfg['frames']} frames at "
                f"{cfg['fps']} fps, one moving shape and 0-2 static ones"
            )
        note = (
            f"synthetic {split} split generated by vilem ({GENERATOR} v{self.manifest['version']}, "
            f"seed {self.manifest['seed']}): {len(ids)} {what}, {cfg['captions_per_item']} "
            f"captions each, from {self.root / folder}"
        )
        notes, protocol = [note], None  # None: inferred by Split (multi, 5 captions each)
        if self.protocol != "multi" or self.captions_per_video is not None:
            texts, text_to_item, protocol, used = regroup_captions(
                self.name, texts, text_to_item, len(ids), self.protocol, self.captions_per_video
            )
            # the scene records keep the captions in use, so probes edit the very texts queried
            scenes = [{**scene, "captions": scene["captions"][:used]} for scene in scenes]
            notes.append(f"protocol {protocol!r} over the first {used} caption(s) of each video")
        return Split(
            dataset=self.name,
            split=split,
            root=self.root,
            modality=self.modality,
            items=ids,
            item_paths=paths,
            texts=texts,
            text_to_item=np.asarray(text_to_item, dtype=np.int64),
            revision=self.manifest["content_hash"],
            scenes=scenes,
            notes=notes,
            protocol=protocol,
        )


@register_dataset("synthetic")
class SyntheticImages(_SyntheticAdapter):
    modality: ClassVar[Modality] = "image"
    description: ClassVar[str] = (
        "generated shapes images (the embedded default); options: seed, config"
    )


@register_dataset("synthetic-video")
class SyntheticVideos(_SyntheticAdapter):
    """Videos with ``captions_per_item`` (5) captions each; ``protocol`` multi (default, every
    caption a query), sentence (the first) or paragraph (joined); ``captions_per_video``: use
    the first N generated captions (default all)."""

    modality: ClassVar[Modality] = "video"
    extra_options: ClassVar[tuple[str, ...]] = ("protocol", "captions_per_video")
    description: ClassVar[str] = (
        "generated moving-shape videos (the embedded default); options: seed, config, "
        "protocol=multi|sentence|paragraph, captions_per_video"
    )


# ----------------------------------------------------------------------------- probes


# categories whose edit flips one word to its opposite: the form field holding that word
_KEY_WORD = {"relation": "relation", "direction": "direction"}


def synthetic_probes(split: Split, categories: Sequence[str] | None = None) -> list[Probe]:
    """Exact single-word edits (a two-word swap for ``swap_att``) of each item's true captions,
    each false of its scene: at most one probe per item and category, chosen reproducibly.

    Categories: colour, shape, size, count, relation, swap_att (images); colour, shape, size,
    swap_att, direction (videos). An item without a valid edit of a category is skipped for it.
    """
    if split.scenes is None:
        raise DataError(
            f"split {split.dataset}/{split.split} has no scene records: "
            "synthetic probes need the synthetic datasets"
        )
    if split.protocol == "paragraph":
        raise DataError(
            f"split {split.dataset}/{split.split} uses the paragraph protocol: synthetic probes "
            "edit single captions, load it with protocol multi or sentence"
        )
    allowed = VIDEO_PROBES if split.modality == "video" else IMAGE_PROBES
    chosen = tuple(allowed if categories is None else categories)
    bad = [c for c in chosen if c not in allowed]
    if bad:
        raise ConfigError(
            f"unknown {split.modality} probe categories {', '.join(bad)}; "
            f"known: {', '.join(allowed)}"
        )
    probes: list[Probe] = []
    for i, text_ids in enumerate(split.item_to_texts):
        scene = split.scenes[i]
        try:
            forms = scene["captions"]
            if len(forms) != len(text_ids) or any(
                cap.render_caption(f) != split.texts[j]
                for f, j in zip(forms, text_ids, strict=True)
            ):
                raise ValueError("captions do not match the scene's caption records")
            for category in chosen:
                options = [
                    (j, edit)
                    for form, j in zip(forms, text_ids, strict=True)
                    for edit in cap.false_edits(form, scene, category)
                ]
                if not options:
                    continue
                j, edit = random.Random(f"{split.items[i]}|{category}").choice(options)
                form = forms[text_ids.index(j)]
                word = form.get(_KEY_WORD.get(category, ""))
                probes.append(
                    Probe(
                        i,
                        split.texts[j],
                        cap.render_caption(edit),
                        category,
                        word,
                        cap.binding(form, edit, scene, category),
                    )
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{split.dataset}/{split.split} item {split.items[i]}: "
                f"unusable scene record ({exc})"
            ) from exc
    return probes
