"""Percentile bootstrap intervals of retrieval metrics and paired bootstrap deltas between two
models scored on the same queries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vilem.errors import DataError
from vilem.metrics.info import RECALL_KS
from vilem.metrics.ranking import check_ks, int_param

_BOOT_CELLS = 1 << 22  # resampled values held at once (32 MiB of int64)


def percentile_interval(replicates: np.ndarray) -> list[float]:
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return [float(lo), float(hi)]


def _rank_replicates(
    r: np.ndarray, ks: tuple[int, ...], resamples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Each metric of one direction on ``resamples`` resamples of its queries."""
    n = len(r)
    out = {name: np.empty(resamples) for name in [f"R@{k}" for k in ks] + ["medr", "meanr"]}
    rows = max(1, min(resamples, _BOOT_CELLS // n))
    for s in range(0, resamples, rows):
        x = r[rng.integers(0, n, size=(min(rows, resamples - s), n))]
        for k in ks:
            out[f"R@{k}"][s : s + len(x)] = 100.0 * (x <= k).mean(axis=1)
        out["meanr"][s : s + len(x)] = x.mean(axis=1)
        out["medr"][s : s + len(x)] = np.median(x, axis=1)
    return out


def retrieval_intervals(
    t2i_ranks: np.ndarray,
    i2t_ranks: np.ndarray,
    ks: Sequence[int] = RECALL_KS,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals ``{metric: [lo, hi]}`` of ``metrics_from_ranks``.

    Text->item metrics resample texts, item->text metrics resample items; RSUM sums the two
    directions' recalls over independent resamples. Deterministic given ``seed``.
    """
    ks = check_ks(ks)
    resamples = int_param(resamples, "bootstrap", 1)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
    reps = {
        d: _rank_replicates(np.asarray(r), ks, resamples, g)
        for d, r, g in (("t2i", t2i_ranks, rngs[0]), ("i2t", i2t_ranks, rngs[1]))
    }
    out = {
        f"{d}_{name}": percentile_interval(v) for d in ("t2i", "i2t") for name, v in reps[d].items()
    }
    out["rsum"] = percentile_interval(sum(reps[d][f"R@{k}"] for d in ("t2i", "i2t") for k in ks))
    return out


def _per_query_parts(values: Any, what: str) -> tuple[list[np.ndarray], bool]:
    """(1-D parts, whether ``values`` was a tuple of parts rather than one flat sequence)."""
    tupled = isinstance(values, (tuple, list)) and all(np.ndim(p) >= 1 for p in values)
    parts = [np.asarray(p) for p in values] if tupled else [np.asarray(values)]
    for arr in parts:
        if arr.ndim != 1 or arr.size == 0:
            raise DataError(f"{what} must be non-empty 1-D per-query arrays, got {arr.shape}")
    return parts, tupled


def paired_bootstrap_delta(
    ranks_a: Any,
    ranks_b: Any,
    metric_fn: Callable[[Any], float],
    B: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Difference of a metric between two models scored on the SAME queries, with a 95%
    paired-bootstrap percentile interval.

    Each resample draws query indices once and applies them to both models, so the
    interval reflects the models' difference on a random query set, not each model's own
    spread; when it excludes 0 the delta is significant at the 5% level (a leaderboard's
    delta column). Each part of a tuple input (e.g. ``(t2i_ranks, i2t_ranks)``) is
    resampled separately: parts are different query sets.

    Args:
        ranks_a: per-query values of model A (e.g. ranks from ``ranks``, or 0/1 probe
            correctness): a 1-D array, or a tuple of 1-D arrays.
        ranks_b: the same structure for model B, query for query.
        metric_fn: maps one model's per-query values (same structure) to a float, e.g.
            ``retrieval_metric_fn("rsum")`` or ``recall_at_k``-based lambdas. If it has a
            ``batched`` attribute, that function takes the same structure with a leading
            resample axis ((m, n) per part) and returns the m values; the resamples (and so
            the interval) are the same, drawn and scored a block at a time.
        B: number of resamples.
        seed: seed of the resampling.

    Returns:
        (delta, lo, hi): ``metric_fn(ranks_a) - metric_fn(ranks_b)`` and its interval.

    Raises:
        DataError: when the two inputs do not hold the same number of queries.
    """
    B = int_param(B, "B", 1)
    (pa, tupled), (pb, _) = (
        _per_query_parts(ranks_a, "ranks_a"),
        _per_query_parts(ranks_b, "ranks_b"),
    )
    if [len(p) for p in pa] != [len(p) for p in pb]:
        raise DataError(
            f"paired comparison needs the same queries: ranks_a has "
            f"{[len(p) for p in pa]} and ranks_b {[len(p) for p in pb]}"
        )

    def value(parts: list[np.ndarray]) -> float:
        return float(metric_fn(tuple(parts) if tupled else parts[0]))

    delta = value(pa) - value(pb)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(pa))]
    deltas = np.empty(B)
    batched = getattr(metric_fn, "batched", None)
    if batched is not None:  # the same resamples, a block of them per call
        block = max(1, min(B, _BOOT_CELLS // sum(len(p) for p in pa)))
        for s in range(0, B, block):
            m = min(block, B - s)
            idx = [g.integers(0, len(p), (m, len(p))) for g, p in zip(rngs, pa, strict=True)]

            def rows(parts: list[np.ndarray], idx: list[np.ndarray] = idx) -> Any:
                drawn = tuple(p[i] for p, i in zip(parts, idx, strict=True))
                return drawn if tupled else drawn[0]

            deltas[s : s + m] = np.asarray(batched(rows(pa))) - np.asarray(batched(rows(pb)))
        lo, hi = percentile_interval(deltas)
        return delta, lo, hi
    for b in range(B):
        idx = [g.integers(0, len(p), len(p)) for g, p in zip(rngs, pa, strict=True)]
        a = [p[i] for p, i in zip(pa, idx, strict=True)]
        deltas[b] = value(a) - value([p[i] for p, i in zip(pb, idx, strict=True)])
    lo, hi = percentile_interval(deltas)
    return delta, lo, hi
