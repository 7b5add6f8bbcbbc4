"""Result records: one JSON file per (model, dataset, split, task) cell, schema-versioned."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from vilem.errors import DataError
from vilem.io import atomic_write_json, read_json

SCHEMA = "vilem.result"
SCHEMA_VERSION = 1
_PACKAGES = ("vilem", "torch", "transformers", "timm", "numpy", "decord", "av")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """The commit of the source tree and whether it had uncommitted changes."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def make_result(
    *,
    model: dict[str, Any],
    dataset: dict[str, Any],
    task: str,
    metrics: dict[str, float],
    intervals: dict[str, list[float]] | None = None,
    timings: dict[str, float] | None = None,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
    status: str = "ok",
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "error": error,
        "model": model,
        "dataset": dataset,
        "task": task,
        "metrics": metrics,
        "intervals": intervals or {},
        "timings": timings or {},
        "seed": seed,
        "extra": extra or {},
        "versions": package_versions(),
        "git": git_state(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    atomic_write_json(path, result)


def load_result(path: str | Path) -> dict[str, Any]:
    """Read a result file; a foreign or malformed one raises DataError saying why."""
    data = read_json(path, "result file")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise DataError(f"{path} is not a vilem result file (no 'schema': {SCHEMA!r})")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            f"{path} has schema version {data.get('schema_version')!r}; "
            f"this vilem reads version {SCHEMA_VERSION}"
        )
    for key, kind in (("model", dict), ("dataset", dict), ("task", str), ("metrics", dict)):
        if not isinstance(data.get(key), kind):
            raise DataError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    return data
