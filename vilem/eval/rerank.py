"""Inference-time re-ranking as video retrieval leaderboards use it, as pure functions of a
(texts x items) similarity matrix. Both look beyond one query: DSL at every other query of the
test set, QB-Norm at a querybank. A re-ranked number is a different protocol from a plain one
and is reported apart, labelled with ``rerank_record``; a plain run stays the default.

- **Dual softmax** (DSL: CAMoE, Cheng et al. 2021; used at inference by CLIP2Video and its
  successors): each similarity is multiplied by a softmax, at temperature ``temperature``, over
  the *other* side: for text->item, over the texts competing for the same item,
  ``s'[t, i] = s[t, i] * softmax_t(s[:, i] / temperature)``; for item->text, over the items.
  The usual temperature is 1/100 (``sim * softmax(sim * 100)``).
- **QB-Norm** with the dynamic inverted softmax (Bogolin et al., "Cross Modal Retrieval with
  Querybank Normalisation", CVPR 2022). A querybank of B queries *from the training set* (never
  the test queries) is scored against the test gallery. The gallery items that are the top-k
  result of some bank query form the activation set; a test query whose top-1 item is in it has
  its row normalised by the inverted softmax ``exp(beta s[q, g]) / sum_b exp(beta s[b, g])``,
  every other query keeps its similarities. Defaults beta = 20, k = 1, as the paper's code.
  Scores are returned as the logarithm of the normalised ones (the same order, no overflow).

Ties are broken as in ``vilem.metrics.ranking``: a negative scoring as high as the best positive
ranks before it. Top-1 / top-k picks inside QB-Norm take the lowest index among equal scores.
The functions hold whole matrices (float64): they are meant for video test sets, whose
galleries are thousands, not the chunked image galleries of ``vilem.metrics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vilem.errors import ConfigError, DataError
from vilem.metrics.ranking import check_i2t_ranking, grouped_counts, text_groups

RERANKERS = ("dsl", "qb-norm")
DSL_TEMPERATURE = 0.01
QB_BETA, QB_K = 20.0, 1


def _matrix(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or 0 in arr.shape:
        raise DataError(f"{what} must be a non-empty 2-D matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{what} holds non-finite values")
    return arr


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=axis, keepdims=True))


def dual_softmax(sim: Any, temperature: float = DSL_TEMPERATURE, queries: str = "texts"):
    """DSL scores of a (texts x items) similarity matrix, for ranking ``queries``' rows.

    Args:
        sim: (T, I) similarities, text t to item i.
        temperature: the softmax temperature (0.01: ``softmax(sim * 100)``).
        queries: ``texts`` for text->item retrieval (each row ranks the items; the prior is a
            softmax over texts, axis 0) or ``items`` for item->text (each column ranks the
            texts; the prior is a softmax over items, axis 1).

    Returns:
        (T, I) float64 scores: ``sim * softmax(sim / temperature, axis)``.
    """
    s = _matrix(sim, "similarity matrix")
    t = _positive(temperature, "DSL temperature")
    if queries not in ("texts", "items"):
        raise ConfigError(f"queries must be 'texts' or 'items', got {queries!r}")
    prior_axis = 0 if queries == "texts" else 1  # the other side competes for each candidate
    return s * np.exp(_log_softmax(s / t, prior_axis))


def _top_k(s: np.ndarray, k: int) -> np.ndarray:
    """Per row, the indices of the k highest scores (the lowest index first among ties)."""
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def qb_norm(sim: Any, bank_sim: Any, beta: float = QB_BETA, k: int = QB_K) -> np.ndarray:
    """QB-Norm with the dynamic inverted softmax (see the module docstring).

    Args:
        sim: (Q, G) similarities of the test queries (rows) to the gallery.
        bank_sim: (B, G) similarities of the querybank (training queries) to the same gallery.
        beta: the inverse temperature of the inverted softmax (20).
        k: bank queries activate their top-k gallery items (1).

    Returns:
        (Q, G) float64 scores; rows whose top-1 item is activated hold
        ``beta * s - log(sum_b exp(beta * bank_sim[b]))`` (the log of the paper's score), the
        others ``sim`` unchanged. Only the order within a row is meant to be used.

    Raises:
        ConfigError: bad beta or k, or a querybank identical to the test queries.
    """
    s = _matrix(sim, "similarity matrix")
    bank = _matrix(bank_sim, "querybank similarity matrix")
    b = _positive(beta, "QB-Norm beta")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"QB-Norm k must be an integer >= 1, got {k!r}")
    if bank.shape[1] != s.shape[1]:
        raise DataError(
            f"querybank scores {bank.shape[1]} gallery items, the test queries {s.shape[1]}"
        )
    if bank.shape == s.shape and np.array_equal(bank, s):
        raise ConfigError(
            "the QB-Norm querybank is the test queries themselves; it must come from the "
            "training captions"
        )
    active = np.zeros(s.shape[1], dtype=bool)
    active[np.unique(_top_k(bank, min(int(k), s.shape[1])))] = True
    top = bank.max(axis=0)
    log_norm = b * top + np.log(np.exp(b * (bank - top)).sum(axis=0))  # log sum_b exp(beta s)
    normalise = active[np.argmax(s, axis=1)]  # argmax: the lowest index among equal scores
    out = s.copy()
    out[normalise] = b * s[normalise] - log_norm
    return out


def ranks_from_scores(
    t2i_scores: Any, i2t_scores: Any, text_to_item: Any, i2t_ranking: str = "all-texts"
) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks of both directions from full (texts x items) score matrices, with the
    semantics of ``vilem.metrics.ranking`` (item->text: the best-ranked of the item's texts, or
    with ``i2t_ranking="grouped"`` the item among items scored by their best text; a negative
    scoring as high as the positive ranks before it).

    Args:
        t2i_scores: (T, I) scores whose rows rank the items for each text.
        i2t_scores: (T, I) scores whose columns rank the texts for each item.
        text_to_item: (T,) the item each text describes; every item needs a text.
        i2t_ranking: "all-texts" or "grouped" (``vilem.metrics.ranking.I2T_RANKINGS``).

    Returns:
        (t2i_ranks (T,), i2t_ranks (I,)) int64, for ``vilem.metrics.metrics_from_ranks``.
    """
    a = _matrix(t2i_scores, "text->item scores")
    c = _matrix(i2t_scores, "item->text scores")
    owner = np.asarray(text_to_item)
    if a.shape != c.shape or owner.shape != (a.shape[0],):
        raise DataError(
            f"score matrices {a.shape} and {c.shape} and text_to_item {owner.shape} disagree"
        )
    if not np.issubdtype(owner.dtype, np.integer) or owner.min() < 0 or owner.max() >= a.shape[1]:
        raise DataError("text_to_item must hold item indices")
    owner = owner.astype(np.int64)
    rows = np.arange(len(owner))
    t2i = (a >= a[rows, owner][:, None]).sum(axis=1)  # the positive counts itself: rank 1 + ...
    positive = owner[:, None] == np.arange(a.shape[1])[None, :]
    if not positive.any(axis=0).all():
        raise DataError("every item needs at least one text")
    if check_i2t_ranking(i2t_ranking) == "grouped":
        order, bounds = text_groups(owner, c.shape[1])
        by_item = np.maximum.reduceat(c[order], bounds[:-1], axis=0)  # (rival, query item)
        return t2i.astype(np.int64), grouped_counts(by_item.T, np.arange(c.shape[1]))
    best = np.where(positive, c, -np.inf).max(axis=0)
    i2t = 1 + ((c >= best[None, :]) & ~positive).sum(axis=0)
    return t2i.astype(np.int64), i2t.astype(np.int64)


def rerank_ranks(
    sim: Any,
    text_to_item: Any,
    method: str,
    *,
    temperature: float = DSL_TEMPERATURE,
    beta: float = QB_BETA,
    k: int = QB_K,
    text_bank: Any = None,
    item_bank: Any = None,
    i2t_ranking: str = "all-texts",
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Ranks of both directions after re-ranking ``sim`` (T x I) with ``method``, and what a
    result must record about it.

    ``qb-norm`` needs ``text_bank`` (B x I: training captions against the test items) for
    text->item; ``item_bank`` (B' x T: training items against the test texts) re-ranks
    item->text too, else that direction keeps the plain similarities (the record says which).
    ``i2t_ranking`` is as for ``ranks_from_scores``.
    """
    s = _matrix(sim, "similarity matrix")
    if method == "dsl":
        a = dual_softmax(s, temperature, "texts")
        c = dual_softmax(s, temperature, "items")
        record = {"method": "dsl", "temperature": float(temperature), "directions": ["t2i", "i2t"]}
    elif method == "qb-norm":
        if text_bank is None:
            raise ConfigError("QB-Norm needs a querybank of training captions (text_bank)")
        a = qb_norm(s, text_bank, beta, k)
        c = s if item_bank is None else qb_norm(s.T, item_bank, beta, k).T
        record = {
            "method": "qb-norm",
            "beta": float(beta),
            "k": int(k),
            "querybank_texts": int(np.shape(text_bank)[0]),
            "querybank_items": None if item_bank is None else int(np.shape(item_bank)[0]),
            "directions": ["t2i"] if item_bank is None else ["t2i", "i2t"],
        }
    else:
        raise ConfigError(f"unknown re-ranking {method!r}; known: {', '.join(RERANKERS)}")
    t2i, i2t = ranks_from_scores(a, c, text_to_item, i2t_ranking)
    return t2i, i2t, record


def rerank_record(record: dict[str, Any], querybank: str | None = None) -> dict[str, Any]:
    """The label a re-ranked result carries: the method, its settings, and for QB-Norm where
    the querybank came from (e.g. ``"msrvtt/train-9k captions"``), so it is never read as a
    plain number."""
    out = dict(record)
    out["protocol"] = f"re-ranked ({record['method']})"
    if record["method"] == "qb-norm":
        if not querybank:
            raise ConfigError("a QB-Norm result must name its querybank (training captions)")
        out["querybank"] = querybank
    return out
