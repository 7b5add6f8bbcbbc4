"""Atomic writes and safe path handling: a crash never leaves a half-written result."""

from __future__ import annotations

import errno
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any, Literal

from vilem.errors import ConfigError, DataError

# set to this value, atomic_write_bytes SIGKILLs the process before its rename (for tests)
FAULT_ENV = "VILEM_FAULT"
KILL_BEFORE_REPLACE = "kill-before-replace"
_PROBE_BYTES = b"\0" * 4096


def _reason(exc: OSError) -> str:
    """``No space left on device (errno 28)``: an OSError as a short phrase."""
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text} ({name})" if name else text


def _fault_point(path: Path) -> None:
    """``VILEM_FAULT=kill-before-replace`` (or ``kill-before-replace:<file name>``, only for
    targets of that name): die here as a ``kill -9`` would, the temp file written and fsynced,
    the target not yet replaced."""
    fault = os.environ.get(FAULT_ENV, "")
    if not fault.startswith(KILL_BEFORE_REPLACE):
        return
    name = fault[len(KILL_BEFORE_REPLACE) :]
    if name in ("", f":{path.name}"):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename.

    The temp file is written, flushed and fsynced, then renamed over ``path``: a reader sees
    the old file or the new one, never a part. An OSError on the way (a full disk, a read-only
    folder, no permission) removes the temp file and becomes a one-line DataError; the previous
    file at ``path``, if any, is untouched.

    Fault injection (tests only): with the environment variable ``VILEM_FAULT`` set to
    ``kill-before-replace`` the process SIGKILLs itself after the temp file is fully written and
    fsynced but before ``os.replace``; ``kill-before-replace:<name>`` does so only for a target
    whose file name is ``<name>`` (e.g. ``model.safetensors``).
    """
    path = Path(path)
    existed = path.exists()
    kept = "the previous file at that path is intact" if existed else "nothing was written"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        # os.open with 0o666 honours the umask (mkstemp would make every result file 0600)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {_reason(exc)}; {kept}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _fault_point(path)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DataError(f"cannot write {path}: {_reason(exc)}; {kept}") from exc
        raise


def check_writable(
    path: str | os.PathLike, kind: Literal["file", "dir"] = "file", what: str = "output"
) -> Path:
    """Pre-flight for an output location, before any work: raise a one-line DataError unless
    ``path`` can be written as a ``kind`` (a file, or a folder to write files into).

    Checks: no existing ancestor is a file; a file target is not a folder and a folder target
    not a file; and a real probe file (4 KiB, fsynced, removed) can be written in the deepest
    folder that exists on the way, so a read-only folder, a missing permission or a full disk
    show now rather than after the evaluation. Creates nothing. Returns ``path``.
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise DataError(f"{what} {path} is a folder; give a file path")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is a file, not a folder")
    folder = path if kind == "dir" else path.parent
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{what} {path}: {existing} is a file, not a folder")
    probe = existing / f".vilem-write-probe.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_PROBE_BYTES)
                f.flush()
                os.fsync(f.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise DataError(f"{what} {path}: cannot write in {existing}: {_reason(exc)}") from exc
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read a JSON file, turning a missing file or a syntax error into one clear DataError.
    A UTF-8 byte-order mark, as some editors on Windows write, is accepted."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        where = f"at line {exc.lineno}, column {exc.colno}"  # json's msg may end in "at"
        raise DataError(
            f"{what} {path} is not valid JSON: {exc.msg.removesuffix(' at')} {where}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {path} is not UTF-8 text: {exc}") from exc


def resolve_inside(
    root: Path, relative: str, what: str = "annotation path", allow_symlinks: bool = False
) -> Path:
    """Join ``relative`` to ``root``, refusing paths that leave ``root``: absolute ones, ``..``
    that climbs above it, and (unless ``allow_symlinks``) a symlink inside the root whose target
    lies outside it. The root itself may be a symlink: containment is judged on real paths.

    ``allow_symlinks`` is the adapters' ``allow_symlinks`` option, for a media folder kept
    elsewhere on purpose (``val2014 -> /mnt/coco/val2014``).
    """
    rel = os.path.normpath(str(relative))
    if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
        raise DataError(f"{what} {relative!r} resolves outside the dataset root {root}")
    path = Path(root).absolute() / rel
    if not allow_symlinks:
        real_root, real = os.path.realpath(root), os.path.realpath(path)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise DataError(
                f"{what} {relative!r} leads outside the dataset root {root} through a symlink "
                f"(to {real}); to follow it, set the dataset option allow_symlinks=true "
                "(vilem eval --data-option allow_symlinks=true)"
            )
    return path


def display_path(path: str | os.PathLike, base: str | os.PathLike) -> str:
    """``path`` relative to ``base`` (POSIX separators) when inside it, else as given: what
    results and reports show, so they carry no machine-specific folders."""
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return str(path)


# files that can only be read by unpickling (and so can run code): vilem never opens them
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".tar", ".h5", ".msgpack")


def safe_weights(folder: Path, names: tuple[str, ...], what: str, fix: str) -> Path:
    """The first of ``names`` (safetensors files) present in ``folder``. Without one, a
    ConfigError saying so: that the folder holds only pickle weights, which vilem never
    unpickles (``fix`` says how to save them safely), or no weights at all."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ConfigError(
            f"{what} {folder} has only pickle weights ({', '.join(pickles)}), which vilem never "
            f"unpickles (they can run arbitrary code); {fix}"
        )
    raise ConfigError(f"{what} {folder} has no weights ({names[0]})")
