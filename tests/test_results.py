"""Result records: what a writer puts in, a reader gets back; version-1 files still read; the
protocol identity tells results apart; foreign files are refused."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vilem.errors import DataError
from vilem.results import (
    SCHEMA,
    SCHEMA_VERSION,
    DatasetRecord,
    ModelRecord,
    ProofreadExample,
    Protocol,
    Result,
    collect,
    load_result,
    write_result,
)


def _result(**protocol) -> Result:
    return Result(
        model=ModelRecord(name="m", spec="random", fingerprint="f1", setting="chance"),
        dataset=DatasetRecord(
            "synthetic", "test", modality="image", revision="r1",
            counts={"items": 10, "texts": 20, "skipped_items": 0},
        ),  # fmt: skip
        task="retrieval",
        protocol=Protocol(preprocessing={"image_size": 32}, device="cpu", **protocol),
        metrics={"rsum": 12.5},
        intervals={"rsum": [10.0, 15.0]},
        per_query={"t2i_ranks": [1, 2]},
        examples=[ProofreadExample(tokens=["a"], error_prob=[0.5], is_error=[1], media="x.png")],
    )


def test_a_written_result_reads_back_unchanged(tmp_path):
    result = _result(frames=None)
    write_result(tmp_path / "r.json", result)
    raw = json.loads((tmp_path / "r.json").read_text())
    assert raw["schema"] == SCHEMA and raw["schema_version"] == SCHEMA_VERSION == 2
    assert raw["protocol"]["recall_ks"] == [1, 5, 10] and raw["protocol"]["bootstrap"] == 1000
    back = load_result(tmp_path / "r.json")
    assert back == result
    assert back.path == str(tmp_path / "r.json")
    assert isinstance(back.examples[0], ProofreadExample) and back.examples[0].media == "x.png"
    assert back.versions["python"] and set(back.git) == {"commit", "dirty"}


def _v1(**extra) -> dict:
    """A version-1 file as vilem wrote it before the protocol record (examples in ``extra``,
    the video example's media under ``image``)."""
    return {
        "schema": SCHEMA, "schema_version": 1, "status": "ok", "error": None,
        "model": {"spec": "vilem:runs/x", "name": "vilem", "config": {}, "fingerprint": "f"},
        "dataset": {"name": "synthetic-video", "split": "test", "modality": "video",
                    "revision": "r", "counts": {"items": 8, "texts": 8, "skipped_items": 0}},
        "task": "proofread", "metrics": {"ed_f1": 40.0}, "intervals": {}, "timings": {},
        "seed": 0, "versions": {}, "git": {}, "created": "2026-11-30T00:00:00Z",
        "extra": {"setting": "fine-tuned", "train_seed": 2, "train_log": "models/v/log.jsonl",
                  "examples": [{"tokens": ["a"], "error_prob": [0.1], "is_error": [0],
                                "category": "size", "truth": "a", "image": "v/0001.mp4"}],
                  **extra},
    }  # fmt: skip


def test_a_version_1_file_reads_with_its_protocol_marked_unknown(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps(_v1(cache={"hits": 1})))
    r = load_result(tmp_path / "old.json")
    assert r.schema_version == 1 and r.protocol is None
    assert (r.model.setting, r.model.train_seed, r.model.train_log) == (
        "fine-tuned", 2, "models/v/log.jsonl"
    )
    assert r.extra == {"cache": {"hits": 1}}
    # the video example's file, written as `image`, is its media; its modality the dataset's
    assert r.examples[0].media == "v/0001.mp4" and r.examples[0].modality == "video"
    assert r.benchmark()["schema"] == "v1: evaluation settings not recorded"


def test_the_protocol_splits_into_the_table_part_and_the_row_part():
    a, b = _result(frames=8), _result(frames=8)
    b.protocol.device, b.model.fingerprint = "cuda", "f2"
    # device and fingerprint are the model's side: same table, different rows / cells
    assert a.benchmark() == b.benchmark()
    assert a.row_protocol() != b.row_protocol() and a.identity() != b.identity()
    c = _result(frames=12)
    assert a.benchmark() != c.benchmark()
    quick = _result(quick=True)
    assert quick.toy and not a.toy and a.benchmark() != quick.benchmark()
    assert _result(limit=5).toy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "other"}, "not a vilem result file"),
        ({"schema_version": 99}, "schema version 99"),
        ({"metrics": [1, 2]}, "field 'metrics' is missing or not a dict"),
        ({"task": None}, "field 'task' is missing or not a str"),
        ({"status": "maybe"}, "unknown status 'maybe'"),
        ({"protocol": [1]}, "Protocol is not an object"),
        ({"per_query": [1]}, "'per_query' is not an object"),
    ],
)
def test_foreign_or_malformed_results_are_refused(tmp_path, change, message):
    data = _result().to_json() | change
    (tmp_path / "r.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        load_result(tmp_path / "r.json")


def test_a_file_that_is_not_json_is_a_data_error(tmp_path):
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_result(tmp_path / "r.json")


def test_collect_keeps_results_of_different_protocols_and_drops_true_duplicates(tmp_path):
    full, quick = _result(), _result(quick=True)
    newer = dataclasses.replace(full, created="2099-01-01T00:00:00Z", metrics={"rsum": 99.0})
    write_result(tmp_path / "run" / "a.json", full)
    write_result(tmp_path / "run-quick" / "a.json", quick)
    write_result(tmp_path / "copy" / "a.json", newer)
    results, problems = collect(tmp_path)
    assert sorted(r.protocol.quick for r in results) == [False, True]
    assert [r.metrics["rsum"] for r in results if not r.protocol.quick] == [99.0]  # the newest
    assert [p.kind for p in problems] == ["duplicate"]
    assert problems[0].path.endswith("run/a.json")
    assert "same cell and protocol" in problems[0].reason


def test_collect_of_several_folders_records_each_results_source(tmp_path):
    write_result(tmp_path / "a" / "r.json", _result())
    write_result(tmp_path / "b" / "r.json", _result())
    results, problems = collect(tmp_path / "a", tmp_path / "b")
    assert sorted(r.source for r in results) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert problems == []
    with pytest.raises(DataError, match="results folder not found"):
        collect(tmp_path / "a", tmp_path / "nope")
