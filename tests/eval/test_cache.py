from pathlib import Path

import numpy as np

from vilem.eval.cache import EmbeddingCache


def test_second_lookup_hits_and_returns_the_same_array(tmp_path: Path):
    cache = EmbeddingCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(2, 3)

    parts = {"model": "m1", "dataset": "d", "split": "test"}
    first = cache.get_or_compute(parts, compute)
    second = cache.get_or_compute(dict(parts), compute)
    assert len(calls) == 1 and cache.hits == 1 and cache.misses == 1
    np.testing.assert_array_equal(first, second)


def test_any_changed_key_part_misses(tmp_path: Path):
    cache = EmbeddingCache(tmp_path)
    base = {"model": "m1", "dataset": "d", "split": "test", "preprocessing": {"size": 32}}
    cache.get_or_compute(base, lambda: np.zeros((1, 2), np.float32))
    for key, value in [("model", "m2"), ("split", "val"), ("preprocessing", {"size": 64})]:
        cache.get_or_compute(base | {key: value}, lambda: np.ones((1, 2), np.float32))
    assert cache.hits == 0 and cache.misses == 4


def test_corrupt_entry_is_recomputed(tmp_path: Path):
    cache = EmbeddingCache(tmp_path)
    parts = {"model": "m"}
    cache.get_or_compute(parts, lambda: np.zeros((2, 2), np.float32))
    for f in tmp_path.glob("*.npy"):
        f.write_bytes(b"garbage")
    out = cache.get_or_compute(parts, lambda: np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(out, np.ones((2, 2)))


def test_disabled_cache_always_computes():
    cache = EmbeddingCache(None)
    cache.get_or_compute({"a": 1}, lambda: np.zeros(1, np.float32))
    cache.get_or_compute({"a": 1}, lambda: np.zeros(1, np.float32))
    assert cache.misses == 2 and cache.hits == 0
