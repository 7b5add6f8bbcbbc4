"""Retrieval metrics from embeddings: the project's chunked path against a naive per-row argsort
reference and against the bare similarity matmul (the floor), at 5,000 x 25,000; the large
gallery (50,000 x 250,000) in a child process for its peak memory, beside FAISS's exact top-10
search (``IndexFlatIP``, both directions, the same threads); and a scaling curve, 1,000 items
upwards, 5 captions each, D = 128, of both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# pytest puts this folder on sys.path (rootdir-relative "prepend" imports, no __init__.py)
from conftest import interleaved, require
from gallery_child import bare_chunked_matmul, make_inputs

from vilem import metrics as M
from vilem.metrics import ranking as R

N_ITEMS, PER_ITEM, DIM = 5_000, 5, 256
CHILD = Path(__file__).with_name("gallery_child.py")
GALLERY = ("bare_chunked_matmul", "chunked_metric_path", "faiss_top10")
MODES = {"bare_chunked_matmul": "matmul", "chunked_metric_path": "metrics", "faiss_top10": "faiss"}
# the curve: 50,000 items is the large-gallery case; FAISS stops earlier (5x vilem's time)
SCALING = {"vilem": (1_000, 2_000, 5_000, 10_000, 20_000, 100_000), "faiss": (1_000, 5_000, 20_000)}
RECALLS = [f"{d}_R@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)]


@pytest.fixture(scope="module")
def embeddings() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # noise 5: R@1 ~ 30% (t2i) / 60% (i2t), a realistic spread of ranks
    return make_inputs(N_ITEMS, PER_ITEM, DIM, noise=5.0, seed=0)


def naive_rowwise_ranks(
    items: np.ndarray, texts: np.ndarray, owner: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The classic evaluation loop (as in VSE++/SCAN ``i2t``/``t2i``): per query, score the
    gallery, argsort it, find the (best) positive's position."""
    t2i = np.empty(len(texts), np.int64)
    for j in range(len(texts)):
        order = np.argsort(-(items @ texts[j]))
        t2i[j] = np.flatnonzero(order == owner[j])[0] + 1
    i2t = np.empty(len(items), np.int64)
    for i in range(len(items)):
        order = np.argsort(-(texts @ items[i]))
        i2t[i] = np.flatnonzero(owner[order] == i)[0] + 1
    return t2i, i2t


def batched_argsort_ranks(
    items: np.ndarray, texts: np.ndarray, owner: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A less naive reference (informational): one full similarity matrix, then an argsort of
    each row and of each column."""
    sims = texts @ items.T
    t2i = np.empty(len(texts), np.int64)
    for j in range(len(texts)):
        t2i[j] = np.flatnonzero(np.argsort(-sims[j]) == owner[j])[0] + 1
    i2t = np.empty(len(items), np.int64)
    columns = np.ascontiguousarray(sims.T)
    del sims
    for i in range(len(items)):
        i2t[i] = np.flatnonzero(owner[np.argsort(-columns[i])] == i)[0] + 1
    return t2i, i2t


def _check_same_ranks(ranks: tuple[np.ndarray, np.ndarray], embeddings) -> None:
    """A reference is only a reference if it computes the same thing: ranks agree except at
    exact float ties (argsort breaks those arbitrarily, the project pessimistically)."""
    t2i, i2t = M.ranks(*embeddings)
    assert np.mean(ranks[0] == t2i) > 0.999 and np.mean(ranks[1] == i2t) > 0.999


def _floor_and_candidate(embeddings) -> dict:
    items, texts, _ = embeddings
    chunk = R._default_chunk(len(items))
    return {
        # the candidate: every metric, both directions, from the embeddings
        "project_path": lambda: M.retrieval_metrics(*embeddings),
        # (b) the floor: the one-shot similarity matmul the chunked path replaces
        "bare_matmul": lambda: texts @ items.T,
        # the tighter floor: the same GEMM shapes as the path, into one reused buffer
        "bare_chunked_matmul": lambda: bare_chunked_matmul(items, texts, chunk),
    }


@pytest.mark.benchmark(group="metrics_5k")
@interleaved(("project_path", "bare_matmul", "bare_chunked_matmul"), rounds=5)
def test_metrics5k(benchmark, embeddings, variant, round_):
    fn = _floor_and_candidate(embeddings)[variant]
    if round_ == 0:
        fn()  # warm-up: first-touch page faults of the buffers
    out = benchmark.pedantic(fn, rounds=1, iterations=1)
    if variant == "project_path":
        benchmark.extra_info["metrics"] = out
    benchmark.extra_info["chunk_rows"] = R._default_chunk(N_ITEMS)


@pytest.mark.benchmark(group="metrics_5k")
def test_metrics5k_naive_rowwise_argsort(benchmark, embeddings):
    # one round: it takes ~20x the candidate, and a per-row loop has no warm-up to speak of
    ranks = benchmark.pedantic(naive_rowwise_ranks, args=embeddings, rounds=1, iterations=1)
    _check_same_ranks(ranks, embeddings)


@pytest.mark.benchmark(group="metrics_5k")
def test_metrics5k_batched_argsort(benchmark, embeddings):
    ranks = benchmark.pedantic(batched_argsort_ranks, args=embeddings, rounds=1, iterations=1)
    _check_same_ranks(ranks, embeddings)


# ------------------------------------------------------------------------------ large gallery


def _child(mode: str, items: int, dim: int) -> dict:
    cmd = [sys.executable, str(CHILD), "--mode", mode, "--items", str(items), "--dim", str(dim)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_child(benchmark, mode: str, items: int, dim: int) -> dict:
    report = benchmark.pedantic(_child, args=(mode, items, dim), rounds=1, iterations=1)
    # the runner uses the child's own timing of the call (inputs are generated untimed)
    benchmark.extra_info.update(report)
    return report


def _same_recalls(faiss: dict, vilem: dict) -> None:
    """FAISS's top-10 and vilem's ranks give the same Recall@1/5/10 (up to exact ties)."""
    for key in RECALLS:
        assert abs(faiss[key] - vilem[key]) < 0.05, (key, faiss[key], vilem[key])


_METRICS: dict[str | int, dict] = {}  # variant or items -> vilem's (or FAISS's) metrics


@pytest.mark.benchmark(group="large_gallery")
@interleaved(GALLERY, rounds=2)
def test_gallery(benchmark, variant, round_):
    if variant == "faiss_top10":
        require("faiss", "the FAISS peer (pip install faiss-cpu)")
    report = _run_child(benchmark, MODES[variant], 50_000, 128)
    assert report["texts"] == 250_000
    if variant != "bare_chunked_matmul":
        _METRICS.setdefault(variant, report["metrics"])
    if len(_METRICS) == 2:
        _same_recalls(_METRICS["faiss_top10"], _METRICS["chunked_metric_path"])


@pytest.mark.benchmark(group="gallery_scaling")
@pytest.mark.parametrize(("tool", "items"), [(t, n) for t, sizes in SCALING.items() for n in sizes])
def test_gallery_scaling(benchmark, tool, items):
    if tool == "faiss":
        require("faiss", "the FAISS peer (pip install faiss-cpu)")
    report = _run_child(benchmark, "faiss" if tool == "faiss" else "metrics", items, 128)
    assert report["texts"] == PER_ITEM * items
    if tool == "vilem":
        _METRICS[items] = report["metrics"]
    elif items in _METRICS:
        _same_recalls(report["metrics"], _METRICS[items])


@pytest.mark.benchmark(group="large_gallery")
def test_gallery_memory_point_5k(benchmark):
    # a second point of the memory model (docs/scaling.md): the 5,000 x 25,000 case
    _run_child(benchmark, "metrics", N_ITEMS, DIM)
