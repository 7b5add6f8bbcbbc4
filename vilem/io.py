"""Atomic writes and safe path handling: a crash never leaves a half-written result."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from vilem.errors import DataError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    # os.open with 0o666 honours the umask (mkstemp would make every result file 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read a JSON file, turning a missing file or a syntax error into one clear DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {path} is not UTF-8 text: {exc}") from exc


def resolve_inside(root: Path, relative: str, what: str = "annotation path") -> Path:
    """Join ``relative`` to ``root``, refusing absolute paths and ``..`` that climb above ``root``.

    The check is lexical on purpose: a dataset folder that is a symlink (``val2014 -> /mnt/...``)
    is the user's choice and stays allowed; an annotation that names a path outside the root is not.
    """
    rel = os.path.normpath(str(relative))
    if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
        raise DataError(f"{what} {relative!r} resolves outside the dataset root {root}")
    return Path(root).absolute() / rel


def display_path(path: str | os.PathLike, base: str | os.PathLike) -> str:
    """``path`` relative to ``base`` (POSIX separators) when inside it, else as given: what
    results and reports show, so they carry no machine-specific folders."""
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return str(path)
