"""Evaluation metrics, numpy only (no torch on any path): retrieval ranks and recalls
(``ranks``, ``retrieval``), bootstrap intervals and paired deltas (``bootstrap``), probe and
proofreading scores (``scores``), and the metric registry (``info``).

The public functions are re-exported here: ``from vilem import metrics as M; M.ranks(...)``.
"""

from vilem.metrics.bootstrap import paired_bootstrap_delta, percentile_interval, retrieval_intervals
from vilem.metrics.info import (
    BALANCED_SUFFIX,
    ED_FLAG_PREFIX,
    METRICS,
    RECALL_KS,
    MetricSpec,
    display_name,
    find_metric,
    higher_is_better,
    metric_spec,
)
from vilem.metrics.ranking import check_ks, ranks, uses_fused_kernel
from vilem.metrics.retrieval import (
    metrics_from_ranks,
    recall_at_k,
    retrieval_metric_fn,
    retrieval_metrics,
)
from vilem.metrics.scores import (
    average_precision,
    probe_accuracy,
    probe_strata,
    probe_summary,
    proofreading_metrics,
)

__all__ = [
    "BALANCED_SUFFIX",
    "ED_FLAG_PREFIX",
    "METRICS",
    "RECALL_KS",
    "MetricSpec",
    "average_precision",
    "check_ks",
    "display_name",
    "find_metric",
    "higher_is_better",
    "metric_spec",
    "metrics_from_ranks",
    "paired_bootstrap_delta",
    "percentile_interval",
    "probe_accuracy",
    "probe_strata",
    "probe_summary",
    "proofreading_metrics",
    "ranks",
    "recall_at_k",
    "retrieval_intervals",
    "retrieval_metric_fn",
    "retrieval_metrics",
    "uses_fused_kernel",
]
