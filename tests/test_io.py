import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vilem.errors import DataError
from vilem.io import atomic_write_json, check_writable, display_path, read_json, resolve_inside


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
    bad.write_text('{"caption": "a dog')  # json says "Unterminated string starting at"
    with pytest.raises(DataError) as exc:
        read_json(bad, "annotation file")
    assert str(exc.value).endswith("Unterminated string starting at line 1, column 13")


def test_resolve_inside_rejects_escapes(tmp_path: Path):
    assert resolve_inside(tmp_path, "a/b.jpg") == tmp_path.absolute() / "a" / "b.jpg"
    with pytest.raises(DataError, match="outside the dataset root"):
        resolve_inside(tmp_path, "../../etc/passwd")
    with pytest.raises(DataError, match="outside the dataset root"):
        resolve_inside(tmp_path, "/etc/passwd")


def test_resolve_inside_refuses_a_symlink_out_of_the_root_unless_allowed(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.jpg").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "val2014").symlink_to(elsewhere)
    (root / "own").mkdir()
    (root / "own" / "leak.jpg").symlink_to(elsewhere / "x.jpg")
    for rel in ("val2014/x.jpg", "own/leak.jpg"):
        with pytest.raises(
            DataError, match=r"leads outside the dataset root .*allow_symlinks=true"
        ):
            resolve_inside(root, rel)
    allowed = resolve_inside(root, "val2014/x.jpg", allow_symlinks=True)
    assert allowed == root.absolute() / "val2014" / "x.jpg"
    with pytest.raises(DataError):
        resolve_inside(root, "val2014/../../x.jpg", allow_symlinks=True)
    # a root that is itself a symlink, and links that stay inside it, are fine
    (tmp_path / "alias").symlink_to(root)
    (root / "own" / "inner.jpg").symlink_to(root / "own" / "leak.jpg")
    assert resolve_inside(tmp_path / "alias", "own/x.jpg").name == "x.jpg"
    (root / "own" / "ok.jpg").write_bytes(b"y")
    (root / "own" / "alias.jpg").symlink_to(root / "own" / "ok.jpg")
    assert resolve_inside(root, "own/alias.jpg").name == "alias.jpg"


def test_read_json_accepts_a_byte_order_mark(tmp_path: Path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": 1}')
    assert read_json(path) == {"a": 1}


# -- writes that fail, and the pre-flight check ---------------------------------------------


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_is_one_line_and_keeps_the_previous_file(tmp_path: Path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"good": True})
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(DataError) as exc:
        atomic_write_json(target, {"new": True})
    message = str(exc.value)
    assert "\n" not in message and str(target) in message
    assert "No space left on device (ENOSPC)" in message and "previous file" in message
    assert json.loads(target.read_text()) == {"good": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left
    with pytest.raises(DataError, match="nothing was written"):
        atomic_write_json(tmp_path / "new.json", {})


def test_a_write_under_a_file_or_onto_a_folder_is_a_data_error(tmp_path: Path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match=r"cannot write .*f/r\.json"):
        atomic_write_json(tmp_path / "f" / "r.json", {})
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="cannot write"):
        atomic_write_json(tmp_path / "d", {})
    assert (tmp_path / "d").is_dir() and list((tmp_path / "d").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_write_into_a_read_only_folder_is_a_data_error(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    atomic_write_json(folder / "r.json", {"good": True})
    folder.chmod(0o555)
    try:
        with pytest.raises(DataError, match="Permission denied.*previous file"):
            atomic_write_json(folder / "r.json", {"new": True})
        with pytest.raises(DataError, match="--out .*cannot write in"):
            check_writable(folder / "r.json", "file", "--out")
    finally:
        folder.chmod(0o755)
    assert json.loads((folder / "r.json").read_text()) == {"good": True}


def test_check_writable_accepts_new_paths_and_creates_nothing(tmp_path: Path):
    assert check_writable(tmp_path / "a" / "b" / "r.json", "file", "--out")
    assert check_writable(tmp_path / "x" / "y", "dir", "--save-embeddings")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("make", "target", "kind", "message"),
    [
        ("file", "f/r.json", "file", r"--out .*: .*/f is a file, not a folder"),
        ("file", "f/deeper/x", "dir", r"--out .*: .*/f is a file, not a folder"),
        ("dir", "d", "file", r"--out .*/d is a folder; give a file path"),
        ("file", "f", "dir", r"--out .*/f is a file, not a folder"),
    ],
)
def test_check_writable_refuses_impossible_targets(tmp_path: Path, make, target, kind, message):
    if make == "file":
        (tmp_path / "f").write_text("x")
    else:
        (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match=message) as exc:
        check_writable(tmp_path / target, kind, "--out")
    assert "\n" not in str(exc.value)


def test_check_writable_probes_with_a_real_write(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(DataError, match=r"--cache-dir .*cannot write in .*No space left"):
        check_writable(tmp_path / "cache", "dir", "--cache-dir")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_kill_before_replace_fault_leaves_the_previous_file(tmp_path: Path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"good": True})
    code = (
        "import sys; from vilem.io import atomic_write_json; "
        "atomic_write_json(sys.argv[1], {'new': True})"
    )
    env = {**os.environ, "VILEM_FAULT": "kill-before-replace"}
    proc = subprocess.run([sys.executable, "-c", code, str(target)], env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"good": True}
    temps = [p for p in tmp_path.iterdir() if p.name != "r.json"]
    assert len(temps) == 1 and json.loads(temps[0].read_text()) == {"new": True}  # fsynced
    env["VILEM_FAULT"] = "kill-before-replace:other.json"
    subprocess.run([sys.executable, "-c", code, str(target)], env=env, check=True)
    assert json.loads(target.read_text()) == {"new": True}


def test_display_path_is_relative_inside_the_base_and_unchanged_outside():
    assert display_path("/data/runs/a/b.json", "/data/runs") == "a/b.json"
    assert display_path(Path("/data/runs/a"), Path("/data")) == "runs/a"
    assert display_path("/elsewhere/b.json", "/data/runs") == "/elsewhere/b.json"
    assert display_path("rel/b.json", "/data") == "rel/b.json"
