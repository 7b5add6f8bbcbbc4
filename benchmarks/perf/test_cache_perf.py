"""The embedding cache: a second evaluation of the same model and data (cache warm) against the
first (cache empty), both through ``vilem.eval.engine.evaluate`` with its default options."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from conftest import build_vilem


@pytest.fixture(scope="module")
def eval_setup(synthetic_root) -> dict[str, Any]:
    from vilem.data import load_split
    from vilem.models.vilem import ViLEMRetrieval

    model = ViLEMRetrieval(build_vilem("small-vilem"))
    split = load_split("synthetic", "test", synthetic_root)
    return {"model": model, "split": split}


def _evaluate(setup: dict[str, Any], cache_dir: Path) -> Any:
    from vilem.eval.engine import EvalOptions, evaluate

    opts = EvalOptions(cache_dir=cache_dir, quiet=True)
    return evaluate(setup["model"], setup["split"], "retrieval", opts)


@pytest.mark.benchmark(group="embedding_cache")
def test_eval_cold_cache(benchmark, eval_setup, tmp_path):
    fresh = (tmp_path / f"cache{i}" for i in itertools.count())
    result = benchmark.pedantic(
        lambda: _evaluate(eval_setup, next(fresh)), rounds=3, warmup_rounds=1
    )
    assert result.extra["cache"] == {"hits": 0, "misses": 2}
    benchmark.extra_info["timings"] = result.timings
    benchmark.extra_info["counts"] = eval_setup["split"].counts()


@pytest.mark.benchmark(group="embedding_cache")
def test_eval_warm_cache(benchmark, eval_setup, tmp_path):
    first = _evaluate(eval_setup, tmp_path)  # fills the cache
    result = benchmark.pedantic(lambda: _evaluate(eval_setup, tmp_path), rounds=10, warmup_rounds=1)
    assert result.extra["cache"] == {"hits": 2, "misses": 0}
    assert result.metrics == first.metrics
    benchmark.extra_info["timings"] = result.timings
