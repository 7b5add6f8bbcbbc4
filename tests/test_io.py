import json
from pathlib import Path

import pytest

from vilem.errors import DataError
from vilem.io import atomic_write_json, display_path, read_json, resolve_inside


def test_atomic_write_leaves_no_temp_files(tmp_path: Path):
    atomic_write_json(tmp_path / "a" / "r.json", {"x": 1})
    assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"x": 1}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["r.json"]


def test_failed_write_keeps_the_previous_file(tmp_path: Path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"good": True})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"good": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_read_json_names_the_file_and_line(tmp_path: Path):
    bad = tmp_path / "ann.json"
    bad.write_text('{"images": [\n  1,\n  oops]}')
    with pytest.raises(DataError, match=r"ann.json is not valid JSON.*line 3"):
        read_json(bad, "annotation file")
    with pytest.raises(DataError, match="annotation file not found"):
        read_json(tmp_path / "missing.json", "annotation file")


def test_resolve_inside_rejects_escapes(tmp_path: Path):
    assert resolve_inside(tmp_path, "a/b.jpg") == tmp_path.absolute() / "a" / "b.jpg"
    with pytest.raises(DataError, match="outside the dataset root"):
        resolve_inside(tmp_path, "../../etc/passwd")
    with pytest.raises(DataError, match="outside the dataset root"):
        resolve_inside(tmp_path, "/etc/passwd")


def test_resolve_inside_allows_a_symlinked_media_folder(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "val2014").symlink_to(elsewhere)
    assert resolve_inside(root, "val2014/x.jpg") == root.absolute() / "val2014" / "x.jpg"
    with pytest.raises(DataError):
        resolve_inside(root, "val2014/../../x.jpg")


def test_display_path_is_relative_inside_the_base_and_unchanged_outside():
    assert display_path("/data/runs/a/b.json", "/data/runs") == "a/b.json"
    assert display_path(Path("/data/runs/a"), Path("/data")) == "runs/a"
    assert display_path("/elsewhere/b.json", "/data/runs") == "/elsewhere/b.json"
    assert display_path("rel/b.json", "/data") == "rel/b.json"
