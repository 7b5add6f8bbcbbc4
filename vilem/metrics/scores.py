"""Probe accuracy (overall, per category, word-balanced, macro) and proofreading scores (error
detection precision / recall / F1 / AP, error-correction accuracy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vilem.errors import DataError
from vilem.metrics.bootstrap import percentile_interval
from vilem.metrics.info import BALANCED_SUFFIX
from vilem.metrics.ranking import int_param


def probe_strata(
    categories: Sequence[str], words: Sequence[str | None] | None = None
) -> tuple[list[str], list[list[np.ndarray]], list[bool]]:
    """Probe indices grouped for scoring: (category names, per category the index arrays of its
    strata, whether the category is word-balanced).

    A category is word-balanced when every one of its probes names the key word of its positive
    (``words``, e.g. "above" for a relation probe whose negative says "below"); its strata are
    then one per word, else the whole category is one stratum."""
    cats = np.asarray([str(c) for c in categories])
    names = sorted(set(cats.tolist()))
    strata, balanced = [], []
    for c in names:
        idx = np.flatnonzero(cats == c)
        keyed = words is not None and all(words[i] is not None for i in idx)
        if keyed:
            keys = np.asarray([str(words[i]) for i in idx])
            strata.append([idx[keys == w] for w in sorted(set(keys.tolist()))])
        else:
            strata.append([idx])
        balanced.append(keyed)
    return names, strata, balanced


def probe_summary(
    hits: np.ndarray, sizes: np.ndarray, groups: list[int], balanced: list[bool]
) -> dict[str, np.ndarray]:
    """Probe metrics from per-stratum hit counts ``hits`` (S,) or (S, B) replicates.

    ``groups[s]`` is the category index of stratum s. Returns arrays for ``overall``, ``macro``
    and per category ``acc`` (C, ...) and ``bal`` (C, ...; the mean of its strata's
    accuracies). The macro mean takes the balanced accuracy of word-balanced categories, so an
    image-blind model that always prefers one word scores 50% there as everywhere."""
    g = np.asarray(groups)
    n_cats = len(balanced)
    rate = 100.0 * hits / (sizes if hits.ndim == 1 else sizes[:, None])
    acc = np.stack([100.0 * hits[g == c].sum(0) / sizes[g == c].sum() for c in range(n_cats)])
    bal = np.stack([rate[g == c].mean(0) for c in range(n_cats)])
    chosen = np.where(np.asarray(balanced).reshape(-1, *[1] * (acc.ndim - 1)), bal, acc)
    return {
        "overall": 100.0 * hits.sum(0) / sizes.sum(),
        "macro": chosen.mean(0),
        "acc": acc,
        "bal": bal,
    }


def probe_accuracy(
    pos_scores: Any,
    neg_scores: Any,
    categories: Sequence[str],
    *,
    words: Sequence[str | None] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of fine-grained probes: a probe is right when ``pos > neg`` STRICTLY; a tie
    counts as wrong (a model that cannot tell the texts apart earns nothing).

    Args:
        pos_scores: (P,) similarity of each probe's item with its true text.
        neg_scores: (P,) similarity with the edited text.
        categories: (P,) category of each probe.
        words: optional (P,) key word of each probe's positive (None where there is none);
            a category whose probes all have one is also scored word-balanced.
        bootstrap: resamples for 95% intervals (probes resampled within each category, and
            within each word of a balanced one, which keeps the sizes the means assume);
            0 computes none.
        seed: seed of the resampling.

    Returns:
        ``overall`` (micro, percent), ``macro`` (mean over categories, balanced ones by their
        balanced accuracy), ``acc_<category>`` per category, ``acc_<category>_bal`` (mean of
        the per-word accuracies) for balanced categories, ``counts`` ({category: probes}) and,
        with bootstrap, ``intervals`` (the same keys: [lo, hi]).
    """
    bootstrap = int_param(bootstrap, "bootstrap", 0)
    pos = np.asarray(pos_scores, dtype=np.float64)
    neg = np.asarray(neg_scores, dtype=np.float64)
    cats = np.asarray([str(c) for c in categories])
    if pos.ndim != 1 or pos.size == 0 or pos.shape != neg.shape or cats.shape != pos.shape:
        raise DataError(
            f"probe scores and categories must be equal-length, non-empty 1-D: pos {pos.shape}, "
            f"neg {neg.shape}, categories {cats.shape}"
        )
    if words is not None and len(words) != len(pos):
        raise DataError(f"probe words has {len(words)} entries for {len(pos)} probes")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise DataError("probe scores hold NaN or inf")
    correct = pos > neg
    names, strata, balanced = probe_strata(categories, words)
    flat = [idx for parts in strata for idx in parts]
    groups = [c for c, parts in enumerate(strata) for _ in parts]
    sizes = np.array([len(idx) for idx in flat], dtype=np.float64)
    hits = np.array([correct[idx].sum() for idx in flat], dtype=np.float64)

    def named(summary: dict[str, np.ndarray], fn: Callable[[np.ndarray], Any]) -> dict:
        out = {"overall": fn(summary["overall"]), "macro": fn(summary["macro"])}
        for c, name in enumerate(names):
            out[f"acc_{name}"] = fn(summary["acc"][c])
            if balanced[c]:
                out[f"acc_{name}{BALANCED_SUFFIX}"] = fn(summary["bal"][c])
        return out

    out: dict[str, Any] = named(probe_summary(hits, sizes, groups, balanced), float)
    out["counts"] = {
        c: int(sum(len(i) for i in parts)) for c, parts in zip(names, strata, strict=True)
    }
    if bootstrap:
        rng = np.random.default_rng(seed)
        # resampling n_s probes with replacement gives Binomial(n_s, hits_s / n_s) hits: exact
        reps = rng.binomial(sizes[:, None].astype(int), (hits / sizes)[:, None],
                            (len(sizes), bootstrap)).astype(np.float64)  # fmt: skip
        out["intervals"] = named(probe_summary(reps, sizes, groups, balanced), percentile_interval)
    return out


def average_precision(is_positive: Any, scores: Any) -> float:
    """Average precision as scikit-learn defines it: ``sum_n (R_n - R_{n-1}) P_n`` over
    the distinct score thresholds, highest first (tied scores enter together). In [0, 1]."""
    y = np.asarray(is_positive, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not y.any():
        raise DataError("average precision needs at least one positive")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each threshold
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / tp[-1]
    return float(np.sum(recall_gain * precision))


def proofreading_metrics(
    error_prob: Any,
    is_error: Any,
    valid_mask: Any,
    correction_pred: Any = None,
    correction_target: Any = None,
) -> dict[str, Any]:
    """Token-level error detection (ED) and correction (EC) scores of the proofreading probe.

    A valid token is flagged when ``error_prob > 0.5`` (the argmax of the 2-way ED head; an
    exact 0.5 is "correct"). Precision is 0 when nothing is flagged.

    Args:
        error_prob: ED probability that each token was replaced, any shape (e.g. (B, L)).
        is_error: same shape, true where the token was really edited.
        valid_mask: same shape, true for scored tokens (not padding / special tokens).
        correction_pred: optional, same shape: the EC head's top-1 token id.
        correction_target: optional, same shape: the original token id.

    Returns:
        ``ed_precision``, ``ed_recall``, ``ed_f1``, ``ed_ap`` (average precision), and with
        the correction arrays ``ec_accuracy`` (top-1 at truly edited positions), all in
        percent; ``counts``: {"tokens", "edited", "flagged"}.

    Raises:
        DataError: mismatched shapes, probabilities outside [0, 1], or no edited token.
    """
    prob = np.asarray(error_prob, dtype=np.float64)
    err = np.asarray(is_error).astype(bool)
    valid = np.asarray(valid_mask).astype(bool)
    if prob.shape != err.shape or prob.shape != valid.shape:
        raise DataError(
            f"error_prob {prob.shape}, is_error {err.shape} and valid_mask {valid.shape} "
            "must have the same shape"
        )
    p, e = prob[valid], err[valid]
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise DataError("error_prob must hold probabilities in [0, 1] at valid tokens")
    if not e.any():
        raise DataError("proofreading needs at least one edited token among the valid tokens")
    flagged = p > 0.5
    tp = int(np.sum(flagged & e))
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / e.sum()
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    out: dict[str, Any] = {
        "ed_precision": 100.0 * float(precision),
        "ed_recall": 100.0 * float(recall),
        "ed_f1": 100.0 * float(f1),
        "ed_ap": 100.0 * average_precision(e, p),
    }
    if (correction_pred is None) != (correction_target is None):
        raise DataError("correction_pred and correction_target must be given together")
    if correction_pred is not None:
        pred, target = np.asarray(correction_pred), np.asarray(correction_target)
        if pred.shape != prob.shape or target.shape != prob.shape:
            raise DataError(
                f"correction_pred {pred.shape} and correction_target {target.shape} must have "
                f"the shape of error_prob {prob.shape}"
            )
        edited = valid & err
        out["ec_accuracy"] = float(100.0 * np.mean(pred[edited] == target[edited]))
    out["counts"] = {
        "tokens": int(valid.sum()),
        "edited": int(e.sum()),
        "flagged": int(flagged.sum()),
    }
    return out
