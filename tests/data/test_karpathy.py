"""COCO / Flickr30K adapters on tiny fixtures in Karpathy's and LAVIS's real formats."""

from __future__ import annotations

import pytest
from fixtures_real import (
    COCO_IMAGES,
    FLICKR_IMAGES,
    coco_karpathy,
    coco_lavis,
    flickr_karpathy,
    flickr_lavis,
    make_coco,
    make_flickr,
    write_json,
)

from vilem.data import DATASETS, load_split
from vilem.data.base import file_digest
from vilem.data.karpathy import Coco, Flickr30k
from vilem.errors import ConfigError, DataError

TEST_CAPTIONS = [c.strip() for *_, caps in COCO_IMAGES[4:] for c in caps]


def mapping(split):
    """What must agree between formats: items, media paths, texts and the text -> item map."""
    return split.items, split.item_paths, split.texts, split.text_to_item.tolist()


# -- COCO, Karpathy format -----------------------------------------------------------------


def test_registered_names_load_the_karpathy_adapters():
    assert DATASETS.get("coco") is Coco
    assert DATASETS.get("flickr30k") is Flickr30k


def test_coco_karpathy_test_split_mapping(tmp_path):
    make_coco(tmp_path)
    split = load_split("coco", "test", root=tmp_path)
    assert split.dataset == "coco" and split.split == "test" and split.modality == "image"
    assert split.items == ["COCO_val2014_000000391895", "COCO_val2014_000000522418"]
    assert split.item_paths == [
        (tmp_path / "val2014" / "COCO_val2014_000000391895.jpg").resolve(),
        (tmp_path / "val2014" / "COCO_val2014_000000522418.jpg").resolve(),
    ]
    assert split.texts == TEST_CAPTIONS
    # raw captions are stripped: the first one ends with a space in the file
    assert split.texts[0] == "A man with a red helmet on a small moped on a dirt road."
    assert split.text_to_item.tolist() == [0] * 5 + [1] * 6
    assert split.counts() == {"items": 2, "texts": 11, "skipped_items": 0}
    assert split.revision == file_digest(tmp_path / "dataset_coco.json")
    assert any("dataset_coco.json" in n and "2 images / 11 captions" in n for n in split.notes)


@pytest.mark.parametrize(
    ("split_name", "items", "texts"),
    [("train", 2, 3), ("restval", 1, 1), ("val", 1, 2), ("test", 2, 11)],
)
def test_coco_karpathy_counts_per_split(tmp_path, split_name, items, texts):
    make_coco(tmp_path, images=False)
    split = load_split("coco", split_name, root=tmp_path)
    assert (len(split.items), len(split.texts)) == (items, texts)


def test_coco_restval_is_its_own_split_and_train_says_so(tmp_path):
    make_coco(tmp_path, images=False)
    restval = load_split("coco", "restval", root=tmp_path)
    assert restval.items == ["COCO_val2014_000000000042"]
    assert restval.item_paths == [(tmp_path / "val2014/COCO_val2014_000000000042.jpg").resolve()]
    train = load_split("coco", "train", root=tmp_path)
    assert train.items == ["COCO_train2014_000000000009", "COCO_train2014_000000000025"]
    assert train.text_to_item.tolist() == [0, 0, 1]
    assert any("restval" in n for n in train.notes)


def test_annotations_subfolder_is_found(tmp_path):
    make_coco(tmp_path, images=False, subdir="annotations")
    split = load_split("coco", "val", root=tmp_path)
    assert split.texts == ["A red motorbike.", "A bike."]
    assert split.revision == file_digest(tmp_path / "annotations" / "dataset_coco.json")


# -- COCO, LAVIS format --------------------------------------------------------------------


@pytest.mark.parametrize("split_name", ["val", "test"])
def test_lavis_and_karpathy_give_the_same_mapping(tmp_path, split_name):
    karpathy = load_split("coco", split_name, root=make_coco(tmp_path / "k"))
    lavis = load_split("coco", split_name, root=make_coco(tmp_path / "l", fmt="lavis"))
    # paths differ only by the root they live in
    assert karpathy.items == lavis.items
    assert karpathy.texts == lavis.texts
    assert karpathy.text_to_item.tolist() == lavis.text_to_item.tolist()
    assert [p.relative_to((tmp_path / "k").resolve()) for p in karpathy.item_paths] == [
        p.relative_to((tmp_path / "l").resolve()) for p in lavis.item_paths
    ]
    assert lavis.revision == file_digest(tmp_path / "l" / f"coco_karpathy_{split_name}.json")
    assert any(f"coco_karpathy_{split_name}.json" in n for n in lavis.notes)


def test_lavis_train_groups_one_caption_entries_and_equals_train_plus_restval(tmp_path):
    lavis = load_split("coco", "train", root=make_coco(tmp_path / "l", fmt="lavis", images=False))
    assert lavis.items == [
        "COCO_train2014_000000000009",
        "COCO_train2014_000000000025",
        "COCO_val2014_000000000042",
    ]
    assert lavis.text_to_item.tolist() == [0, 0, 1, 2]
    root_k = make_coco(tmp_path / "k", images=False)
    pairs = set()
    for name in ("train", "restval"):
        s = load_split("coco", name, root=root_k)
        pairs |= {(s.items[i], t) for t, i in zip(s.texts, s.text_to_item.tolist(), strict=True)}
    assert pairs == {
        (lavis.items[i], t) for t, i in zip(lavis.texts, lavis.text_to_item.tolist(), strict=True)
    }
    assert any("train + restval" in n for n in lavis.notes)


def test_lavis_has_no_restval_and_says_which_file_is_needed(tmp_path):
    make_coco(tmp_path, fmt="lavis", images=False)
    with pytest.raises(DataError, match="dataset_coco.json.*restval"):
        load_split("coco", "restval", root=tmp_path)


def test_annotation_option_names_the_file(tmp_path):
    write_json(tmp_path / "my_test_split.json", coco_lavis("test"))
    split = load_split("coco", "test", root=tmp_path, annotation="my_test_split.json")
    assert split.texts == TEST_CAPTIONS
    assert split.revision == file_digest(tmp_path / "my_test_split.json")
    # an absolute path to a Karpathy file works too, whatever its name
    other = write_json(tmp_path / "elsewhere" / "coco.json", coco_karpathy())
    split = load_split("coco", "restval", root=tmp_path, annotation=str(other))
    assert split.items == ["COCO_val2014_000000000042"]


def test_unknown_option_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'annotation'"):
        load_split("coco", "test", root=tmp_path, anotation="x.json")


# -- Flickr30K -----------------------------------------------------------------------------


def test_flickr_karpathy_test_split(tmp_path):
    make_flickr(tmp_path)
    split = load_split("flickr30k", "test", root=tmp_path)
    assert split.items == ["1007129816", "1009434119"]
    assert split.item_paths == [
        (tmp_path / "flickr30k-images" / "1007129816.jpg").resolve(),
        (tmp_path / "flickr30k-images" / "1009434119.jpg").resolve(),
    ]
    assert split.texts == [c for fn, sp, caps in FLICKR_IMAGES if sp == "test" for c in caps]
    assert split.text_to_item.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("fmt", ["karpathy", "lavis"])
def test_flickr_images_folder_named_images_is_accepted(tmp_path, fmt):
    make_flickr(tmp_path, fmt=fmt, image_dir="images")
    split = load_split("flickr30k", "val", root=tmp_path)
    assert split.item_paths == [(tmp_path / "images" / "10002456.jpg").resolve()]
    assert all(p.is_file() for p in split.item_paths)
    assert any("/images/" in n for n in split.notes)


@pytest.mark.parametrize("split_name", ["train", "val", "test"])
def test_flickr_lavis_and_karpathy_give_the_same_mapping(tmp_path, split_name):
    karpathy = load_split("flickr30k", split_name, root=make_flickr(tmp_path / "k"))
    lavis = load_split("flickr30k", split_name, root=make_flickr(tmp_path / "l", fmt="lavis"))
    assert karpathy.items == lavis.items
    assert karpathy.texts == lavis.texts
    assert karpathy.text_to_item.tolist() == lavis.text_to_item.tolist()
    assert [p.name for p in karpathy.item_paths] == [p.name for p in lavis.item_paths]


def test_flickr_has_no_restval(tmp_path):
    make_flickr(tmp_path)
    with pytest.raises(DataError, match="no split 'restval'.*splits: train, val, test"):
        load_split("flickr30k", "restval", root=tmp_path)


# -- bad input -----------------------------------------------------------------------------


def test_karpathy_path_escaping_the_root_is_rejected(tmp_path):
    data = coco_karpathy()
    data["images"][4]["filepath"] = "../../etc"
    write_json(tmp_path / "dataset_coco.json", data)
    with pytest.raises(DataError, match=r"images\[4\].*outside the dataset root"):
        load_split("coco", "test", root=tmp_path)


def test_lavis_path_escaping_the_root_is_rejected(tmp_path):
    entries = coco_lavis("test")
    entries[1]["image"] = "../../etc/x.jpg"
    write_json(tmp_path / "coco_karpathy_test.json", entries)
    with pytest.raises(
        DataError, match=r"coco_karpathy_test\.json.*'\.\./\.\./etc/x\.jpg'.*outside"
    ):
        load_split("coco", "test", root=tmp_path)


@pytest.mark.parametrize("caption", ["", "   \n\t"])
def test_empty_caption_names_the_file_and_image(tmp_path, caption):
    data = coco_karpathy()
    data["images"][5]["sentences"][2]["raw"] = caption
    write_json(tmp_path / "dataset_coco.json", data)
    with pytest.raises(
        DataError,
        match=r"dataset_coco\.json: images\[5\] \(COCO_val2014_000000522418\.jpg\) "
        r"sentences\[2\]: empty caption",
    ):
        load_split("coco", "test", root=tmp_path)


def test_lavis_empty_caption_names_the_file_and_image(tmp_path):
    entries = coco_lavis("test")
    entries[0]["caption"][4] = " "
    write_json(tmp_path / "coco_karpathy_test.json", entries)
    with pytest.raises(
        DataError, match=r"coco_karpathy_test\.json: entry 0 \(val2014/COCO_val2014_000000391895"
    ):
        load_split("coco", "test", root=tmp_path)


def test_malformed_json_is_a_data_error_naming_the_file(tmp_path):
    (tmp_path / "dataset_coco.json").write_text('{"images": [{"split": "test",', encoding="utf-8")
    with pytest.raises(DataError, match=r"dataset_coco\.json is not valid JSON"):
        load_split("coco", "test", root=tmp_path)


def test_missing_key_names_the_entry_and_the_key(tmp_path):
    data = coco_karpathy()
    del data["images"][4]["filename"]
    write_json(tmp_path / "dataset_coco.json", data)
    with pytest.raises(DataError, match=r"dataset_coco\.json: images\[4\]: missing key 'filename'"):
        load_split("coco", "test", root=tmp_path)


def test_missing_raw_in_a_sentence_names_it(tmp_path):
    data = flickr_karpathy()
    del data["images"][3]["sentences"][1]["raw"]
    write_json(tmp_path / "dataset_flickr30k.json", data)
    with pytest.raises(DataError, match=r"images\[3\] \(1009434119\.jpg\) sentences\[1\]: .*'raw'"):
        load_split("flickr30k", "test", root=tmp_path)


def test_wrong_type_says_what_was_expected(tmp_path):
    data = coco_karpathy()
    data["images"][5]["sentences"] = "A woman cutting a cake."
    write_json(tmp_path / "dataset_coco.json", data)
    with pytest.raises(DataError, match=r"images\[5\].*'sentences' should be list, got str"):
        load_split("coco", "test", root=tmp_path)


def test_wrong_top_level_is_a_data_error(tmp_path):
    write_json(tmp_path / "dataset_coco.json", {"annotations": []})
    with pytest.raises(DataError, match=r"dataset_coco\.json: expected an object with an 'images'"):
        load_split("coco", "test", root=tmp_path)
    write_json(tmp_path / "coco.json", {"annotations": []})
    with pytest.raises(DataError, match="Karpathy's format .* or LAVIS's"):
        load_split("coco", "test", root=tmp_path, annotation="coco.json")


def test_unknown_split_value_in_the_file_is_rejected(tmp_path):
    data = coco_karpathy()
    data["images"][0]["split"] = "training"
    write_json(tmp_path / "dataset_coco.json", data)
    with pytest.raises(DataError, match=r"images\[0\]: 'split' is 'training'"):
        load_split("coco", "test", root=tmp_path)


def test_duplicate_image_in_a_karpathy_split_is_rejected(tmp_path):
    data = coco_karpathy()
    data["images"][5]["filename"] = data["images"][4]["filename"]
    write_json(tmp_path / "dataset_coco.json", data)
    with pytest.raises(DataError, match=r"images\[5\].*repeats images\[4\]"):
        load_split("coco", "test", root=tmp_path)


def test_unknown_split_suggests_the_closest(tmp_path):
    make_coco(tmp_path, images=False)
    with pytest.raises(DataError, match="no split 'tset' \\(did you mean 'test'\\?\\)"):
        load_split("coco", "tset", root=tmp_path)


def test_missing_root_points_to_the_readme(tmp_path):
    with pytest.raises(DataError, match=r"not found: .*nowhere.*datasets/coco/README\.md"):
        load_split("coco", "test", root=tmp_path / "nowhere")


def test_root_without_annotations_lists_what_was_looked_for(tmp_path):
    with pytest.raises(DataError, match="dataset_flickr30k.json or flickr30k_test.json"):
        load_split("flickr30k", "test", root=tmp_path)


def test_loading_never_opens_images(tmp_path):
    # images absent: the split still loads, paths point where the images should be
    make_coco(tmp_path, images=False)
    split = load_split("coco", "test", root=tmp_path)
    assert not any(p.exists() for p in split.item_paths)
    assert split.item_paths[0].name == "COCO_val2014_000000391895.jpg"


@pytest.mark.parametrize("dataset", ["coco", "flickr30k"])
def test_a_repeated_image_in_a_lavis_test_file_is_refused(tmp_path, dataset):
    if dataset == "coco":
        entries, name = coco_lavis("test"), "coco_karpathy_test.json"
    else:
        entries, name = flickr_lavis("test"), "flickr30k_test.json"
    entries.append({"image": entries[0]["image"], "caption": ["the same image again"]})
    write_json(tmp_path / name, entries)
    with pytest.raises(DataError) as exc:
        load_split(dataset, "test", root=tmp_path)
    message = str(exc.value)
    assert name in message and f"entry 2 ({entries[0]['image']})" in message
    assert f"image {entries[0]['image']!r} repeats entry 0" in message and "\n" not in message


def test_a_symlinked_image_leaving_the_root_is_refused_unless_allowed(tmp_path):
    root = make_coco(tmp_path / "coco", fmt="karpathy")
    outside = tmp_path / "elsewhere"
    (root / "val2014").rename(outside)
    (root / "val2014").symlink_to(outside)
    with pytest.raises(DataError, match=r"images\[4\].*leads outside the dataset root"):
        load_split("coco", "test", root=root)
    split = load_split("coco", "test", root=root, allow_symlinks=True)
    assert split.item_paths[0] == root.absolute() / "val2014" / COCO_IMAGES[4][1]
    # one file inside a real folder that links out is caught too
    (root / "val2014").unlink()
    outside.rename(root / "val2014")
    leak = root / "val2014" / COCO_IMAGES[5][1]
    leak.unlink()
    leak.symlink_to(tmp_path / "secret.jpg")
    with pytest.raises(DataError, match=r"COCO_val2014_000000522418\.jpg.*through a symlink"):
        load_split("coco", "test", root=root)
    with pytest.raises(ConfigError, match="allow_symlinks must be true or false"):
        load_split("coco", "test", root=root, allow_symlinks="yes please")


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = write_json(tmp_path / "dataset_coco.json", coco_karpathy())
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_split("coco", "test", root=tmp_path).texts == TEST_CAPTIONS
