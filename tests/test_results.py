"""Result records: what a writer puts in, a reader gets back; foreign files are refused."""

from __future__ import annotations

import json

import pytest

from vilem.errors import DataError
from vilem.results import SCHEMA, SCHEMA_VERSION, load_result, make_result, write_result


def _record(**changes):
    result = make_result(
        model={"name": "m", "spec": "random"},
        dataset={"name": "synthetic", "split": "test"},
        task="retrieval",
        metrics={"rsum": 12.5},
        intervals={"rsum": [10.0, 15.0]},
        seed=3,
    )
    result.update(changes)
    return result


def test_a_written_result_reads_back_unchanged(tmp_path):
    result = _record()
    write_result(tmp_path / "r.json", result)
    assert load_result(tmp_path / "r.json") == result
    assert result["schema"] == SCHEMA and result["schema_version"] == SCHEMA_VERSION
    assert result["status"] == "ok" and result["versions"]["python"]
    assert set(result["git"]) == {"commit", "dirty"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema": "other"}, "is not a vilem result file"),
        ({"schema_version": 99}, "schema version 99"),
        ({"metrics": [1, 2]}, "field 'metrics' is missing or not a dict"),
        ({"task": None}, "field 'task' is missing or not a str"),
    ],
)
def test_foreign_or_malformed_results_are_refused(tmp_path, changes, message):
    (tmp_path / "r.json").write_text(json.dumps(_record(**changes)))
    with pytest.raises(DataError, match=message):
        load_result(tmp_path / "r.json")


def test_a_file_that_is_not_json_is_a_data_error(tmp_path):
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(DataError):
        load_result(tmp_path / "r.json")
