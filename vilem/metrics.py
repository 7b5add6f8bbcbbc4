"""Evaluation metrics: retrieval recall and ranks (with bootstrap intervals), probe accuracy and
proofreading (error detection / correction) scores. Numpy only: no torch on any path.

Retrieval semantics (these decide whether numbers match papers, so they are spelled out):

- text->item (t2i): one query per text; its single positive is the item it describes.
- item->text (i2t): one query per item; a hit at k counts when ANY of the item's texts is in the
  top k (as the CLIP paper and CLIP_benchmark count it), and the rank used for median/mean rank
  is that of the best-ranked positive text.
- Ranks are 1-based. Ties are broken pessimistically: a negative scoring exactly as high as the
  best positive is ranked before it, so ``rank = 1 + #{negatives j : s_j >= s_best_positive}``.
  The rule does not depend on the order of the gallery, and a collapsed model whose scores are
  all equal gets the worst rank, never a lucky one.

The similarity matrix is never held whole: text chunks are multiplied with the item matrix
(one float32 GEMM per chunk, the only O(N M D) work) and ranks come from counting candidates
that score at least as high as the positive, which is O(chunk x N) memory and much faster than
sorting. Item->text ranks are counted on the same chunks (see ``_ranks``), so the GEMM runs once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vilem import _fused
from vilem.errors import ConfigError, DataError

# ------------------------------------------------------------------------------ metric table

# What leaderboards need to know about a metric name: which way is better and how to print it.
METRIC_INFO: dict[str, dict[str, Any]] = {
    **{
        f"{d}_R@{k}": {"higher_is_better": True, "display": f"{arrow} R@{k}", "unit": "%"}
        for d, arrow in (("t2i", "T→I"), ("i2t", "I→T"))
        for k in (1, 5, 10, 50, 100)
    },
    "rsum": {"higher_is_better": True, "display": "RSUM", "unit": "%"},
    "t2i_medr": {"higher_is_better": False, "display": "T→I MedR", "unit": "rank"},
    "t2i_meanr": {"higher_is_better": False, "display": "T→I MeanR", "unit": "rank"},
    "i2t_medr": {"higher_is_better": False, "display": "I→T MedR", "unit": "rank"},
    "i2t_meanr": {"higher_is_better": False, "display": "I→T MeanR", "unit": "rank"},
    "macro": {"higher_is_better": True, "display": "Probe acc. (macro)", "unit": "%"},
    "overall": {"higher_is_better": True, "display": "Probe acc. (all)", "unit": "%"},
    "ed_precision": {"higher_is_better": True, "display": "ED precision", "unit": "%"},
    "ed_recall": {"higher_is_better": True, "display": "ED recall", "unit": "%"},
    "ed_f1": {"higher_is_better": True, "display": "ED F1", "unit": "%"},
    "ed_ap": {"higher_is_better": True, "display": "ED AP", "unit": "%"},
    "ec_accuracy": {"higher_is_better": True, "display": "EC top-1 acc.", "unit": "%"},
}


def metric_info(name: str) -> dict[str, Any]:
    """The METRIC_INFO entry of ``name``; per-category probe accuracies (``acc_<category>``)
    are higher-is-better. Raises ConfigError for an unknown name."""
    if name in METRIC_INFO:
        return METRIC_INFO[name]
    if name.startswith("acc_") and len(name) > 4:
        label = name[4:].replace(BALANCED_SUFFIX, " (word-balanced)")
        return {"higher_is_better": True, "display": f"Acc. {label}", "unit": "%"}
    from vilem.registry import closest

    raise ConfigError(f"unknown metric {name!r}{closest(name, list(METRIC_INFO))}")


# ------------------------------------------------------------------------------ input checks


def _int_param(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ConfigError("ks must name at least one k for recall@k")
    for k in ks:
        _int_param(k, "every k of recall@k", 1)
    if len(set(ks)) != len(ks):
        raise ConfigError(f"ks has repeated values: {ks}")
    return tuple(int(k) for k in ks)


def _embeddings(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{what} must be a non-empty 2-D array (count, dim), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"{what} must hold numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise DataError(
            f"{what} hold NaN or inf in {int(bad.sum())} rows (first: row {int(np.argmax(bad))})"
        )
    return arr


def _retrieval_inputs(
    item_emb: Any, text_emb: Any, text_to_item: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    items = _embeddings(item_emb, "item embeddings")
    texts = _embeddings(text_emb, "text embeddings")
    if items.shape[1] != texts.shape[1]:
        raise DataError(
            f"item embeddings have dim {items.shape[1]} but text embeddings have dim "
            f"{texts.shape[1]}"
        )
    owner = np.asarray(text_to_item)
    if owner.shape != (len(texts),):
        raise DataError(
            f"text_to_item must have one entry per text ({len(texts)}), got shape {owner.shape}"
        )
    if not np.issubdtype(owner.dtype, np.integer):
        raise DataError(f"text_to_item must hold integer item indices, got dtype {owner.dtype}")
    owner = owner.astype(np.int64)
    n = len(items)
    out = (owner < 0) | (owner >= n)
    if out.any():
        i = int(np.argmax(out))
        raise DataError(f"text_to_item[{i}] = {owner[i]} is not an item index in [0, {n})")
    orphans = np.flatnonzero(np.bincount(owner, minlength=n) == 0)
    if orphans.size:
        raise DataError(
            f"{orphans.size} of {n} items have no text (first: {orphans[:5].tolist()}); "
            "item->text retrieval needs at least one text per item"
        )
    return items, texts, owner


# ------------------------------------------------------------------------------ ranks

_U32 = 2.0**-24  # unit roundoff of float32
_CHUNK_CELLS = 1 << 22  # similarity cells per GEMM chunk by default (16 MiB: stays in cache)
_BLOCK_CELLS = 1 << 20  # cells counted at a time, so the comparisons run from cache
_FUSED_MIN_CELLS = 1 << 30  # similarities from which the fused kernel pays for its compilation
_WINDOW_BUDGET = 1 << 23  # stored near-tie entries (see _ranks) before falling back
_EPS_SCALE = 1.0  # scales the rounding window; tests set 0 to exercise the exact fallback


def _default_chunk(n_candidates: int) -> int:
    # at least 256 rows keeps the GEMM efficient on large galleries (then > 16 MiB)
    return int(min(4096, max(256, _CHUNK_CELLS // n_candidates)))


def _directed_f32(x: np.ndarray, down: bool) -> np.ndarray:
    """float64 -> float32 rounded towards -inf (down) or +inf, so a window never shrinks."""
    y = x.astype(np.float32)
    wrong = y.astype(np.float64) > x if down else y.astype(np.float64) < x
    return np.where(wrong, np.nextafter(y, np.float32(-np.inf if down else np.inf)), y)


def _i2t_windows(
    items: np.ndarray, texts: np.ndarray, owner: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per item, float32 bounds [lo, hi] meant to hold its best positive score as the GEMM
    will compute it: a cheap float32 dot product, widened by the rounding error that the two
    computations typically differ by (``_ranks`` recomputes the rare item that falls outside)."""
    n, d = items.shape
    estimate = np.full(n, -np.inf, np.float32)
    text_norm_max = 0.0
    step = max(1, (1 << 22) // d)
    for s in range(0, len(texts), step):
        t, mine = texts[s : s + step], owner[s : s + step]
        np.maximum.at(estimate, mine, np.einsum("ij,ij->i", t, items[mine]))
        text_norm_max = max(text_norm_max, float(np.einsum("ij,ij->i", t, t).max()))
    norms = np.sqrt(np.einsum("ij,ij->i", items, items, dtype=np.float64) * text_norm_max)
    # float32 dot products of unit vectors differ by ~sqrt(d) u (u = 2^-24; max seen: 0.8
    # sqrt(d) u at d = 256); the worst-case d u bound would make the window 16x wider
    eps = _EPS_SCALE * 4.0 * np.sqrt(d) * _U32 * norms + 1e-30
    centre = estimate.astype(np.float64)
    return _directed_f32(centre - eps, down=True), _directed_f32(centre + eps, down=False)


def _best_positive_ranks(
    queries: np.ndarray, candidates: np.ndarray, positives: list[np.ndarray], chunk: int
) -> np.ndarray:
    """Row-local ranks: for query q, 1 + #{non-positive candidates scoring >= its best
    positive}. Used for the few item->text queries ``_ranks`` cannot settle in its one pass."""
    out = np.empty(len(queries), np.int64)
    rows = max(1, min(chunk, max(16, _CHUNK_CELLS // len(candidates))))
    for s in range(0, len(queries), rows):
        sims = queries[s : s + rows] @ candidates.T
        pos = positives[s : s + rows]
        row_of = np.repeat(np.arange(len(sims)), [len(p) for p in pos])
        cols = np.concatenate(pos)
        pos_scores = sims[row_of, cols]
        best = np.full(len(sims), -np.inf, np.float32)
        np.maximum.at(best, row_of, pos_scores)
        at_least = (sims >= best[:, None]).sum(axis=1)
        # positives tied with the best are not negatives; none score above it
        tied_pos = np.bincount(row_of[pos_scores == best[row_of]], minlength=len(sims))
        out[s : s + rows] = at_least - tied_pos + 1
    return out


def _row_counts(words: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """True entries per row of a bool mask viewed as uint64 words (8 entries each): summing at
    most 255 words never carries between byte lanes, then the lanes are added up."""
    lanes = np.add.reduceat(words, groups, axis=1)
    return np.add.reduce(lanes.view(np.uint8), axis=1, dtype=np.int64)


def _col_counts(words: np.ndarray) -> np.ndarray:
    """True entries per column of a bool mask (at most 255 rows) viewed as uint64 words: one
    word sum counts 8 columns at once, each in its own byte lane."""
    return np.add.reduce(words, axis=0).view(np.uint8)


class _BlockCounter:
    """Counts one block of similarity rows (see ``_ranks``) with a reused bool mask, padded to
    whole uint64 words so the counts can run 8 entries at a time."""

    def __init__(self, n: int, rows: int, lo: np.ndarray, hi: np.ndarray, owner: np.ndarray):
        self.n, self.lo, self.hi, self.owner = n, lo, hi, owner
        words_per_row = -(-n // 8)
        self.groups = np.arange(0, words_per_row, 255)
        padded = np.zeros((rows, 8 * words_per_row), bool)
        self.mask, self.words = padded[:, :n], padded.view(np.uint64)

    def __call__(self, s: np.ndarray, first: int) -> tuple:
        """Rows ``s`` hold texts ``first ...``: their positive scores, t2i ranks, per item the
        texts above ``hi`` and the negatives inside [lo, hi] (item, score)."""
        r, lo, hi = len(s), self.lo, self.hi
        mask, words = self.mask[:r], self.words[:r]
        mine = self.owner[first : first + r]
        pos = s[np.arange(r), mine]
        np.greater_equal(s, pos[:, None], out=mask)
        t2i = _row_counts(words, self.groups)
        np.greater(s, hi, out=mask)
        over = _col_counts(words)[: self.n]
        np.greater_equal(s, lo, out=mask)
        cols = np.flatnonzero(_col_counts(words)[: self.n] != over)
        near = None
        if cols.size:
            sub = s[:, cols]
            rr, cc = np.nonzero((sub >= lo[cols]) & (sub <= hi[cols]))
            neg = mine[rr] != cols[cc]
            if neg.any():
                near = cols[cc[neg]].astype(np.int32), sub[rr[neg], cc[neg]]
        return pos, t2i, over, near


def uses_fused_kernel(n_items: int, n_texts: int) -> bool:
    """Whether the metrics of this gallery size count in the compiled kernel (``_count_fused``):
    from ``_FUSED_MIN_CELLS`` similarities on, where it repays its compilation, and when numba
    is installed."""
    return _fused.available() and n_items * n_texts >= _FUSED_MIN_CELLS


def _count_numpy(items, texts, owner, chunk, lo, hi, t2i, pos_score, window_budget):
    """The counting of ``_ranks`` in NumPy passes over cache-sized blocks of each chunk.
    Fills ``t2i`` and ``pos_score``; returns (texts above each item's window, near-tie items,
    their scores, items whose near ties overflowed ``window_budget``)."""
    n, m = len(items), len(texts)
    above = np.zeros(n, np.int64)
    near_item: list[np.ndarray] = []
    near_score: list[np.ndarray] = []
    near_count = 0
    overflow = np.zeros(n, bool)
    # <= 255 rows per block: a column count then fits the uint8 byte lanes of _col_counts
    block = int(max(1, min(chunk, 255, _BLOCK_CELLS // n)))
    count = _BlockCounter(n, block, lo, hi, owner)
    out = np.empty((min(chunk, m), n), np.float32)  # reused: no page faults per chunk
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        sims = np.matmul(texts[start:stop], items.T, out=out[: stop - start])
        for q in range(start, stop, block):
            pos, ranks_, over, near = count(sims[q - start : q - start + block], q)
            pos_score[q : q + len(pos)] = pos
            t2i[q : q + len(pos)] = ranks_
            above += over
            if near is None:
                continue
            if near_count + len(near[0]) > window_budget:
                overflow[near[0]] = True
            else:
                near_item.append(near[0])
                near_score.append(near[1])
                near_count += len(near[0])
    if not near_item:
        return above, np.empty(0, np.int32), np.empty(0, np.float32), overflow
    return above, np.concatenate(near_item), np.concatenate(near_score), overflow


def _count_fused(items, texts, owner, chunk, lo, hi, t2i, pos_score, window_budget):
    """``_count_numpy`` with each chunk counted in one compiled pass (``vilem._fused``)."""
    n, m = len(items), len(texts)
    above = np.zeros(n, np.int32 if m < 2**31 else np.int64)
    near_item = np.empty(max(1, window_budget), np.int32)  # untouched pages cost no memory
    near_score = np.empty(max(1, window_budget), np.float32)
    near_n = np.zeros(1, np.int64)
    overflow = np.zeros(n, bool)
    out = np.empty((min(chunk, m), n), np.float32)
    count_chunk = _fused.kernel()
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        sims = np.matmul(texts[start:stop], items.T, out=out[: stop - start])
        count_chunk(
            sims, owner[start:stop], lo, hi, t2i[start:stop], pos_score[start:stop],
            above, near_item, near_score, near_n, overflow,
        )  # fmt: skip
    k = int(near_n[0])
    return above.astype(np.int64), near_item[:k], near_score[:k], overflow


def _ranks(
    items: np.ndarray,
    texts: np.ndarray,
    owner: np.ndarray,
    chunk: int,
    window_budget: int = _WINDOW_BUDGET,
    fused: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both directions' ranks from one chunked GEMM (inputs already validated).

    Text->item is row-local: a chunk's rows hold each text's positive score, so the rank is
    ``#{items scoring >= it}`` (itself included, hence 1-based). Item->text needs, per item
    column, the count of texts scoring >= the item's best positive, whose exact float32 value
    is only known once every chunk is done. So each column is counted against a tiny window
    [lo, hi] around a float64 estimate of it, as wide as float32 rounding can move it
    (``_i2t_windows``): texts above ``hi`` are counted, and the rare negatives inside the
    window are kept with their scores and compared at the end. Nothing rests on that bound:
    an item whose best positive still falls outside its window, or whose near-ties overflow
    ``window_budget``, is recomputed exactly from its own row (``_best_positive_ranks``).

    The counting runs in NumPy passes (``_count_numpy``) or, for galleries of at least
    ``_FUSED_MIN_CELLS`` similarities when numba is installed, in one compiled pass per chunk
    (``_count_fused``); ``fused`` forces either. Both give identical ranks.
    """
    n, m = len(items), len(texts)
    lo, hi = _i2t_windows(items, texts, owner)
    t2i = np.empty(m, np.int64)
    pos_score = np.empty(m, np.float32)
    if fused is None:
        fused = uses_fused_kernel(n, m)
    count = _count_fused if fused else _count_numpy
    above, near_item, near_score, overflow = count(
        items, texts, owner, chunk, lo, hi, t2i, pos_score, window_budget
    )
    best = np.full(n, -np.inf, np.float32)
    np.maximum.at(best, owner, pos_score)
    i2t = above + 1
    i2t += np.bincount(near_item[near_score >= best[near_item]], minlength=n)
    redo = np.flatnonzero(overflow | (best < lo) | (best > hi))
    if redo.size:
        order = np.argsort(owner, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))])
        positives = [order[starts[i] : starts[i + 1]] for i in redo]
        i2t[redo] = _best_positive_ranks(items[redo], texts, positives, chunk)
    return t2i, i2t


def ranks(
    item_emb: Any, text_emb: Any, text_to_item: Any, *, chunk_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query 1-based ranks of both directions (see the module docstring for semantics).

    Args:
        item_emb: (N, D) item embeddings, L2-normalised (the dot product is the similarity);
            converted to float32.
        text_emb: (M, D) text embeddings, likewise.
        text_to_item: (M,) index of the item each text describes; every item needs one.
        chunk_size: texts per similarity chunk (memory ~ chunk_size x N x 4 bytes); default
            ~16 MiB, at least 256 texts.

    Returns:
        (t2i_ranks (M,), i2t_ranks (N,)) as int64, for paired comparisons of two models.

    Raises:
        DataError: wrong shapes, non-finite values, bad indices or an item without text.
    """
    items, texts, owner = _retrieval_inputs(item_emb, text_emb, text_to_item)
    chunk = _default_chunk(len(items)) if chunk_size is None else chunk_size
    return _ranks(items, texts, owner, _int_param(chunk, "chunk_size", 1))


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Percent of queries whose (best) positive has rank <= k."""
    return float(100.0 * np.mean(np.asarray(ranks) <= k))


def metrics_from_ranks(
    t2i_ranks: np.ndarray, i2t_ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@k (percent), RSUM (sum of the 2 x len(ks) recalls) and median/mean ranks."""
    ks = _check_ks(ks)
    out: dict[str, float] = {}
    for d, r in (("t2i", t2i_ranks), ("i2t", i2t_ranks)):
        for k in ks:
            out[f"{d}_R@{k}"] = recall_at_k(r, k)
    out["rsum"] = float(sum(out[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in ks))
    for d, r in (("t2i", t2i_ranks), ("i2t", i2t_ranks)):
        out[f"{d}_medr"] = float(np.median(r))
        out[f"{d}_meanr"] = float(np.mean(r))
    return out


# ------------------------------------------------------------------------------ bootstrap

_BOOT_CELLS = 1 << 22  # resampled values held at once (32 MiB of int64)


def _interval(replicates: np.ndarray) -> list[float]:
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
    ks: Sequence[int] = (1, 5, 10),
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals ``{metric: [lo, hi]}`` of ``metrics_from_ranks``.

    Text->item metrics resample texts, item->text metrics resample items; RSUM sums the two
    directions' recalls over independent resamples. Deterministic given ``seed``.
    """
    ks = _check_ks(ks)
    resamples = _int_param(resamples, "bootstrap", 1)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]
    reps = {
        d: _rank_replicates(np.asarray(r), ks, resamples, g)
        for d, r, g in (("t2i", t2i_ranks, rngs[0]), ("i2t", i2t_ranks, rngs[1]))
    }
    out = {f"{d}_{name}": _interval(v) for d in ("t2i", "i2t") for name, v in reps[d].items()}
    out["rsum"] = _interval(sum(reps[d][f"R@{k}"] for d in ("t2i", "i2t") for k in ks))
    return out


def retrieval_metrics(
    item_emb: Any,
    text_emb: Any,
    text_to_item: Any,
    *,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Text->item and item->text retrieval metrics in percent (see the module docstring).

    Args:
        item_emb, text_emb, text_to_item, chunk_size: as for ``ranks``.
        ks: the k of recall@k; RSUM sums all 2 x len(ks) recalls.
        bootstrap: number of resamples for 95% intervals; 0 computes none.
        seed: seed of the resampling.

    Returns:
        ``t2i_R@k``, ``i2t_R@k``, ``rsum``, ``t2i_medr``, ``t2i_meanr``, ``i2t_medr``,
        ``i2t_meanr``; with ``bootstrap`` > 0 also ``intervals``: ``{metric: [lo, hi]}``.
    """
    ks = _check_ks(ks)
    bootstrap = _int_param(bootstrap, "bootstrap", 0)
    t2i, i2t = ranks(item_emb, text_emb, text_to_item, chunk_size=chunk_size)
    out: dict[str, Any] = metrics_from_ranks(t2i, i2t, ks)
    if bootstrap:
        out["intervals"] = retrieval_intervals(t2i, i2t, ks, bootstrap, seed)
    return out


def retrieval_metric_fn(
    name: str, ks: Sequence[int] = (1, 5, 10)
) -> Callable[[tuple[np.ndarray, np.ndarray]], float]:
    """A function of ``(t2i_ranks, i2t_ranks)`` giving metric ``name`` (for
    ``paired_bootstrap_delta``); ``rsum`` sums recall at ``ks``."""
    ks = _check_ks(ks)
    if name == "rsum":
        return lambda r: sum(recall_at_k(x, k) for x in r for k in ks)
    direction, _, stat = name.partition("_")
    if direction in ("t2i", "i2t"):
        d = 0 if direction == "t2i" else 1
        if stat.startswith("R@") and stat[2:].isdigit() and int(stat[2:]) >= 1:
            k = int(stat[2:])
            return lambda r: recall_at_k(r[d], k)
        if stat == "medr":
            return lambda r: float(np.median(r[d]))
        if stat == "meanr":
            return lambda r: float(np.mean(r[d]))
    from vilem.registry import closest

    known = [n for n in METRIC_INFO if n.startswith(("t2i", "i2t", "rsum"))]
    raise ConfigError(f"unknown retrieval metric {name!r}{closest(name, known)}")


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
            ``retrieval_metric_fn("rsum")`` or ``recall_at_k``-based lambdas.
        B: number of resamples.
        seed: seed of the resampling.

    Returns:
        (delta, lo, hi): ``metric_fn(ranks_a) - metric_fn(ranks_b)`` and its interval.

    Raises:
        DataError: when the two inputs do not hold the same number of queries.
    """
    B = _int_param(B, "B", 1)
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
    for b in range(B):
        idx = [g.integers(0, len(p), len(p)) for g, p in zip(rngs, pa, strict=True)]
        a = [p[i] for p, i in zip(pa, idx, strict=True)]
        deltas[b] = value(a) - value([p[i] for p, i in zip(pb, idx, strict=True)])
    lo, hi = _interval(deltas)
    return delta, lo, hi


# ------------------------------------------------------------------------------ probes


BALANCED_SUFFIX = "_bal"  # acc_<category>_bal: the word-balanced accuracy of a category


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
    bootstrap = _int_param(bootstrap, "bootstrap", 0)
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
        out["intervals"] = named(probe_summary(reps, sizes, groups, balanced), _interval)
    return out


# ------------------------------------------------------------------------------ proofreading


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
