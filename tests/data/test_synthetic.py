"""The embedded synthetic dataset: determinism, reuse, truthful captions, exact probes, videos.

Caption truth and probe falsity are checked with a small parser written here from the caption
texts, independent of the generator's own logical forms.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import decord
import numpy as np
import pytest
from PIL import Image

from vilem.data import load_split
from vilem.data import scene_captions as cap
from vilem.data import synthetic as syn
from vilem.data.scene_words import COLOURS
from vilem.data.synthetic import SyntheticConfig, generate, synthetic_probes
from vilem.errors import ConfigError, DataError

SMALL = SyntheticConfig(
    images_train=20, images_val=20, images_test=60, videos_train=4, videos_val=4, videos_test=20
)
TINY = SyntheticConfig(
    images_train=6, images_val=3, images_test=3, videos_train=2, videos_val=1, videos_test=1
)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SMALL, seed=0)
    return root


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ----------------------------------------------------------------------------- a caption parser

NP_RE = re.compile(
    r"\b(a|two|three) (?:(small|large) )?(?:(red|green|blue|yellow|purple|pink|black) )?"
    r"(circle|square|triangle|star|cross)(?:es|s)?\b"
)
REL_RE = re.compile(r"\b(to the left of|to the right of|above|below)\b")
COUNTS = {"a": 1, "two": 2, "three": 3}


def _parse_nps(text: str) -> list[tuple[int, int, str | None, str | None, str]]:
    """(start offset, count, size, colour, shape) of each noun phrase."""
    return [
        (m.start(), COUNTS[m.group(1)], m.group(2), m.group(3), m.group(4))
        for m in NP_RE.finditer(text)
    ]


def _instances(scene: dict, size, colour, shape, moving=None) -> list[tuple[float, float, float]]:
    out = []
    for g in scene["objects"]:
        if g["shape"] != shape or (colour and g["colour"] != colour):
            continue
        if (size and g["size"] != size) or (moving is not None and bool(g["motion"]) != moving):
            continue
        out.extend((x, y, g["radius"]) for x, y in g["positions"])
    return out


def _beside(rel: str, a, b, strict: bool) -> bool:
    """a is `rel` b: strictly with the shapes' extents apart, leniently by centres (1px slack)."""
    axis = 0 if "left" in rel or "right" in rel else 1
    ahead = (b[axis] - a[axis]) * (1 if rel in ("to the left of", "above") else -1)
    return ahead > a[2] + b[2] if strict else ahead > -1


def image_caption_holds(text: str, scene: dict, strict: bool) -> bool:
    nps = _parse_nps(text)
    assert nps, f"no noun phrase in {text!r}"
    bg = re.search(r"on a (plain|striped) background$", text)
    if bg and bg.group(1) != scene["background"]["texture"]:
        return False
    found = [_instances(scene, size, colour, shape) for _, _, size, colour, shape in nps]
    for (_, count, *_), inst in zip(nps, found, strict=True):
        if len(inst) != count if (strict or count > 1) else not inst:
            return False
    rel = REL_RE.search(text)
    if rel is None:
        return True
    assert len(nps) == 2 and nps[0][0] < rel.start() < nps[1][0], text
    pairs = [(a, b) for a in found[0] for b in found[1] if a != b]
    return any(_beside(rel.group(1), a, b, strict) for a, b in pairs)


def video_caption_holds(text: str, scene: dict) -> bool:
    nps = _parse_nps(text)
    mover_text, _, static_text = text.partition(" while ")
    (_, _, size, colour, shape), *rest = nps
    direction = re.search(r"\b(left|right|up|down)(?:wards)?\b", mover_text).group(1)
    speed = re.search(r"\b(slowly|quickly)\b", mover_text)
    movers = [
        g
        for g in scene["objects"]
        if g["motion"]
        and _instances({"objects": [g]}, size, colour, shape)
        and g["motion"]["direction"] == direction
        and (speed is None or g["motion"]["speed"] == {"slowly": "slow"}.get(speed[1], "fast"))
    ]
    if static_text:
        assert len(rest) == 1 and static_text.endswith("stays still"), text
        _, _, s_size, s_colour, s_shape = rest[0]
        if not _instances(scene, s_size, s_colour, s_shape, moving=False):
            return False
    return bool(movers)


# ----------------------------------------------------------------------------- generation


def test_same_seed_gives_identical_annotations_and_pixels(tmp_path, small_root):
    generate(tmp_path, SMALL, seed=0)
    for ann in sorted((small_root / "annotations").iterdir()):
        assert (tmp_path / "annotations" / ann.name).read_bytes() == ann.read_bytes()
    assert (tmp_path / "manifest.json").read_bytes() == (small_root / "manifest.json").read_bytes()
    for png in sorted((small_root / "images" / "test").iterdir()):
        assert np.array_equal(_pixels(tmp_path / "images" / "test" / png.name), _pixels(png))
    mp4 = "videos/test/vid_test_00003.mp4"
    a = decord.VideoReader(str(small_root / mp4)).get_batch(list(range(16))).asnumpy()
    b = decord.VideoReader(str(tmp_path / mp4)).get_batch(list(range(16))).asnumpy()
    assert np.array_equal(a, b)


def test_different_seed_gives_different_data(tmp_path, small_root):
    manifest = generate(tmp_path, SMALL, seed=1)
    assert manifest["seed"] == 1
    assert (
        manifest["content_hash"]
        != json.loads((small_root / "manifest.json").read_text())["content_hash"]
    )
    png = "images/test/img_test_00000.png"
    assert not np.array_equal(_pixels(tmp_path / png), _pixels(small_root / png))


def test_pool_output_does_not_depend_on_workers(tmp_path):
    # 300 items is the threshold where generate() switches to a process pool
    config = SyntheticConfig(
        images_train=300, images_val=0, images_test=0, videos_train=0, videos_val=0, videos_test=0
    )
    serial = generate(tmp_path / "serial", config, seed=5, workers=1)
    pooled = generate(tmp_path / "pool", config, seed=5, workers=2)
    assert serial == pooled
    name = "annotations/images_train.json"
    assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes()
    png = "images/train/img_train_00299.png"
    assert np.array_equal(_pixels(tmp_path / "serial" / png), _pixels(tmp_path / "pool" / png))


def test_second_generate_rewrites_nothing(tmp_path):
    first = generate(tmp_path, TINY, seed=3)
    before = _files(tmp_path)
    assert len(before) == 1 + 6 + 12 + 4  # manifest, annotation files, images, videos
    assert generate(tmp_path, TINY, seed=3) == first
    assert _files(tmp_path) == before


def test_layout_and_manifest(tmp_path):
    old_umask = os.umask(0o022)
    try:
        manifest = generate(tmp_path, TINY, seed=3)
    finally:
        os.umask(old_umask)
    for name in ("images/test/img_test_00000.png", "videos/val/vid_val_00000.mp4"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644  # the umask, not 0600
    assert manifest["generator"] == "vilem.synthetic"
    assert manifest["version"] == syn.GENERATOR_VERSION
    assert manifest["seed"] == 3 and manifest["config"] == TINY.to_dict()
    assert manifest["counts"]["images_train"] == 6 and manifest["counts"]["videos_test"] == 1
    assert sorted(manifest["files"]) == sorted(
        f"annotations/{kind}_{split}.json"
        for kind in ("images", "videos")
        for split in ("train", "val", "test")
    )
    assert re.fullmatch(r"[0-9a-f]{16}", manifest["content_hash"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in manifest["files"].values())
    assert (tmp_path / "images/val/img_val_00002.png").is_file()
    assert (tmp_path / "videos/train/vid_train_00001.mp4").is_file()
    with Image.open(tmp_path / "images/train/img_train_00000.png") as im:
        assert (im.format, im.size, im.mode) == ("PNG", (64, 64), "RGB")


def test_config_change_regenerates_and_drops_stale_media(tmp_path):
    generate(tmp_path, TINY, seed=3)
    smaller = SyntheticConfig(**{**TINY.to_dict(), "images_train": 4})
    manifest = generate(tmp_path, smaller, seed=3)
    assert manifest["config"]["images_train"] == 4
    doc = json.loads((tmp_path / "annotations/images_train.json").read_text())
    assert [item["id"] for item in doc["items"]] == [f"img_train_{i:05d}" for i in range(4)]
    assert sorted(p.name for p in (tmp_path / "images/train").iterdir()) == [
        f"img_train_{i:05d}.png" for i in range(4)
    ]


def test_deleted_media_is_regenerated_identically(tmp_path):
    first = generate(tmp_path, TINY, seed=3)
    png = tmp_path / "images/test/img_test_00001.png"
    original = png.read_bytes()
    png.unlink()
    assert generate(tmp_path, TINY, seed=3) == first
    assert png.read_bytes() == original


def test_edited_annotations_or_missing_manifest_trigger_regeneration(tmp_path):
    first = generate(tmp_path, TINY, seed=3)
    ann = tmp_path / "annotations/images_val.json"
    original = ann.read_bytes()
    ann.write_text(original.decode().replace("circle", "square"))
    assert generate(tmp_path, TINY, seed=3) == first
    assert ann.read_bytes() == original
    # an interrupted run leaves no manifest: everything is written again
    (tmp_path / "manifest.json").unlink()
    before = _files(tmp_path)
    assert generate(tmp_path, TINY, seed=3) == first
    after = _files(tmp_path)
    assert all(after[name] != mtime for name, mtime in before.items())


def test_force_regenerates(tmp_path):
    generate(tmp_path, TINY, seed=3)
    manifest_mtime = (tmp_path / "manifest.json").stat().st_mtime_ns
    generate(tmp_path, TINY, seed=3, force=True)
    assert (tmp_path / "manifest.json").stat().st_mtime_ns != manifest_mtime


def test_bad_config_and_seed_are_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="video_size must be even"):
        SyntheticConfig(video_size=63)
    with pytest.raises(ConfigError, match="images_test must not be negative"):
        SyntheticConfig(images_test=-1)
    with pytest.raises(ConfigError, match="unknown synthetic config key"):
        SyntheticConfig.from_dict({"image_sise": 64})
    with pytest.raises(ConfigError, match="seed"):
        generate(tmp_path, TINY, seed=-2)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        generate(tmp_path / "file", TINY)


# ----------------------------------------------------------------------------- captions


def test_image_captions_are_true_of_their_scene(small_root):
    split = load_split("synthetic", "test", root=small_root)
    assert split.scenes is not None
    relations = 0
    for i, texts in enumerate(split.item_to_texts):
        assert len({split.texts[j] for j in texts}) == 5
        for j in texts:
            assert image_caption_holds(split.texts[j], split.scenes[i], strict=True), split.texts[j]
            relations += bool(REL_RE.search(split.texts[j]))
    assert relations > 0


def test_video_captions_are_true_of_their_scene(small_root):
    split = load_split("synthetic-video", "test", root=small_root)
    for i, texts in enumerate(split.item_to_texts):
        for j in texts:
            assert video_caption_holds(split.texts[j], split.scenes[i]), split.texts[j]


def test_images_show_each_shape_in_its_colour_at_its_centre(small_root):
    split = load_split("synthetic", "test", root=small_root)
    for path, scene in zip(split.item_paths, split.scenes, strict=True):
        pixels = _pixels(path).astype(int)
        for g in scene["objects"]:
            for x, y in g["positions"]:
                assert np.abs(pixels[int(y), int(x)] - COLOURS[g["colour"]]).max() <= 3


def test_text_to_item_has_five_captions_per_item(small_root):
    split = load_split("synthetic", "val", root=small_root)
    assert split.items == [f"img_val_{i:05d}" for i in range(20)]
    assert split.text_to_item.tolist() == [i for i in range(20) for _ in range(5)]
    doc = json.loads((small_root / "annotations/images_val.json").read_text())
    assert split.texts == [c for item in doc["items"] for c in item["captions"]]
    assert split.item_paths[7].resolve() == (small_root / "images/val/img_val_00007.png").resolve()
    manifest = json.loads((small_root / "manifest.json").read_text())
    assert split.revision == manifest["content_hash"]
    assert "seed 0" in split.notes[0] and "20" in split.notes[0]


# ----------------------------------------------------------------------------- probes


def _word_edit(positive: str, negative: str) -> list[int]:
    a, b = positive.split(), negative.split()
    assert len(a) == len(b), (positive, negative)
    return [k for k in range(len(a)) if a[k] != b[k]]


def test_image_probes_are_single_word_edits_that_are_false(small_root):
    split = load_split("synthetic", "test", root=small_root)
    probes = synthetic_probes(split)
    assert probes == synthetic_probes(split)  # deterministic
    by_category: dict[str, int] = {}
    for p in probes:
        by_category[p.category] = by_category.get(p.category, 0) + 1
        assert p.positive in [split.texts[j] for j in split.item_to_texts[p.item]]
        diff = _word_edit(p.positive, p.negative)
        a, b = p.positive.split(), p.negative.split()
        if p.category == "swap_att":
            assert len(diff) == 2 and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])
        else:
            assert len(diff) == 1
        changed = {b[k].rstrip(",") for k in diff}
        vocab = {
            "colour": set(COLOURS),
            "count": {"two", "three"},
            "relation": {"left", "right", "above", "below"},
            "size": {"small", "large"},
        }
        if p.category in vocab:
            assert changed <= vocab[p.category], p
        scene = split.scenes[p.item]
        assert not image_caption_holds(p.negative, scene, strict=False), p
    assert set(by_category) == {"colour", "shape", "size", "count", "relation", "swap_att"}
    assert by_category["colour"] == len(split.items)  # every item has a colour word to edit


def test_attribute_probes_say_whether_the_new_value_is_on_another_object(small_root):
    split = load_split("synthetic", "test", root=small_root)
    seen = set()
    for p in synthetic_probes(split):
        if p.category not in ("colour", "shape", "size"):
            assert p.binding is None, p
            continue
        (k,) = _word_edit(p.positive, p.negative)
        new = p.negative.split()[k].rstrip(",")
        new = {"stars": "star", "circles": "circle", "squares": "square",
               "triangles": "triangle", "crosses": "cross"}.get(new, new)  # fmt: skip
        present = {obj[p.category] for obj in split.scenes[p.item]["objects"]}
        assert p.binding == (new in present), p
        seen.add((p.category, p.binding))
    assert ("colour", True) in seen and ("colour", False) in seen  # both kinds occur


def test_binding_of_a_hand_made_edit():
    scene = {"objects": [{"colour": "red", "shape": "star", "size": "large"},
                         {"colour": "blue", "shape": "circle", "size": "small"}]}  # fmt: skip
    form = {"nps": [{"count": 1, "size": None, "colour": "red", "shape": "star"}]}
    to_blue = {"nps": [{"count": 1, "size": None, "colour": "blue", "shape": "star"}]}
    to_green = {"nps": [{"count": 1, "size": None, "colour": "green", "shape": "star"}]}
    assert cap.binding(form, to_blue, scene, "colour") is True
    assert cap.binding(form, to_green, scene, "colour") is False
    assert cap.binding(form, to_blue, scene, "relation") is None


def test_relation_probe_flips_to_the_opposite(small_root):
    split = load_split("synthetic", "test", root=small_root)
    opposite = {"left": "right", "right": "left", "above": "below", "below": "above"}
    relation_probes = [p for p in synthetic_probes(split, ["relation"])]
    assert relation_probes
    for p in relation_probes:
        (k,) = _word_edit(p.positive, p.negative)
        assert p.negative.split()[k] == opposite[p.positive.split()[k]]


def test_video_probes_include_direction_and_are_false(small_root):
    split = load_split("synthetic-video", "test", root=small_root)
    probes = synthetic_probes(split)
    assert {p.category for p in probes} >= {"colour", "shape", "size", "direction"}
    assert not {p.category for p in probes} & {"count", "relation"}
    for p in probes:
        diff = _word_edit(p.positive, p.negative)
        assert len(diff) == (2 if p.category == "swap_att" else 1)
        assert not video_caption_holds(p.negative, split.scenes[p.item]), p
    direction = [p for p in probes if p.category == "direction"]
    assert len(direction) == len(split.items)


def test_probes_reject_unknown_categories_and_tampered_captions(small_root):
    split = load_split("synthetic", "val", root=small_root)
    with pytest.raises(ConfigError, match="direction"):
        synthetic_probes(split, ["direction"])
    split.texts[0] = "a made up caption"
    with pytest.raises(DataError, match="img_val_00000"):
        synthetic_probes(split)


# ----------------------------------------------------------------------------- videos


def test_videos_decode_with_decord_and_the_mover_moves_as_stated(small_root):
    split = load_split("synthetic-video", "test", root=small_root)
    axes = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}
    for path, scene in zip(split.item_paths, split.scenes, strict=True):
        reader = decord.VideoReader(str(path))
        assert len(reader) == 16 and reader.get_avg_fps() == pytest.approx(8.0)
        frames = reader.get_batch(list(range(16))).asnumpy().astype(int)
        assert frames.shape == (16, 64, 64, 3)
        mover = scene["objects"][0]
        near = np.abs(frames - COLOURS[mover["colour"]]).sum(-1) < 90
        # static shapes of the mover's colour sit off its path by construction: mask them out
        yy, xx = np.mgrid[0:64, 0:64]
        for g in scene["objects"][1:]:
            (x, y), r = g["positions"][0], g["radius"]
            near[:, (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 < (r + 2) ** 2] = False
        ys, xs = np.nonzero(near[0])
        ye, xe = np.nonzero(near[-1])
        shift = np.array([xe.mean() - xs.mean(), ye.mean() - ys.mean()])
        axis, sign = axes[mover["motion"]["direction"]]
        travel = {"slow": 16.0, "fast": 32.0}[mover["motion"]["speed"]]  # 0.25 / 0.5 of 64 px
        assert sign * shift[axis] == pytest.approx(travel, abs=1.5)
        assert abs(shift[1 - axis]) < 1.0


# ----------------------------------------------------------------------------- adapters


@pytest.fixture
def tiny_defaults(monkeypatch):
    monkeypatch.setattr(syn, "DEFAULT_CONFIG", TINY)


def test_load_split_generates_a_fresh_root(tmp_path, tiny_defaults):
    root = tmp_path / "fresh" / "synthetic"
    split = load_split("synthetic", "test", root=root)
    assert (root / "manifest.json").is_file()
    assert split.dataset == "synthetic" and split.modality == "image"
    assert len(split.items) == 3 and len(split.texts) == 15
    assert all(p.is_file() for p in split.item_paths)
    before = _files(root)
    videos = load_split("synthetic-video", "train", root=root)  # same root, reused
    assert videos.modality == "video" and videos.items == ["vid_train_00000", "vid_train_00001"]
    assert videos.revision == split.revision
    assert _files(root) == before


def test_load_split_uses_the_seed_option_and_refuses_a_mismatch(tmp_path, tiny_defaults):
    split = load_split("synthetic", "val", root=tmp_path, seed=4)
    assert json.loads((tmp_path / "manifest.json").read_text())["seed"] == 4
    assert "seed 4" in split.notes[0]
    with pytest.raises(DataError, match="seed 4, not 5"):
        load_split("synthetic", "val", root=tmp_path, seed=5)
    with pytest.raises(ConfigError, match="no option"):
        load_split("synthetic", "val", root=tmp_path, colour="red")


def test_unknown_split_is_rejected_without_generating(tmp_path, tiny_defaults):
    with pytest.raises(DataError, match="no split 'tset'.*did you mean 'test'"):
        load_split("synthetic", "tset", root=tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_load_split_restores_a_deleted_media_file(tmp_path, tiny_defaults):
    load_split("synthetic", "train", root=tmp_path)
    png = tmp_path / "images/train/img_train_00002.png"
    png.unlink()
    split = load_split("synthetic", "train", root=tmp_path)
    assert split.item_paths[2].resolve() == png.resolve() and png.is_file()


def test_a_foreign_manifest_is_never_overwritten(tmp_path):
    (tmp_path / "manifest.json").write_text('{"name": "someone else"}')
    with pytest.raises(DataError, match="not written by vilem's synthetic generator"):
        generate(tmp_path, TINY)
    with pytest.raises(DataError, match="not a vilem synthetic manifest"):
        load_split("synthetic", "test", root=tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"name": "someone else"}
    assert not (tmp_path / "images").exists()


def test_config_option_generates_those_sizes_and_regenerates_on_change(tmp_path):
    from vilem.data import load_split

    small = {"images_train": 3, "images_val": 2, "images_test": 4, "videos_train": 0,
             "videos_val": 0, "videos_test": 0}  # fmt: skip
    split = load_split("synthetic", "test", root=tmp_path, config=small)
    assert len(split.items) == 4
    split = load_split("synthetic", "test", root=tmp_path, config={**small, "images_test": 6})
    assert len(split.items) == 6
    assert len(load_split("synthetic", "test", root=tmp_path).items) == 6  # reused as it is
