"""The metric registry: for every metric name a result can hold, which way is better, its unit
and how tables print it. The one source of metric direction for leaderboards, deltas and plots.

Fixed names are listed in ``METRICS``; three families are recognised by pattern: ``t2i_R@K`` /
``i2t_R@K`` for any K >= 1, per-category probe accuracies ``acc_<category>`` (with ``_bal`` for
the word-balanced one), and the proofreading ED head's detection rate per kind of edit
``ed_flag_<category>`` (with ``_binding`` / ``_absent``: the new value is on another object /
absent from the item).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vilem.errors import ConfigError
from vilem.registry import closest

RECALL_KS = (1, 5, 10)  # the recall@K a retrieval result reports unless told otherwise
DIRECTIONS = {"t2i": "T→I", "i2t": "I→T"}
BALANCED_SUFFIX = "_bal"  # acc_<category>_bal: the word-balanced accuracy of a category
ED_FLAG_PREFIX = "ed_flag_"  # ed_flag_<group>: share of a group's edits the ED head flags


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    unit: str  # "%" or "rank"
    display: str  # column title


def _spec(name: str, up: bool, unit: str, display: str) -> MetricSpec:
    return MetricSpec(name, up, unit, display)


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in [
        _spec("rsum", True, "%", "RSUM"),
        *(
            _spec(f"{d}_{stat}", False, "rank", f"{arrow} {title}")
            for d, arrow in DIRECTIONS.items()
            for stat, title in (("medr", "MedR"), ("meanr", "MeanR"))
        ),
        _spec("macro", True, "%", "Probe acc. (macro)"),
        _spec("overall", True, "%", "Probe acc. (all)"),
        _spec("ed_precision", True, "%", "ED precision"),
        _spec("ed_recall", True, "%", "ED recall"),
        _spec("ed_f1", True, "%", "ED F1"),
        _spec("ed_ap", True, "%", "ED AP"),
        _spec("ec_accuracy", True, "%", "EC top-1 acc."),
    ]
}
_RECALL = re.compile(r"(t2i|i2t)_R@([1-9][0-9]*)")


def find_metric(name: str) -> MetricSpec | None:
    """The spec of ``name``, or None for a name vilem does not know."""
    if name in METRICS:
        return METRICS[name]
    match = _RECALL.fullmatch(name)
    if match:
        d, k = match.groups()
        return MetricSpec(name, True, "%", f"{DIRECTIONS[d]} R@{k}")
    if name.startswith("acc_") and len(name) > 4:
        label = name[4:].replace(BALANCED_SUFFIX, " (word-balanced)")
        return MetricSpec(name, True, "%", f"Acc. {label}")
    if name.startswith(ED_FLAG_PREFIX) and len(name) > len(ED_FLAG_PREFIX):
        group = name[len(ED_FLAG_PREFIX) :].split("_")
        label = " ".join(
            {"binding": "(value on another object)", "absent": "(value absent)"}.get(w, w)
            for w in group
        )
        return MetricSpec(name, True, "%", f"ED flags {label}")
    return None


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name``; raises ConfigError (with a did-you-mean) for an unknown name."""
    spec = find_metric(name)
    if spec is None:
        known = [*METRICS, *(f"{d}_R@{k}" for d in DIRECTIONS for k in RECALL_KS)]
        raise ConfigError(f"unknown metric {name!r}{closest(name, known)}")
    return spec


def higher_is_better(name: str) -> bool:
    """Direction of ``name``; a metric vilem does not know (a newer version's) counts as
    higher-is-better."""
    spec = find_metric(name)
    return True if spec is None else spec.higher_is_better


def display_name(name: str) -> str:
    spec = find_metric(name)
    return name if spec is None else spec.display
