"""DiDeMo, ActivityNet Captions, LSMDC and VATEX adapters on tiny fixtures in the files' real
formats: ids, counts, the text -> video mapping per protocol, clip windows, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures_video import (
    DIDEMO_V1,
    DIDEMO_V2,
    DIDEMO_V3,
    LSMDC_TEST,
    VATEX_TEST,
    VATEX_VALIDATION,
    activitynet_val_1,
    make_activitynet,
    make_didemo,
    make_lsmdc,
    make_vatex,
    write_clip,
)

from vilem.bench.spec import parse_spec
from vilem.data import DATASETS, load_split
from vilem.data.base import file_digest
from vilem.errors import ConfigError, DataError


def pairs(split):
    return [
        (split.items[i], t) for t, i in zip(split.texts, split.text_to_item.tolist(), strict=True)
    ]


@pytest.mark.parametrize(
    ("name", "splits"),
    [
        ("didemo", ("train", "val", "test")),
        ("activitynet", ("train", "val_1", "val_2")),
        ("lsmdc", ("train", "val", "test")),
        ("vatex", ("train", "val", "test")),
        ("msvd", ("train", "val", "test")),
    ],
)
def test_each_adapter_is_registered_with_its_splits(name, splits):
    cls = DATASETS.get(name)
    assert cls.name == name and cls.modality == "video" and cls.splits == splits
    assert "protocol=" in cls.description


# -- DiDeMo --------------------------------------------------------------------------------


def test_didemo_test_is_paragraph_to_video_over_the_annotated_30_seconds(tmp_path):
    make_didemo(tmp_path)
    split = load_split("didemo", "test", root=tmp_path)
    assert split.items == [DIDEMO_V1, DIDEMO_V2, DIDEMO_V3]  # first appearance in the file
    assert split.texts == [
        "someone kicks the bug towards some rocks. the bug stops moving.",
        "a dog runs into the frame. the dog sits down.",
        "camera pans left.",
    ]
    assert split.text_to_item.tolist() == [0, 1, 2]
    assert split.protocol == "paragraph" and split.describe()["protocol"] == "paragraph"
    assert split.windows == [(0.0, 30.0)] * 3
    assert (
        "seconds 0-30" in split.clip_window and split.describe()["clip_window"] == split.clip_window
    )
    assert split.revision == file_digest(tmp_path / "test_data.json")
    notes = " | ".join(split.notes)
    assert "paragraph-to-video" in notes and "1,004" in notes and "partial" in notes


def test_didemo_span_window_averages_annotators_as_clip4clip(tmp_path):
    make_didemo(tmp_path)
    split = load_split("didemo", "test", root=tmp_path, window="span")
    # V1: moments [5, 11.25) (annotators 1,1,1-2,1) and [10, 15): span 5 .. 15 s
    # V2: [0, 6.25) and [15, 21.25); V3: segments 4.25..5 -> [21.25, 30)
    assert split.windows == [(5.0, 15.0), (0.0, 21.25), (21.25, 30.0)]
    assert "earliest to the latest" in split.clip_window
    whole = load_split("didemo", "test", root=tmp_path, window="video")
    assert whole.windows is None and whole.clip_window == "whole video"


def test_didemo_multi_protocol_makes_each_description_a_query(tmp_path):
    make_didemo(tmp_path)
    split = load_split("didemo", "test", root=tmp_path, protocol="multi")
    assert split.text_to_item.tolist() == [0, 0, 1, 1, 2]
    assert pairs(split)[1] == (DIDEMO_V1, "the bug stops moving.")
    assert split.protocol == "multi"


def test_didemo_list_file_restricts_and_orders_the_split(tmp_path):
    make_didemo(tmp_path, with_list=True)
    split = load_split("didemo", "test", root=tmp_path)
    assert split.items == [DIDEMO_V2, DIDEMO_V1]
    assert split.revision == file_digest(tmp_path / "test_data.json", tmp_path / "test_list.txt")
    assert any("Collaborative Experts" in n for n in split.notes)


def test_didemo_video_named_as_annotated_or_converted_to_mp4(tmp_path):
    make_didemo(tmp_path)
    write_clip(tmp_path / "videos" / DIDEMO_V1, 4, 2)
    write_clip(tmp_path / "videos" / "10015567@N08_3655084291_d8b58466fa.mp4", 4, 2)
    split = load_split("didemo", "test", root=tmp_path)
    assert split.item_paths[0] == (tmp_path / "videos" / DIDEMO_V1).absolute()
    assert split.item_paths[1].name == "10015567@N08_3655084291_d8b58466fa.mp4"
    assert split.item_paths[2].name == DIDEMO_V3  # missing: evaluation reports it


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e[1].pop("description"), r"entry 1 \(video .*\): missing key 'description'"),
        (lambda e: e[2].update(times=[[1]]), r"entry 2 .*'times' entry \[1\] is not a"),
        (lambda e: e[0].update(times=[]), r"entry 0 .*'times' should be a non-empty list"),
        # json reads NaN and 1e400 (inf); a span window from them used to end in a traceback
        (lambda e: e[0].update(times=[[float("nan"), 0]]), r"\[nan, 0\] is not a pair of segm"),
        (lambda e: e[0].update(times=[[0, float("inf")]]), r"\[0, inf\] is not a pair of segments"),
        (lambda e: e[0].update(times=[[0, 6]]), r"\[0, 6\] is not a pair of segments 0-5"),
        (lambda e: e[0].update(times=[[-1, 0]]), r"\[-1, 0\] is not a pair of segments 0-5"),
        (lambda e: e[3].update(video="../../x.mp4"), r"outside the dataset root"),
    ],
)
def test_didemo_bad_entries_name_the_entry(tmp_path, edit, message):
    from fixtures_video import didemo_entries

    entries = didemo_entries()
    edit(entries)
    (tmp_path / "test_data.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match=message):
        load_split("didemo", "test", root=tmp_path)


def test_didemo_list_naming_an_unannotated_video_is_refused(tmp_path):
    make_didemo(tmp_path)
    (tmp_path / "test_list.txt").write_text("nope.mp4\n")
    with pytest.raises(DataError, match=r"test_list\.txt: video 'nope\.mp4' has no descriptions"):
        load_split("didemo", "test", root=tmp_path)


def test_didemo_missing_annotation_names_file_and_readme(tmp_path):
    with pytest.raises(DataError, match=r"val_data\.json not found.*datasets/didemo/README\.md"):
        load_split("didemo", "val", root=tmp_path)


def test_didemo_unknown_window_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"window must be one of annotated, span, video.*'span'"):
        load_split("didemo", "test", root=tmp_path, window="spam")


# -- ActivityNet ---------------------------------------------------------------------------


@pytest.mark.parametrize("asked", ["test", "val"])
def test_activitynet_without_a_test_split_names_the_usual_one(tmp_path, asked):
    # `val` would otherwise suggest val_2, and the CLI's default split is test
    make_activitynet(tmp_path)
    hint = r"has no split '\w+' \(the usual retrieval test is 'val_1'\); splits: train, val_1"
    with pytest.raises(DataError, match=hint):
        load_split("activitynet", asked, root=tmp_path)
    spec = {"models": {"m": {"spec": "random"}}, "datasets": {"a": {"dataset": "activitynet",
            "root": str(tmp_path), "split": asked}}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"activitynet has no split .*the usual retrieval test"):
        parse_spec(spec)


def test_activitynet_val_1_is_paragraph_to_video_over_whole_videos(tmp_path):
    make_activitynet(tmp_path)
    split = load_split("activitynet", "val_1", root=tmp_path)
    assert split.items == ["v_uqiMw7tQ1Cc", "v_bXdq2zI1Ms0"]
    assert split.texts[0] == (
        "A weight lifting tutorial is given. The coach helps the guy in red with the proper "
        "body placement and lifting."
    )
    assert split.text_to_item.tolist() == [0, 1] and split.protocol == "paragraph"
    assert split.windows is None and "whole video" in split.clip_window
    notes = " | ".join(split.notes)
    assert "usual ActivityNet Captions retrieval test" in notes and "4,917" in notes
    assert split.revision == file_digest(tmp_path / "val_1.json")


def test_activitynet_span_window_and_multi_protocol(tmp_path):
    make_activitynet(tmp_path)
    split = load_split("activitynet", "val_1", root=tmp_path, window="span", protocol="multi")
    assert split.windows == [(0.28, 55.15), (2.0, 7.0)]
    assert split.text_to_item.tolist() == [0, 0, 1, 1, 1]
    assert split.texts[3] == "The man in front begins to do karate on the mat."


def test_activitynet_other_splits_read_their_files(tmp_path):
    make_activitynet(tmp_path)
    assert load_split("activitynet", "val_2", root=tmp_path).items == ["v_K6Tm5xHkJ5c"]
    assert load_split("activitynet", "train", root=tmp_path).items == ["v_QOlSCBRmfWY"]


def test_activitynet_finds_videos_with_or_without_the_v_prefix(tmp_path):
    make_activitynet(tmp_path)
    write_clip(tmp_path / "videos" / "uqiMw7tQ1Cc.mp4", 4, 2)
    write_clip(tmp_path / "videos" / "v_bXdq2zI1Ms0.mkv", 4, 2)
    split = load_split("activitynet", "val_1", root=tmp_path)
    assert [p.name for p in split.item_paths] == ["uqiMw7tQ1Cc.mp4", "v_bXdq2zI1Ms0.mkv"]


def test_activitynet_timestamps_must_match_the_sentences(tmp_path):
    data = activitynet_val_1()
    data["v_bXdq2zI1Ms0"]["timestamps"].pop()
    (tmp_path / "val_1.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"video v_bXdq2zI1Ms0: 'timestamps' should list one"):
        load_split("activitynet", "val_1", root=tmp_path)


@pytest.mark.parametrize(
    ("duration", "message"),
    [("10", r"'duration': '10' is not a number of seconds"),
     (float("nan"), r"'duration': nan is not a number of seconds"),
     (0, r"'duration' 0.0 is not positive")],
)  # fmt: skip
def test_activitynet_a_bad_duration_is_refused_not_ignored(tmp_path, duration, message):
    data = activitynet_val_1()
    data["v_bXdq2zI1Ms0"]["duration"] = duration
    (tmp_path / "val_1.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"video v_bXdq2zI1Ms0.*{message}"):
        load_split("activitynet", "val_1", root=tmp_path, window="span")


def test_activitynet_empty_sentence_names_the_video(tmp_path):
    data = activitynet_val_1()
    data["v_uqiMw7tQ1Cc"]["sentences"][1] = "  "
    (tmp_path / "val_1.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"video v_uqiMw7tQ1Cc 'sentences'\[1\]: expected a non-"):
        load_split("activitynet", "val_1", root=tmp_path)


# -- LSMDC ---------------------------------------------------------------------------------


def test_lsmdc_public_test_is_one_sentence_per_clip(tmp_path):
    make_lsmdc(tmp_path)
    split = load_split("lsmdc", "test", root=tmp_path)
    assert pairs(split) == LSMDC_TEST
    # multi over one sentence per clip is the sentence protocol: recorded as such
    assert split.protocol == "sentence"
    assert any("1,000-clip public test" in n for n in split.notes)
    movie = split.item_paths[0].parent.name
    assert movie == "1010_TITANIC" and split.item_paths[0].suffix == ".avi"


def test_lsmdc_training_clips_keep_all_their_sentences(tmp_path):
    make_lsmdc(tmp_path)
    split = load_split("lsmdc", "train", root=tmp_path)
    assert split.text_to_item.tolist() == [0, 0, 1] and split.protocol == "multi"
    first = load_split("lsmdc", "train", root=tmp_path, protocol="sentence")
    assert first.texts == ["SOMEONE gets out of the car.", "SOMEONE walks to the house."]


def test_lsmdc_line_with_wrong_field_count_names_the_line(tmp_path):
    make_lsmdc(tmp_path)
    path = tmp_path / "LSMDC16_challenge_1000_publictect.csv"
    path.write_text(path.read_text() + "1010_TITANIC_00.41.50.000-00.41.52.000\tonly two\n")
    with pytest.raises(DataError, match=r"publictect\.csv: line 3: 2 tab-separated fields"):
        load_split("lsmdc", "test", root=tmp_path)


def test_lsmdc_trailing_tabs_are_not_a_field(tmp_path):
    make_lsmdc(tmp_path)
    path = tmp_path / "LSMDC16_challenge_1000_publictect.csv"
    path.write_text("".join(line + "\t\n" for line in path.read_text().splitlines()))
    assert pairs(load_split("lsmdc", "test", root=tmp_path)) == LSMDC_TEST


def test_lsmdc_missing_val_file_is_named(tmp_path):
    make_lsmdc(tmp_path)
    with pytest.raises(DataError, match=r"LSMDC16_annos_val\.csv not found for dataset 'lsmdc'"):
        load_split("lsmdc", "val", root=tmp_path)


# -- VATEX ---------------------------------------------------------------------------------


@pytest.mark.parametrize("split_format", ["txt", "npy"])
def test_vatex_test_is_multi_sentence_over_the_listed_videos(tmp_path, split_format):
    make_vatex(tmp_path, split_format)
    split = load_split("vatex", "test", root=tmp_path)
    assert split.items == VATEX_TEST
    assert len(split.texts) == 20 and split.text_to_item.tolist() == [0] * 10 + [1] * 10
    assert split.texts[:10] == VATEX_VALIDATION[VATEX_TEST[0]]
    assert split.protocol == "multi"
    notes = " | ".join(split.notes)
    assert "HGR" in notes and "enCap" in notes and "1,500" in notes


def test_vatex_reads_clip2video_dict_captions(tmp_path):
    make_vatex(tmp_path)
    (tmp_path / "vatex_validation_v1.0.json").unlink()
    data = {v: {"enCap": caps} for v, caps in VATEX_VALIDATION.items()}
    (tmp_path / "vatex_data.json").write_text(json.dumps(data))
    assert load_split("vatex", "test", root=tmp_path).items == VATEX_TEST


def test_vatex_dict_captions_that_are_not_objects_name_the_video(tmp_path):
    make_vatex(tmp_path)
    (tmp_path / "vatex_validation_v1.0.json").unlink()
    data = {v: caps for v, caps in VATEX_VALIDATION.items()}  # lists, not {"enCap": [...]}
    (tmp_path / "vatex_data.json").write_text(json.dumps(data))
    first = next(iter(data))
    with pytest.raises(DataError, match=rf"video {first}: expected an object with 'enCap', got"):
        load_split("vatex", "test", root=tmp_path)


def test_vatex_object_array_split_file_is_refused_without_unpickling(tmp_path):
    make_vatex(tmp_path, "npy")
    np.save(tmp_path / "public_split" / "tst_names.npy", np.array(VATEX_TEST, dtype=object))
    with pytest.raises(DataError, match=r"tst_names\.npy: not a plain numpy string array"):
        load_split("vatex", "test", root=tmp_path)


@pytest.mark.parametrize("content", [b"", b"-0oL8QRYnvQ_000013_000023\n", b"\x80\x04K\x01."])
def test_vatex_split_file_that_is_not_npy_says_so_not_pickled(tmp_path, content):
    make_vatex(tmp_path, "npy")
    (tmp_path / "public_split" / "tst_names.npy").write_bytes(content)  # text, empty, a pickle
    with pytest.raises(DataError) as exc:
        load_split("vatex", "test", root=tmp_path)
    assert "tst_names.npy is not a .npy file (no NumPy header)" in str(exc.value)
    assert "pickle" not in str(exc.value)


def test_vatex_video_missing_from_the_captions_is_named(tmp_path):
    make_vatex(tmp_path)
    (tmp_path / "test_list.txt").write_text("unknown_000000_000010\n")
    with pytest.raises(DataError, match=r"video 'unknown_000000_000010' has no captions in vatex_"):
        load_split("vatex", "test", root=tmp_path)


def test_vatex_video_listed_twice_in_the_captions_is_refused(tmp_path):
    make_vatex(tmp_path)
    path = tmp_path / "vatex_validation_v1.0.json"
    entries = json.loads(path.read_text())
    entries.append({**entries[0], "enCap": ["overridden"]})  # would replace its 10 captions
    path.write_text(json.dumps(entries))
    twice = entries[0]["videoID"]
    with pytest.raises(DataError, match=rf"entry \d+: videoID '{twice}' is listed twice \(entr"):
        load_split("vatex", "test", root=tmp_path)


def test_vatex_missing_split_list_names_both_forms(tmp_path):
    make_vatex(tmp_path)
    with pytest.raises(DataError, match=r"val_list\.txt or val_names\.npy not found"):
        load_split("vatex", "val", root=tmp_path)


# -- missing videos ------------------------------------------------------------------------


def test_missing_videos_are_skipped_and_recorded_with_skip_bad_media(tmp_path):
    from vilem.eval.engine import validate_media

    make_didemo(tmp_path)
    write_clip(tmp_path / "videos" / DIDEMO_V1, 8, 2)
    split = load_split("didemo", "test", root=tmp_path)
    with pytest.raises(DataError, match=r"2 of 3 videos in didemo/test are missing or corrupt"):
        validate_media(split, skip_bad=False)
    kept = validate_media(split, skip_bad=True)
    assert kept.items == [DIDEMO_V1] and kept.skipped == [DIDEMO_V2, DIDEMO_V3]
    assert kept.windows == [(0.0, 30.0)] and kept.protocol == "paragraph"
    assert kept.describe()["skipped_ids"] == [DIDEMO_V2, DIDEMO_V3]
    assert any("partial set: 2 of 3 videos skipped" in n for n in kept.notes)


def test_a_missing_video_error_says_which_files_were_looked_for(tmp_path):
    from vilem.eval.engine import validate_media

    make_vatex(tmp_path)
    split = load_split("vatex", "test", root=tmp_path)
    assert split.notes[1] == "videos: videos/<videoID>.mp4 (or .webm), the 10-second clips"
    with pytest.raises(DataError) as exc:
        validate_media(split, skip_bad=False)
    assert f"video not found: {tmp_path / 'videos' / VATEX_TEST[0]}.mp4 (videos are looked " \
        "for as videos/<videoID>.mp4 (or .webm), the 10-second clips)" in str(exc.value)
    with pytest.raises(DataError, match=r"all 2 videos .* looked for as videos/<videoID>"):
        validate_media(split, skip_bad=True)
    # a corrupt file is not a missing one: no hint
    for v in VATEX_TEST:
        (tmp_path / "videos").mkdir(exist_ok=True)
        (tmp_path / "videos" / f"{v}.webm").write_bytes(b"not a video")
    with pytest.raises(DataError) as exc:
        validate_media(load_split("vatex", "test", root=tmp_path), skip_bad=False)
    assert "looked for" not in str(exc.value) and ".webm" in str(exc.value)
