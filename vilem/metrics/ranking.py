"""Evaluation metrics: retrieval recall and ranks (with bootstrap intervals), probe accuracy and
proofreading (error detection / correction) scores. Numpy only: no torch on any path.

Retrieval semantics (these decide whether numbers match papers, so they are spelled out):

- text->item (t2i): one query per text; its single positive is the item it describes.
- item->text (i2t): one query per item; a hit at k counts when ANY of the item's texts is in the
  top k (as the CLIP paper and CLIP_benchmark count it), and the rank used for median/mean rank
  is that of the best-ranked positive text.
- item->text with ``i2t_ranking="grouped"`` (CLIP4Clip's multi-caption video->text, reused by
  CLIP2Video and successors on MSVD and VATEX): each item ranks the *items*, each scored by its
  best-matching text, ``rank = 1 + #{other items u : max_t(u) s_t >= max_t(q) s_t}``. With one text
  per item both rankings are the same.
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

from collections.abc import Sequence
from typing import Any

import numpy as np

from vilem.errors import ConfigError, DataError
from vilem.metrics import _fused

# ------------------------------------------------------------------------------ input checks


def int_param(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ConfigError("ks must name at least one k for recall@k")
    for k in ks:
        int_param(k, "every k of recall@k", 1)
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


def _check_score_range(items: np.ndarray, texts: np.ndarray) -> None:
    """Refuse embeddings whose float32 dot products could overflow (finite rows, inf scores):
    an inf score ties everything it meets, and the counting would read the ties optimistically.
    Cauchy-Schwarz bounds every score and partial sum by the product of the largest norms; the
    elementwise bound ``D max|a| max|b|`` (no temporary array) decides first whether to look."""
    limit = float(np.finfo(np.float32).max) / 4
    peak = [max(float(x.max()), -float(x.min())) for x in (items, texts)]
    if items.shape[1] * peak[0] * peak[1] < limit:
        return
    norms = [
        float(np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64).max())) for x in (items, texts)
    ]
    if norms[0] * norms[1] >= limit:
        raise DataError(
            f"embedding norms reach {norms[0]:.3g} (items) and {norms[1]:.3g} (texts): their "
            "float32 dot products can overflow to inf; normalise the embeddings"
        )


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
    _check_score_range(items, texts)
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
    """``_count_numpy`` with each chunk counted in one compiled pass (``vilem.metrics._fused``)."""
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


I2T_RANKINGS = ("all-texts", "grouped")  # item->text among all texts, or among items


def grouped_counts(best: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Grouped item->text ranks from ``best`` (Q, N): each query's score of every item through
    its best text, and ``own`` (Q,) the query's own item: ``#{items scoring >= its own}``
    (itself included, hence 1-based)."""
    rows = np.arange(len(best))
    return (best >= best[rows, own][:, None]).sum(axis=1).astype(np.int64)


def text_groups(owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The texts in item order and the bounds of each item's run: item i's texts are
    ``order[bounds[i] : bounds[i + 1]]`` (``bounds[:-1]`` for ``np.maximum.reduceat``, where
    every item has a text)."""
    order = np.argsort(owner, kind="stable")
    return order, np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))])


def _grouped_i2t_ranks(
    items: np.ndarray, texts: np.ndarray, owner: np.ndarray, chunk: int
) -> np.ndarray:
    """Grouped item->text ranks (see the module docstring), item chunks against every text:
    an item's own and rival scores come from the same GEMM row, so they compare exactly.
    ``chunk`` texts x N items of the plain path is the memory budget of one chunk."""
    n = len(items)
    order, bounds = text_groups(owner, n)
    texts, starts = texts[order], bounds[:-1]
    rows = max(1, chunk * n // len(texts))
    out = np.empty(n, np.int64)
    for s in range(0, n, rows):
        best = np.maximum.reduceat(items[s : s + rows] @ texts.T, starts, axis=1)
        out[s : s + rows] = grouped_counts(best, np.arange(s, s + len(best)))
    return out


def check_i2t_ranking(value: Any) -> str:
    if value not in I2T_RANKINGS:
        raise ConfigError(
            f"unknown item->text ranking {value!r}; choose one of {', '.join(I2T_RANKINGS)}"
        )
    return value


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
        order, bounds = text_groups(owner, n)
        positives = [order[bounds[i] : bounds[i + 1]] for i in redo]
        i2t[redo] = _best_positive_ranks(items[redo], texts, positives, chunk)
    return t2i, i2t


def ranks(
    item_emb: Any,
    text_emb: Any,
    text_to_item: Any,
    *,
    chunk_size: int | None = None,
    i2t_ranking: str = "all-texts",
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query 1-based ranks of both directions (see the module docstring for semantics).

    Args:
        item_emb: (N, D) item embeddings, L2-normalised (the dot product is the similarity);
            converted to float32.
        text_emb: (M, D) text embeddings, likewise.
        text_to_item: (M,) index of the item each text describes; every item needs one.
        chunk_size: texts per similarity chunk (memory ~ chunk_size x N x 4 bytes); default
            ~16 MiB, at least 256 texts.
        i2t_ranking: "all-texts" ranks each item's texts among all texts; "grouped" ranks the
            items by their best text (CLIP4Clip's multi-caption count; module docstring).

    Returns:
        (t2i_ranks (M,), i2t_ranks (N,)) as int64, for paired comparisons of two models.

    Raises:
        DataError: wrong shapes, non-finite values, bad indices or an item without text.
    """
    check_i2t_ranking(i2t_ranking)
    items, texts, owner = _retrieval_inputs(item_emb, text_emb, text_to_item)
    chunk = _default_chunk(len(items)) if chunk_size is None else chunk_size
    chunk = int_param(chunk, "chunk_size", 1)
    t2i, i2t = _ranks(items, texts, owner, chunk)
    if i2t_ranking == "grouped":
        i2t = _grouped_i2t_ranks(items, texts, owner, chunk)
    return t2i, i2t
