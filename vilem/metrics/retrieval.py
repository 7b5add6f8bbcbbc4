"""Retrieval metrics in percent: recall@K both ways, RSUM, median and mean rank (semantics in
``vilem.metrics.ranking``), with bootstrap intervals; ``retrieval_metric_fn`` names one of them as a
function of the ranks for paired deltas."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vilem.errors import ConfigError
from vilem.metrics.bootstrap import retrieval_intervals
from vilem.metrics.info import METRICS, RECALL_KS
from vilem.metrics.ranking import check_ks, int_param, ranks
from vilem.registry import closest


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Percent of queries whose (best) positive has rank <= k."""
    return float(_recall(ranks, k))


def _recall(ranks: Any, k: int) -> Any:
    """``recall_at_k`` over the last axis (a float, or one per bootstrap resample)."""
    return 100.0 * np.mean(np.asarray(ranks) <= k, axis=-1)


def metrics_from_ranks(
    t2i_ranks: np.ndarray, i2t_ranks: np.ndarray, ks: Sequence[int] = RECALL_KS
) -> dict[str, float]:
    """Recall@k (percent), RSUM (sum of the 2 x len(ks) recalls) and median/mean ranks."""
    ks = check_ks(ks)
    out: dict[str, float] = {}
    for d, r in (("t2i", t2i_ranks), ("i2t", i2t_ranks)):
        for k in ks:
            out[f"{d}_R@{k}"] = recall_at_k(r, k)
    out["rsum"] = float(sum(out[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in ks))
    for d, r in (("t2i", t2i_ranks), ("i2t", i2t_ranks)):
        out[f"{d}_medr"] = float(np.median(r))
        out[f"{d}_meanr"] = float(np.mean(r))
    return out


def retrieval_metrics(
    item_emb: Any,
    text_emb: Any,
    text_to_item: Any,
    *,
    ks: Sequence[int] = RECALL_KS,
    chunk_size: int | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    i2t_ranking: str = "all-texts",
) -> dict[str, Any]:
    """Text->item and item->text retrieval metrics in percent (see the module docstring).

    Args:
        item_emb, text_emb, text_to_item, chunk_size, i2t_ranking: as for ``ranks``.
        ks: the k of recall@k; RSUM sums all 2 x len(ks) recalls.
        bootstrap: number of resamples for 95% intervals; 0 computes none.
        seed: seed of the resampling.

    Returns:
        ``t2i_R@k``, ``i2t_R@k``, ``rsum``, ``t2i_medr``, ``t2i_meanr``, ``i2t_medr``,
        ``i2t_meanr``; with ``bootstrap`` > 0 also ``intervals``: ``{metric: [lo, hi]}``.
    """
    ks = check_ks(ks)
    bootstrap = int_param(bootstrap, "bootstrap", 0)
    t2i, i2t = ranks(
        item_emb, text_emb, text_to_item, chunk_size=chunk_size, i2t_ranking=i2t_ranking
    )
    out: dict[str, Any] = metrics_from_ranks(t2i, i2t, ks)
    if bootstrap:
        out["intervals"] = retrieval_intervals(t2i, i2t, ks, bootstrap, seed)
    return out


def retrieval_metric_fn(
    name: str, ks: Sequence[int] = RECALL_KS
) -> Callable[[tuple[np.ndarray, np.ndarray]], float]:
    """A function of ``(t2i_ranks, i2t_ranks)`` giving metric ``name`` (for
    ``paired_bootstrap_delta``); ``rsum`` sums recall at ``ks``."""
    ks = check_ks(ks)
    if name == "rsum":
        return batched_metric(lambda r: sum(_recall(x, k) for x in r for k in ks))
    direction, _, stat = name.partition("_")
    if direction in ("t2i", "i2t"):
        d = 0 if direction == "t2i" else 1
        if stat.startswith("R@") and stat[2:].isdigit() and int(stat[2:]) >= 1:
            k = int(stat[2:])
            return batched_metric(lambda r: _recall(r[d], k))
        if stat == "medr":
            return batched_metric(lambda r: np.median(r[d], axis=-1))
        if stat == "meanr":
            return batched_metric(lambda r: np.mean(r[d], axis=-1))

    known = [n for n in METRICS if n.startswith(("t2i", "i2t", "rsum"))]
    known += [f"{d}_R@{k}" for d in ("t2i", "i2t") for k in RECALL_KS]
    raise ConfigError(f"unknown retrieval metric {name!r}{closest(name, known)}")


def batched_metric(batched: Callable[[Any], Any]) -> Callable[[Any], float]:
    """A metric of per-query values from ``batched``, written over the last axis: the returned
    function gives the float for one set of values, and its ``batched`` attribute the values of
    a leading axis of bootstrap resamples (``paired_bootstrap_delta`` scores a block per call)."""

    def fn(values: Any) -> float:
        return float(batched(values))

    fn.batched = batched
    return fn
