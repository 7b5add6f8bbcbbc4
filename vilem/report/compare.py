"""Comparing result cells: which way a metric is better, each task's main metric, and paired
bootstrap differences between two models evaluated on the same queries.

A difference is *paired*: every resample draws one set of query indices and scores both models on
it, so the interval reflects how much the gap, not each score, depends on the query sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vilem import metrics as M
from vilem.errors import ConfigError

MAIN_METRIC = {"retrieval": "rsum", "probe": "macro", "proofread": "ed_f1"}
RECALL_KS = (1, 5, 10)
DIRECTIONS = ("t2i", "i2t")
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def higher_is_better(metric: str) -> bool:
    """Direction of ``metric``: from ``vilem.metrics.METRIC_INFO`` when it knows the name, else
    ranks (names with ``medr``/``meanr``) are lower-is-better and everything else higher
    (per-category probe accuracies, and metrics a newer vilem may add)."""
    info = M.METRIC_INFO.get(metric)
    if isinstance(info, dict) and "higher_is_better" in info:
        return bool(info["higher_is_better"])
    return not ("medr" in metric or "meanr" in metric)


def main_metric(task: str, available: Sequence[str] = ()) -> str | None:
    """The metric a task is ranked by (rsum, macro, ed_f1), else the first available one."""
    if task in MAIN_METRIC:
        return MAIN_METRIC[task]
    return available[0] if available else None


@dataclass(frozen=True)
class Delta:
    """``model - baseline`` on one metric, with a paired bootstrap 95% interval when possible.

    Attributes:
        metric: the metric compared.
        value: the difference of the recorded values; None when either record lacks the metric.
        lo, hi: 95% percentile interval of the difference; None when it cannot be computed.
        higher_is_better: the metric's direction, so ``better`` means better, not larger.
        note: why the interval (or the value) is missing.
    """

    metric: str
    value: float | None
    lo: float | None
    hi: float | None
    higher_is_better: bool
    note: str = ""

    @property
    def significant(self) -> bool | None:
        """True when the interval excludes 0; None when there is no interval."""
        if self.lo is None or self.hi is None:
            return None
        return not (self.lo <= 0.0 <= self.hi)

    @property
    def better(self) -> bool | None:
        """Whether the model's point estimate is better than the baseline's."""
        if self.value is None:
            return None
        return self.value > 0 if self.higher_is_better else self.value < 0

    @property
    def verdict(self) -> str:
        """``beats`` (significantly better), ``worse`` (significantly worse), ``tie`` (interval
        contains 0) or ``unknown`` (no interval, or no value)."""
        if self.value is None or self.significant is None:
            return "unknown"
        if not self.significant:
            return "tie"
        return "beats" if self.better else "worse"


# Per-query inputs of one comparison: model A's parts, model B's parts (each part a query set
# resampled on its own, e.g. (t2i_ranks, i2t_ranks) or one part per probe category) and the
# metric as a function of one model's parts.
_Paired = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], Callable[[tuple], float]]


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


def _retrieval_inputs(metric: str, a: dict, b: dict) -> _Paired:
    (ta, tb), (ia, ib) = (_paired(a, b, f"{d}_ranks") for d in DIRECTIONS)
    try:
        fn = M.retrieval_metric_fn(metric, RECALL_KS)
    except ConfigError as exc:
        raise ValueError(f"no per-query recipe for {metric!r}") from exc
    return (ta, ia), (tb, ib), fn


def _probe_inputs(metric: str, a: dict, b: dict) -> _Paired:
    ca, cb = a.get("category"), b.get("category")
    if not isinstance(ca, list) or ca != cb:
        raise ValueError("the two probe runs do not list the same probes (category lists differ)")
    va, vb = _paired(a, b, "correct")
    if len(ca) != len(va):
        raise ValueError(f"per-query category has {len(ca)} entries for {len(va)} probes")
    cats = np.asarray([str(c) for c in ca])
    names = sorted(set(cats.tolist()))
    # one part per category: each is resampled on its own, which keeps category sizes fixed as
    # the macro mean assumes (the same scheme as the metric's own intervals)
    pa = tuple(100.0 * va[cats == c] for c in names)
    pb = tuple(100.0 * vb[cats == c] for c in names)
    sizes = np.array([len(p) for p in pa], dtype=np.float64)
    if metric == "macro":
        return pa, pb, lambda parts: float(np.mean([p.mean() for p in parts]))
    if metric == "overall":
        return pa, pb, lambda parts: float(np.dot([p.mean() for p in parts], sizes) / sizes.sum())
    if metric.startswith("acc_") and metric[4:] in names:
        i = names.index(metric[4:])
        return pa, pb, lambda parts: float(parts[i].mean())
    raise ValueError(f"no per-query recipe for {metric!r}")


def _inputs(task: str, metric: str, a: dict, b: dict) -> _Paired:
    if task == "retrieval":
        return _retrieval_inputs(metric, a, b)
    if task == "probe":
        return _probe_inputs(metric, a, b)
    raise ValueError(f"no per-query recipe for task {task!r}")


def _metric_value(record: dict, metric: str) -> float | None:
    value = record.get("metrics", {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def paired_delta(
    model: dict[str, Any],
    baseline: dict[str, Any],
    metric: str,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Delta:
    """``model - baseline`` on ``metric`` for two ok records of the same (dataset, split, task).

    The interval comes from each record's ``per_query`` block (retrieval: ``t2i_ranks`` and
    ``i2t_ranks``; probe: ``correct`` and ``category``); without it, or when the two runs did not
    score the same queries, the interval is None and ``note`` says why.
    """
    direction = higher_is_better(metric)
    va, vb = _metric_value(model, metric), _metric_value(baseline, metric)
    if va is None or vb is None:
        who = "the model" if va is None else "the baseline"
        return Delta(metric, None, None, None, direction, f"{who} has no {metric}")
    value = va - vb
    rev_a, rev_b = model["dataset"].get("revision"), baseline["dataset"].get("revision")
    if rev_a and rev_b and rev_a != rev_b:
        note = f"dataset revisions differ ({rev_a} vs {rev_b}): not the same queries"
        return Delta(metric, value, None, None, direction, note)
    pa, pb = model.get("per_query"), baseline.get("per_query")
    if not isinstance(pa, dict) or not isinstance(pb, dict):
        missing = " and ".join(
            w for w, p in (("the model", pa), ("the baseline", pb)) if not isinstance(p, dict)
        )
        return Delta(metric, value, None, None, direction, f"no per-query results for {missing}")
    try:
        parts_a, parts_b, fn = _inputs(model["task"], metric, pa, pb)
    except ValueError as exc:
        return Delta(metric, value, None, None, direction, str(exc))
    # the value stays the recorded difference; the bootstrap supplies only the interval
    _, lo, hi = M.paired_bootstrap_delta(parts_a, parts_b, fn, B=resamples, seed=seed)
    return Delta(metric, value, lo, hi, direction)
