"""Paired-delta recipes: from two runs' per-query records (the same queries, scored under the
same protocol), the parts each bootstrap resample draws from and the metric as a function of one
model's parts. A task names its recipe in the task registry (``vilem.eval.tasks``); ``ValueError``
says why none applies."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from vilem.errors import ConfigError
from vilem.metrics.info import BALANCED_SUFFIX, RECALL_KS
from vilem.metrics.retrieval import batched_metric, retrieval_metric_fn
from vilem.metrics.scores import probe_strata, probe_summary

if TYPE_CHECKING:
    from vilem.results import Protocol

# Per-query inputs of one comparison: model A's parts, model B's parts (each part a query set
# resampled on its own, e.g. (t2i_ranks, i2t_ranks) or one part per probe category) and the
# metric as a function of one model's parts.
Paired = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], Callable[[tuple], float]]


def _as_vector(values: Any, what: str) -> np.ndarray:
    if not isinstance(values, list) or not values:
        raise ValueError(f"per-query {what} is missing or empty")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"per-query {what} is not a list of numbers") from exc
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise ValueError(f"per-query {what} is not a flat list of finite numbers")
    return arr


def _paired(a: dict, b: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    va, vb = _as_vector(a.get(key), key), _as_vector(b.get(key), key)
    if len(va) != len(vb):
        raise ValueError(
            f"per-query {key} differ in length ({len(va)} vs {len(vb)}): not the same queries"
        )
    return va, vb


def retrieval_inputs(metric: str, a: dict, b: dict, protocol: Protocol | None = None) -> Paired:
    """``rsum`` sums recall at the protocol's Ks, as the recorded value does."""
    (ta, tb), (ia, ib) = (_paired(a, b, f"{d}_ranks") for d in ("t2i", "i2t"))
    ks = protocol.recall_ks if protocol is not None else RECALL_KS
    try:
        fn = retrieval_metric_fn(metric, ks)
    except ConfigError as exc:
        raise ValueError(f"no per-query recipe for {metric!r}") from exc
    return (ta, ia), (tb, ib), fn


def probe_inputs(metric: str, a: dict, b: dict, protocol: Protocol | None = None) -> Paired:
    """Per probe stratum (the protocol changes nothing a probe recipe needs)."""
    ca, cb = a.get("category"), b.get("category")
    if not isinstance(ca, list) or ca != cb:
        raise ValueError("the two probe runs do not list the same probes (category lists differ)")
    va, vb = _paired(a, b, "correct")
    if len(ca) != len(va):
        raise ValueError(f"per-query category has {len(ca)} entries for {len(va)} probes")
    words = a.get("word")
    if words is not None and (words != b.get("word") or len(words) != len(ca)):
        raise ValueError("the two probe runs do not list the same probe words")
    names, strata, balanced = probe_strata(ca, words)
    # one part per stratum (a category, or a word of a balanced one): each is resampled on its
    # own, which keeps the sizes the means assume (the same scheme as the metric's intervals)
    flat = [idx for parts in strata for idx in parts]
    groups = [c for c, parts in enumerate(strata) for _ in parts]
    sizes = np.array([len(idx) for idx in flat], dtype=np.float64)
    pa = tuple(va[idx] for idx in flat)
    pb = tuple(vb[idx] for idx in flat)

    def summary(parts: tuple) -> dict[str, np.ndarray]:
        # (S,) hit counts, or (S, m) for m bootstrap resamples ((m, n) per part)
        hits = np.array([p.sum(axis=-1) for p in parts], dtype=np.float64)
        return probe_summary(hits, sizes, groups, balanced)

    def recipe(pick: Callable[[dict[str, np.ndarray]], np.ndarray]) -> Callable[[tuple], float]:
        return batched_metric(lambda parts: pick(summary(parts)))

    if metric in ("macro", "overall"):
        return pa, pb, recipe(lambda s: s[metric])
    name = metric.removeprefix("acc_")
    kind = "acc"
    if name.endswith(BALANCED_SUFFIX):
        name, kind = name.removesuffix(BALANCED_SUFFIX), "bal"
    if (
        metric.startswith("acc_")
        and name in names
        and (kind == "acc" or balanced[names.index(name)])
    ):
        i = names.index(name)
        return pa, pb, recipe(lambda s: s[kind][i])
    raise ValueError(f"no per-query recipe for {metric!r}")
