"""One retrieval-metric run in a fresh process, so its peak memory is its own.

Run by ``test_metrics_perf.py``; prints one JSON line: the seconds of the timed call only (input
generation excluded), the peak resident set size of the whole process (``VmHWM``: interpreter,
numpy, inputs and computation) and of the call alone with the inputs resident.

    python benchmarks/perf/gallery_child.py --mode metrics --items 50000 --per-item 5 --dim 128

Modes: ``metrics`` runs ``vilem.metrics.retrieval_metrics`` (the chunked path); ``matmul``
runs only the bare chunked similarity GEMM with the same chunk size (the floor); ``faiss`` is the
peer people reach for: exact top-10 search with ``faiss.IndexFlatIP`` in both directions (an
index of the items searched by every text, then an index of the texts searched by every item,
the first freed before the second is built), Recall@1/5/10 from its top-10 lists (no median or
mean rank: a top-10 search has no rank beyond 10). FAISS runs as many OpenMP threads as NumPy's
BLAS (``--threads``, default: what BLAS uses).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (e.g. VmHWM, VmRSS) in bytes; -1 if unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the call's own peak can be read."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def make_inputs(
    n_items: int, per_item: int, dim: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit item vectors; each text is its item plus Gaussian noise, re-normalised (so the
    positives score high, as with a trained model). Built in blocks to keep temporaries small."""
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((n_items, dim), dtype=np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    owner = np.repeat(np.arange(n_items, dtype=np.int64), per_item)
    texts = np.empty((len(owner), dim), np.float32)
    block = 1 << 16
    for s in range(0, len(owner), block):
        t = items[owner[s : s + block]]
        t += (noise / np.sqrt(dim)) * rng.standard_normal(t.shape, dtype=np.float32)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        texts[s : s + block] = t
    return items, texts, owner


def bare_chunked_matmul(items: np.ndarray, texts: np.ndarray, chunk: int) -> None:
    """The similarity GEMM alone, in the metric path's chunks, into one reused buffer."""
    out = np.empty((min(chunk, len(texts)), len(items)), np.float32)
    for start in range(0, len(texts), chunk):
        rows = min(chunk, len(texts) - start)
        np.matmul(texts[start : start + rows], items.T, out=out[:rows])


def _blas_threads() -> int:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 0
    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=0)


def faiss_top10(
    items: np.ndarray, texts: np.ndarray, owner: np.ndarray, threads: int, k: int = 10
) -> dict[str, float]:
    """FAISS exact inner-product top-k in both directions; recalls (%) from the top-k lists."""
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(items)
    _, top = index.search(texts, k)  # (M, k) item indices per text
    del index
    hit_t2i = top == owner[:, None]
    del top
    index = faiss.IndexFlatIP(texts.shape[1])
    index.add(texts)
    _, top = index.search(items, k)  # (N, k) text indices per item
    del index
    hit_i2t = owner[top] == np.arange(len(items))[:, None]
    out = {}
    for K in (1, 5, 10):
        out[f"t2i_R@{K}"] = 100.0 * float(hit_t2i[:, :K].any(axis=1).mean())
        out[f"i2t_R@{K}"] = 100.0 * float(hit_i2t[:, :K].any(axis=1).mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("metrics", "matmul", "faiss"), required=True)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--per-item", type=int, default=5)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--noise", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="FAISS threads (0: as BLAS)")
    args = parser.parse_args(argv)
    threads = args.threads or _blas_threads() or 1
    if args.mode == "faiss":
        import faiss  # noqa: F401  (loaded before the RSS baseline, as numpy is)

    from vilem import metrics as M
    from vilem.metrics import ranking as R

    rss_start = _status_bytes("VmRSS")
    items, texts, owner = make_inputs(args.items, args.per_item, args.dim, args.noise, args.seed)
    rss_inputs = _status_bytes("VmRSS")
    peak_before_call = _status_bytes("VmHWM")
    reset = _reset_peak()
    # the metric path's own default chunk, so the floor does the same GEMM shapes
    chunk = R._default_chunk(len(items))
    kernel_s = 0.0
    if args.mode == "metrics" and M.uses_fused_kernel(len(items), len(texts)):
        # load (or on a fresh install compile, once: numba caches it on disk) the fused kernel
        # untimed, as the other cases warm up; its cost is reported on its own
        tick = time.perf_counter()
        R._fused.kernel()
        kernel_s = time.perf_counter() - tick
    start = time.perf_counter()
    if args.mode == "metrics":
        scores = M.retrieval_metrics(items, texts, owner)
    elif args.mode == "faiss":
        scores = faiss_top10(items, texts, owner, threads)
    else:
        bare_chunked_matmul(items, texts, chunk)
        scores = {}
    seconds = time.perf_counter() - start
    peak_call = _status_bytes("VmHWM")
    report = {
        "mode": args.mode,
        "items": len(items),
        "texts": len(texts),
        "dim": args.dim,
        "chunk_rows": chunk if args.mode != "faiss" else 0,
        "threads": threads,
        "blas_threads": _blas_threads(),
        "seconds": seconds,
        "kernel_load_s": kernel_s,
        "input_bytes": items.nbytes + texts.nbytes + owner.nbytes,
        "rss_start_bytes": rss_start,
        "rss_with_inputs_bytes": rss_inputs,
        # whole-process peak: the larger of the peak before the reset and the call's peak
        "peak_rss_bytes": max(peak_before_call, peak_call),
        "peak_rss_call_bytes": peak_call if reset else -1,
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "metrics": {k: v for k, v in scores.items() if isinstance(v, float)},
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
