"""On-disk embedding cache keyed by everything that determines the embeddings: model fingerprint,
dataset, split, revision, the exact items or texts, and preprocessing. Any change misses."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vilem.io import atomic_write_bytes, atomic_write_json


def default_cache_dir() -> Path:
    base = (
        os.environ.get("VILEM_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vilem"
    )
    return Path(base) / "embeddings"


def cache_key(parts: dict[str, Any]) -> str:
    payload = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:32]


_ENTRY_NAME = re.compile(r"[0-9a-f]{32}")  # cache_key's digest


def cache_entries(directory: Path) -> list[Path]:
    """The files of ``directory`` that are cache entries (``<32 hex digits>.npy`` or ``.json``):
    all that ``vilem cache clear`` may delete, whatever else the folder holds."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".npy", ".json") and _ENTRY_NAME.fullmatch(p.stem) and p.is_file()
    )


def digest_strings(values: list[str]) -> str:
    h = hashlib.sha256()
    for v in values:
        h.update(v.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


class EmbeddingCache:
    """``get_or_compute(parts, fn)`` returns cached embeddings or computes, stores and returns them.

    ``directory=None`` disables caching. Entries are ``<key>.npy`` + ``<key>.json`` (the parts, for
    humans); a corrupt entry is recomputed, never trusted.
    """

    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory is not None else None
        self.hits = 0
        self.misses = 0

    def get_or_compute(
        self, parts: dict[str, Any], compute: Callable[[], np.ndarray]
    ) -> np.ndarray:
        if self.directory is None:
            self.misses += 1
            return compute()
        key = cache_key(parts)
        path = self.directory / f"{key}.npy"
        if path.is_file():
            try:
                array = np.load(path, allow_pickle=False)
                self.hits += 1
                return array
            except (OSError, ValueError):
                pass  # corrupt entry: recompute below and overwrite
        self.misses += 1
        array = np.ascontiguousarray(compute(), dtype=np.float32)
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_json(self.directory / f"{key}.json", parts)
        return array
