"""MSVD adapter on tiny fixtures in the real files' formats, and the restricted unpickler that
reads raw-captions.pkl as plain data only."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from fixtures_video import MSVD_CLIPS, MSVD_LISTS, make_msvd

from vilem.data import DATASETS, load_split
from vilem.data.base import file_digest
from vilem.data.msvd import Msvd, load_plain_pickle
from vilem.errors import ConfigError, DataError


def pairs(split):
    return [
        (split.items[i], t) for t, i in zip(split.texts, split.text_to_item.tolist(), strict=True)
    ]


def test_registered_name_loads_the_adapter():
    assert DATASETS.get("msvd") is Msvd
    assert Msvd.splits == ("train", "val", "test")


def test_test_split_from_lists_is_multi_sentence_with_english_captions_only(tmp_path):
    make_msvd(tmp_path)
    split = load_split("msvd", "test", root=tmp_path)
    assert split.items == MSVD_LISTS["test"]
    assert pairs(split) == [
        ("-AwoiGR6c8M_10_14", "a cat is playing the piano"),
        ("-AwoiGR6c8M_10_14", "a cat plays a keyboard"),
        ("04Gt01vatkk_248_265", "a boy is riding a bicycle"),
        ("04Gt01vatkk_248_265", "a kid rides a bike"),
    ]
    assert split.protocol == "multi" and split.windows is None
    assert split.describe()["protocol"] == "multi"
    assert split.revision == file_digest(
        tmp_path / "test_list.txt", tmp_path / "MSR Video Description Corpus.csv"
    )
    notes = " | ".join(split.notes)
    assert "test_list.txt" in notes and "English captions" in notes
    assert "2 videos / 4 captions" in notes
    # the fixture is not the real 670-clip test: the notes say so
    assert "partial or non-standard set" in notes and "670" in notes
    assert "multi-sentence" in notes


def test_youtube_mapping_gives_the_standard_vid_ranges(tmp_path):
    make_msvd(tmp_path, split="mapping")
    assert load_split("msvd", "train", root=tmp_path).items == MSVD_LISTS["train"]
    assert load_split("msvd", "val", root=tmp_path).items == MSVD_LISTS["val"]
    test = load_split("msvd", "test", root=tmp_path)
    assert test.items == MSVD_LISTS["test"]  # vid1301 and vid1970
    assert any("vid1301-vid1970 of youtube_mapping.txt" in n for n in test.notes)


def test_sentence_protocol_keeps_the_first_caption_of_each_clip(tmp_path):
    make_msvd(tmp_path)
    split = load_split("msvd", "train", root=tmp_path, protocol="sentence")
    assert split.texts == ["a squirrel is eating a peanut", "a man is singing"]
    assert split.text_to_item.tolist() == [0, 1] and split.protocol == "sentence"


def test_raw_captions_pickle_is_read_as_plain_data(tmp_path):
    make_msvd(tmp_path, captions="pkl")
    split = load_split("msvd", "train", root=tmp_path)
    assert pairs(split)[:2] == [
        ("-4wsuPCjDBc_5_15", "a squirrel is eating a peanut"),
        ("-4wsuPCjDBc_5_15", "a chipmunk eats"),
    ]
    assert len(split.texts) == sum(len(MSVD_CLIPS[c][1]) for c in MSVD_LISTS["train"])
    assert any("raw-captions.pkl (read as plain data only)" in n for n in split.notes)


class _Payload:
    """Pickles to a call of Path.touch: unpickling it with the standard loader runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_that_runs_code_is_refused_with_one_line_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"-4wsuPCjDBc_5_15": [_Payload(marker)]})
    # the payload is live: the standard loader would create the marker file
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()
    make_msvd(tmp_path, captions="pkl")
    (tmp_path / "raw-captions.pkl").write_bytes(payload)
    with pytest.raises(
        DataError, match=r"raw-captions\.pkl: not a plain-data pickle, refused"
    ) as exc:
        load_split("msvd", "train", root=tmp_path)
    assert "\n" not in str(exc.value) and "refused to load pathlib" in str(exc.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj",
    [pickle.dumps({"a": [["x"]]}, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)],
)
def test_plain_data_loads_under_every_pickle_protocol(tmp_path, obj):
    path = tmp_path / "p.pkl"
    path.write_bytes(obj)
    assert load_plain_pickle(path) == {"a": [["x"]]}


def test_a_pickle_of_a_class_instance_or_garbage_is_refused(tmp_path):
    path = tmp_path / "raw-captions.pkl"
    path.write_bytes(pickle.dumps({"clip": [ValueError("x")]}))
    with pytest.raises(DataError, match="refused to load builtins.ValueError"):
        load_plain_pickle(path)
    path.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(DataError, match="not a plain-data pickle"):
        load_plain_pickle(path)


def test_pickle_with_the_wrong_shape_names_the_clip(tmp_path):
    make_msvd(tmp_path, captions="pkl")
    (tmp_path / "raw-captions.pkl").write_bytes(pickle.dumps({"-4wsuPCjDBc_5_15": "tokens"}))
    with pytest.raises(DataError, match=r"clip '-4wsuPCjDBc_5_15': expected a clip name"):
        load_split("msvd", "train", root=tmp_path)


# -- bad input -----------------------------------------------------------------------------


def test_missing_caption_files_are_named(tmp_path):
    make_msvd(tmp_path)
    (tmp_path / "MSR Video Description Corpus.csv").unlink()
    with pytest.raises(
        DataError, match=r"MSR Video Description Corpus\.csv or video_corpus\.csv or raw-captions"
    ) as exc:
        load_split("msvd", "test", root=tmp_path)
    assert "datasets/msvd/README.md" in str(exc.value)


def test_missing_split_files_are_named(tmp_path):
    make_msvd(tmp_path)
    (tmp_path / "val_list.txt").unlink()
    with pytest.raises(DataError, match=r"val_list\.txt or youtube_mapping\.txt not found"):
        load_split("msvd", "val", root=tmp_path)


def test_clip_without_captions_names_the_list(tmp_path):
    make_msvd(tmp_path)
    (tmp_path / "test_list.txt").write_text("-AwoiGR6c8M_10_14\nnot_a_clip_1_2\n")
    with pytest.raises(DataError, match=r"test_list\.txt: clip 'not_a_clip_1_2' has no captions"):
        load_split("msvd", "test", root=tmp_path)


def test_clip_listed_twice_names_both_lines(tmp_path):
    make_msvd(tmp_path)
    (tmp_path / "test_list.txt").write_text("-AwoiGR6c8M_10_14\n\n-AwoiGR6c8M_10_14\n")
    with pytest.raises(DataError, match=r"line 3: '-AwoiGR6c8M_10_14' is listed twice \(first"):
        load_split("msvd", "test", root=tmp_path)


def test_csv_without_the_language_column_is_refused(tmp_path):
    make_msvd(tmp_path)
    (tmp_path / "MSR Video Description Corpus.csv").write_text("VideoID,Start,End,Description\n")
    with pytest.raises(DataError, match=r"row 1 \(header\): missing column 'Language'"):
        load_split("msvd", "test", root=tmp_path)


def test_an_unbalanced_quote_in_the_csv_is_refused_not_merged_into_one_caption(tmp_path):
    make_msvd(tmp_path)
    path = tmp_path / "MSR Video Description Corpus.csv"
    lines = path.read_text().splitlines(keepends=True)
    clip = lines[1].split(",")
    lines[1] = ",".join(clip[:7]) + ',"someone cooks food\n'  # opens a quote, never closes it
    lines[4] = lines[4].rstrip("\n") + '"\n'  # a later stray quote ends the runaway field
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=r"lines 2-5: one field spans several lines \(an unbal"):
        load_split("msvd", "test", root=tmp_path)


def test_a_clip_under_two_vid_numbers_is_refused(tmp_path):
    make_msvd(tmp_path, split="mapping")
    (tmp_path / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1\n-4wsuPCjDBc_5_15 vid2\n")
    with pytest.raises(DataError, match=r"line 2: clip '-4wsuPCjDBc_5_15' is listed twice"):
        load_split("msvd", "train", root=tmp_path)


def test_bad_mapping_line_names_the_line(tmp_path):
    make_msvd(tmp_path, split="mapping")
    (tmp_path / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 vid1\nbroken\n")
    with pytest.raises(DataError, match=r"youtube_mapping\.txt: line 2: expected '<clip> vid<N>'"):
        load_split("msvd", "train", root=tmp_path)


def test_clip_name_escaping_the_root_is_refused(tmp_path):
    make_msvd(tmp_path, captions="pkl")
    (tmp_path / "raw-captions.pkl").write_bytes(pickle.dumps({"../../etc/passwd": [["x"]]}))
    (tmp_path / "test_list.txt").write_text("../../etc/passwd\n")
    with pytest.raises(DataError, match="outside the dataset root"):
        load_split("msvd", "test", root=tmp_path)


def test_video_folder_and_extension_are_found(tmp_path):
    make_msvd(tmp_path, videos=1)
    split = load_split("msvd", "train", root=tmp_path)
    assert split.item_paths[0] == (tmp_path / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi").absolute()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"protocol": "paragraph"}, r"option protocol must be one of multi, sentence"),
        ({"protocl": "multi"}, r"has no option\(s\) protocl; options: protocol"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, options, message):
    make_msvd(tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_split("msvd", "test", root=tmp_path, **options)
