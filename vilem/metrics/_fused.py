"""Fused counting kernel of the chunked retrieval metrics, compiled with numba.

``vilem.metrics._ranks`` counts each similarity chunk in three NumPy passes (scores >= the text's
positive, > the item window, >= the item window). For large galleries those passes cost ~40% on
top of the GEMM, most of it re-reading the chunk from memory. This kernel counts four rows per sweep
while they sit in cache, in one thread beside the multi-threaded GEMM (a two-thread version was
slower on the 2-core perf machine). It returns exactly what the NumPy passes return.

numba compiles the kernel on first use (seconds; cached on disk afterwards), so the metric path
uses it only for galleries large enough to gain (see ``vilem.metrics._FUSED_MIN_CELLS``), and
falls back to NumPy where numba is missing.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

import numpy as np


@functools.cache
def available() -> bool:
    """numba is installed (checked without importing it: the import alone takes ~0.3 s)."""
    return importlib.util.find_spec("numba") is not None


def _rows4(s, i, pos, lo, hi, above, t2i):
    """Rows i..i+3: t2i counts, column counts above ``hi``; returns how many scores fell inside
    their column's [lo, hi] (positives included). Four rows per sweep: ``above`` is loaded and
    stored once per four scores, and every comparison vectorises."""
    r0, r1, r2, r3 = s[i], s[i + 1], s[i + 2], s[i + 3]
    p0, p1, p2, p3 = pos[i], pos[i + 1], pos[i + 2], pos[i + 3]
    a0 = a1 = a2 = a3 = inside = np.int32(0)
    for j in range(s.shape[1]):
        v0, v1, v2, v3, h, low = r0[j], r1[j], r2[j], r3[j], hi[j], lo[j]
        a0 += np.int32(v0 >= p0)
        a1 += np.int32(v1 >= p1)
        a2 += np.int32(v2 >= p2)
        a3 += np.int32(v3 >= p3)
        over = np.int32(v0 > h) + np.int32(v1 > h) + np.int32(v2 > h) + np.int32(v3 > h)
        above[j] += over
        inside += np.int32(v0 >= low) + np.int32(v1 >= low) + np.int32(v2 >= low)
        inside += np.int32(v3 >= low) - over
    t2i[i], t2i[i + 1], t2i[i + 2], t2i[i + 3] = a0, a1, a2, a3
    return inside


def _row1(s, i, pos, lo, hi, above, t2i):
    """``_rows4`` for one row (the chunk's last rows)."""
    row, p = s[i], pos[i]
    at_least = inside = np.int32(0)
    for j in range(s.shape[1]):
        v = row[j]
        over = np.int32(v > hi[j])
        at_least += np.int32(v >= p)
        above[j] += over
        inside += np.int32(v >= lo[j]) - over
    t2i[i] = at_least
    return inside


def _near(s, first, last, owner, lo, hi, near_item, near_score, near_n, overflow):
    """Append the negatives of rows first..last-1 inside their item's window (rare)."""
    cap = near_item.shape[0]
    for i in range(first, last):
        row, mine = s[i], owner[i]
        for j in range(s.shape[1]):
            v = row[j]
            if j != mine and v >= lo[j] and v <= hi[j]:
                k = near_n[0]
                if k < cap:
                    near_item[k] = j
                    near_score[k] = v
                    near_n[0] = k + 1
                else:
                    overflow[j] = True


def count_chunk(s, owner, lo, hi, t2i, pos, above, near_item, near_score, near_n, overflow):
    """Count one chunk: ``s`` (r, n) float32 similarities of r texts (their items ``owner``).

    Writes per row its positive score ``pos`` and text->item rank ``t2i`` (items scoring >= it,
    itself included, so 1-based); adds per column the texts scoring above the item's window
    [lo, hi] to ``above``; appends the negatives inside the window to ``near_item`` /
    ``near_score`` (``near_n[0]`` entries used), or flags the item in ``overflow`` once they
    are full.
    """
    r = s.shape[0]
    own_inside = np.zeros(r, np.int32)  # a text's own positive usually lies in its window
    for i in range(r):
        p, mine = s[i, owner[i]], owner[i]
        pos[i] = p
        own_inside[i] = lo[mine] <= p and p <= hi[mine]
    i = 0
    while i + 4 <= r:
        inside = _rows4(s, i, pos, lo, hi, above, t2i)
        if inside > own_inside[i] + own_inside[i + 1] + own_inside[i + 2] + own_inside[i + 3]:
            _near(s, i, i + 4, owner, lo, hi, near_item, near_score, near_n, overflow)
        i += 4
    while i < r:
        if _row1(s, i, pos, lo, hi, above, t2i) > own_inside[i]:
            _near(s, i, i + 1, owner, lo, hi, near_item, near_score, near_n, overflow)
        i += 1


@functools.cache
def kernel() -> Callable[..., None]:
    """``count_chunk`` compiled (on the first call of a process; numba caches it on disk)."""
    import numba

    jit = numba.njit(cache=True, nogil=True)
    # the helpers are globals of this module: numba resolves them when compiling the caller
    globals().update(_rows4=jit(_rows4), _row1=jit(_row1), _near=jit(_near))
    compiled = jit(count_chunk)
    # compile (or load from the cache) now, for the argument types ``metrics._count_fused`` uses
    f32, i64 = np.float32, np.int64
    compiled(
        np.zeros((5, 3), f32), np.zeros(5, i64), np.ones(3, f32), np.ones(3, f32),
        np.zeros(5, i64), np.zeros(5, f32), np.zeros(3, np.int32), np.zeros(1, np.int32),
        np.zeros(1, f32), np.zeros(1, i64), np.zeros(3, bool),
    )  # fmt: skip
    return compiled
