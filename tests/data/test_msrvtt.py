"""MSR-VTT adapter on tiny fixtures in the real files' formats (MSRVTT_data.json and CSVs)."""

from __future__ import annotations

import pytest
from fixtures_real import (
    frame_index,
    make_msrvtt,
    msrvtt_data,
    write_csv,
    write_json,
)

from vilem.data import DATASETS, load_split
from vilem.data.base import file_digest
from vilem.data.msrvtt import MsrVtt
from vilem.data.video import read_frames
from vilem.errors import ConfigError, DataError


def pairs(split):
    return [
        (split.items[i], t) for t, i in zip(split.texts, split.text_to_item.tolist(), strict=True)
    ]


def test_registered_name_loads_the_adapter():
    assert DATASETS.get("msrvtt") is MsrVtt


def test_1ka_test_split_is_one_sentence_per_video_in_csv_order(tmp_path):
    make_msrvtt(tmp_path)
    split = load_split("msrvtt", "test", root=tmp_path)
    assert split.modality == "video" and split.dataset == "msrvtt"
    assert split.items == ["video4", "video0", "video2"]
    assert split.texts == [
        "cartoon characters fight each other",
        "a red car drives down the road",
        "kids play football on grass",
    ]
    assert split.text_to_item.tolist() == [0, 1, 2]
    assert split.item_paths == [(tmp_path / "videos" / f"{v}.mp4").resolve() for v in split.items]
    assert split.revision == file_digest(tmp_path / "MSRVTT_JSFUSION_test.csv")
    notes = " | ".join(split.notes)
    assert "1k-A" in notes and "MSRVTT_JSFUSION_test.csv" in notes
    assert "3 videos / 3 sentences" in notes
    assert "missing or broken" in notes and "DESIGN.md" in notes


def test_train_9k_takes_ids_from_the_csv_and_all_sentences_from_the_json(tmp_path):
    make_msrvtt(tmp_path)
    split = load_split("msrvtt", "train-9k", root=tmp_path)
    assert split.items == ["video1", "video3", "video5", "video6"]
    assert split.text_to_item.tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    # each video's sentences keep their order in MSRVTT_data.json
    sentences = msrvtt_data()["sentences"]
    assert pairs(split) == [
        (v, s["caption"]) for v in split.items for s in sentences if s["video_id"] == v
    ]
    assert pairs(split)[:3] == [
        ("video1", "a chef cooks noodles"),
        ("video1", "a man talks about cooking"),
        ("video1", "cooking show"),
    ]
    assert split.revision == file_digest(
        tmp_path / "MSRVTT_train.9k.csv", tmp_path / "MSRVTT_data.json"
    )
    assert any("MSRVTT_train.9k.csv" in n and "4 videos / 10 sentences" in n for n in split.notes)


def test_train_7k(tmp_path):
    make_msrvtt(tmp_path)
    split = load_split("msrvtt", "train-7k", root=tmp_path)
    assert split.items == ["video1", "video3"]
    assert split.counts() == {"items": 2, "texts": 5, "skipped_items": 0}
    assert any("7,010" in n for n in split.notes)


def test_full_test_is_the_official_test_split_with_all_sentences(tmp_path):
    make_msrvtt(tmp_path)
    split = load_split("msrvtt", "full-test", root=tmp_path)
    assert split.items == ["video5", "video6"]
    assert pairs(split) == [
        ("video5", "a person is connecting something to system"),
        ("video5", "a computer demo"),
        # MSRVTT_data.json lists this video's sentences in this order (see fixtures_real)
        ("video6", "a cat plays with a ball"),
        ("video6", "a kitten jumps"),
        ("video6", "cat video"),
    ]
    notes = " | ".join(split.notes)
    assert "official test split" in notes and "2,990" in notes
    assert "2 videos / 5 sentences" in notes


@pytest.mark.parametrize("subdir", ["annotations", "msrvtt_data"])
def test_annotation_files_in_a_subfolder_are_found(tmp_path, subdir):
    make_msrvtt(tmp_path, subdir=subdir)
    split = load_split("msrvtt", "train-7k", root=tmp_path)
    assert split.items == ["video1", "video3"]
    assert split.revision == file_digest(
        tmp_path / subdir / "MSRVTT_train.7k.csv", tmp_path / subdir / "MSRVTT_data.json"
    )


def test_videos_all_folder_is_used_when_present_and_frames_read(tmp_path):
    make_msrvtt(tmp_path, video_dir="videos/all", videos=5)
    split = load_split("msrvtt", "test", root=tmp_path)
    assert split.item_paths[0] == (tmp_path / "videos" / "all" / "video4.mp4").resolve()
    frames = read_frames(split.item_paths[0], num_frames=4)
    assert [frame_index(f) for f in frames] == [
        0,
        1,
        1,
        2,
    ]  # 3 frames: centres 0.375 1.125 1.875 2.625
    assert any("videos/all/<video_id>.mp4" in n for n in split.notes)


# -- bad input -----------------------------------------------------------------------------


def test_wrong_csv_header_names_file_row_and_expected_header(tmp_path):
    make_msrvtt(tmp_path)
    write_csv(tmp_path / "MSRVTT_JSFUSION_test.csv", ["key", "vid", "caption"], [["a", "b", "c"]])
    with pytest.raises(
        DataError,
        match=r"MSRVTT_JSFUSION_test\.csv: row 1 \(header\): missing column 'video_id'.*"
        r"expected key,vid_key,video_id,sentence",
    ):
        load_split("msrvtt", "test", root=tmp_path)


def test_train_csv_without_video_id_column_is_rejected(tmp_path):
    make_msrvtt(tmp_path)
    write_csv(tmp_path / "MSRVTT_train.9k.csv", ["id"], [["video1"]])
    with pytest.raises(DataError, match=r"MSRVTT_train\.9k\.csv: row 1 .*'video_id'"):
        load_split("msrvtt", "train-9k", root=tmp_path)


def test_csv_row_with_wrong_field_count_names_the_row(tmp_path):
    make_msrvtt(tmp_path)
    path = tmp_path / "MSRVTT_JSFUSION_test.csv"
    path.write_text(
        "key,vid_key,video_id,sentence\nret0,msr4,video4,a cartoon\nret1,msr0,video0\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"MSRVTT_JSFUSION_test\.csv: row 3: 3 fields, the header"):
        load_split("msrvtt", "test", root=tmp_path)


def test_empty_sentence_in_csv_names_the_row(tmp_path):
    make_msrvtt(tmp_path)
    write_csv(
        tmp_path / "MSRVTT_JSFUSION_test.csv",
        ["key", "vid_key", "video_id", "sentence"],
        [["ret0", "msr4", "video4", "a cartoon"], ["ret1", "msr0", "video0", "  "]],
    )
    with pytest.raises(DataError, match=r"row 3: empty sentence for video0"):
        load_split("msrvtt", "test", root=tmp_path)


def test_malformed_json_names_the_file(tmp_path):
    make_msrvtt(tmp_path)
    (tmp_path / "MSRVTT_data.json").write_text('{"videos": [', encoding="utf-8")
    with pytest.raises(DataError, match=r"MSRVTT_data\.json is not valid JSON"):
        load_split("msrvtt", "full-test", root=tmp_path)


def test_sentence_without_caption_names_the_entry(tmp_path):
    make_msrvtt(tmp_path)
    data = msrvtt_data()
    del data["sentences"][3]["caption"]
    write_json(tmp_path / "MSRVTT_data.json", data)
    with pytest.raises(
        DataError, match=r"MSRVTT_data\.json: sentences\[3\] .*missing key 'caption'"
    ):
        load_split("msrvtt", "train-9k", root=tmp_path)


def test_empty_caption_in_json_names_the_video(tmp_path):
    make_msrvtt(tmp_path)
    data = msrvtt_data()
    data["sentences"][0]["caption"] = ""
    write_json(tmp_path / "MSRVTT_data.json", data)
    video = data["sentences"][0]["video_id"]
    with pytest.raises(DataError, match=rf"sentences\[0\] \(video {video}\): empty caption"):
        load_split("msrvtt", "full-test", root=tmp_path)


def test_video_without_split_field_is_rejected(tmp_path):
    make_msrvtt(tmp_path)
    data = msrvtt_data()
    del data["videos"][2]["split"]
    write_json(tmp_path / "MSRVTT_data.json", data)
    with pytest.raises(DataError, match=r"videos\[2\] \(video2\): missing key 'split'"):
        load_split("msrvtt", "full-test", root=tmp_path)


def test_json_without_sentences_list_is_rejected(tmp_path):
    make_msrvtt(tmp_path)
    write_json(tmp_path / "MSRVTT_data.json", {"videos": [], "sentences": {}})
    with pytest.raises(DataError, match="'sentences' list"):
        load_split("msrvtt", "train-9k", root=tmp_path)


def test_train_id_without_sentences_names_the_csv_row(tmp_path):
    make_msrvtt(tmp_path)
    write_csv(tmp_path / "MSRVTT_train.7k.csv", ["video_id"], [["video1"], ["video9999"]])
    with pytest.raises(DataError, match=r"train\.7k\.csv: row 3: 'video9999' has no sentences"):
        load_split("msrvtt", "train-7k", root=tmp_path)


def test_video_id_escaping_the_root_is_rejected(tmp_path):
    make_msrvtt(tmp_path)
    write_csv(
        tmp_path / "MSRVTT_JSFUSION_test.csv",
        ["key", "vid_key", "video_id", "sentence"],
        [["ret0", "msr0", "../../etc/x", "a sentence"]],
    )
    with pytest.raises(DataError, match="outside the dataset root"):
        load_split("msrvtt", "test", root=tmp_path)


def test_missing_annotation_file_says_where_it_looked(tmp_path):
    make_msrvtt(tmp_path)
    (tmp_path / "MSRVTT_train.9k.csv").unlink()
    with pytest.raises(DataError, match=r"MSRVTT_train\.9k\.csv not found.*msrvtt_data"):
        load_split("msrvtt", "train-9k", root=tmp_path)


def test_unknown_split_suggests_the_closest(tmp_path):
    make_msrvtt(tmp_path)
    with pytest.raises(DataError, match="no split 'train9k' \\(did you mean 'train-9k'\\?\\)"):
        load_split("msrvtt", "train9k", root=tmp_path)


def test_missing_root_points_to_the_readme(tmp_path):
    with pytest.raises(DataError, match=r"not found: .*absent.*datasets/msrvtt/README\.md"):
        load_split("msrvtt", "test", root=tmp_path / "absent")


def test_options_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="takes no options"):
        load_split("msrvtt", "test", root=tmp_path, annotation="x.csv")


def test_a_byte_order_mark_is_accepted_in_every_annotation_file(tmp_path):
    make_msrvtt(tmp_path)
    plain = {s: pairs(load_split("msrvtt", s, root=tmp_path)) for s in ("test", "train-9k")}
    for name in ("MSRVTT_data.json", "MSRVTT_JSFUSION_test.csv", "MSRVTT_train.9k.csv"):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    for split_name, expected in plain.items():
        assert pairs(load_split("msrvtt", split_name, root=tmp_path)) == expected
