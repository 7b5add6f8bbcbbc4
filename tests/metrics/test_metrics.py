"""Metric semantics pinned by hand-computed cases, plus property tests against a naive sort."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vilem import metrics as M
from vilem.errors import ConfigError, DataError
from vilem.metrics import _fused
from vilem.metrics import ranking as R

FUSED = (True,) if _fused.available() else ()  # the compiled counting kernel, when numba is here

# With one-hot items, text t's embedding row IS its score row: score(t, i) = texts[t, i], exact
# in float32, so each test below writes its similarity matrix directly (rows: texts).
ONE_HOT_3 = np.eye(3, dtype=np.float32)

# 3 items x 6 texts, 2 captions per item (text -> item: 0 0 1 1 2 2)
#                    item0 item1 item2
SIMS_3x6 = np.array(
    [
        [0.25, 0.10, 0.20],  # t0 (item0): nothing else >= .25          -> t2i rank 1
        [0.70, 0.50, 0.40],  # t1 (item0): .70 is the row max           -> 1
        [0.20, 0.80, 0.10],  # t2 (item1)                               -> 1
        [0.60, 0.40, 0.70],  # t3 (item1): .60 and .70 beat .40         -> 3
        [0.10, 0.20, 0.30],  # t4 (item2)                               -> 1
        [0.50, 0.60, 0.20],  # t5 (item2): .50 and .60 beat .20         -> 3
    ],
    dtype=np.float32,
)
OWNER_3x6 = np.array([0, 0, 1, 1, 2, 2])
# item->text, best positive per column:
#   item0 column .25 .70 .20 .60 .10 .50, positives t0 (.25), t1 (.70): best .70, no negative
#         above it -> rank 1 (t0 alone would rank 3: it is the SECOND caption that counts)
#   item1 column .10 .50 .80 .40 .20 .60, positives t2 (.80), t3 (.40): best .80 -> rank 1
#   item2 column .20 .40 .10 .70 .30 .20, positives t4 (.30), t5 (.20): best .30, negatives
#         t1 (.40) and t3 (.70) are above it -> rank 3
T2I_3x6 = [1, 1, 1, 3, 1, 3]
I2T_3x6 = [1, 1, 3]


def naive_ranks(items, texts, owner):
    """Reference: full similarity matrix and a sort per query, ties placing negatives first."""
    sims = texts @ items.T
    t2i = []
    for t, row in enumerate(sims):
        positive = np.arange(len(items)) == owner[t]
        order = np.lexsort((positive, -row))  # by score descending, then negatives first
        t2i.append(int(np.flatnonzero(positive[order])[0]) + 1)
    i2t = []
    for i, col in enumerate(sims.T):
        positive = owner == i
        order = np.lexsort((positive, -col))
        i2t.append(int(np.flatnonzero(positive[order])[0]) + 1)
    return np.array(t2i), np.array(i2t)


# ------------------------------------------------------------------------------ hand cases


def test_perfect_single_caption_retrieval_is_rank_one_everywhere():
    t2i, i2t = M.ranks(ONE_HOT_3, ONE_HOT_3, [0, 1, 2])
    assert t2i.tolist() == [1, 1, 1] and i2t.tolist() == [1, 1, 1]
    out = M.retrieval_metrics(ONE_HOT_3, ONE_HOT_3, [0, 1, 2])
    assert out["rsum"] == 600.0 and out["t2i_R@1"] == 100.0 and out["i2t_medr"] == 1.0
    assert "intervals" not in out


def test_two_captions_per_item_item_to_text_uses_the_best_positive():
    t2i, i2t = M.ranks(ONE_HOT_3, SIMS_3x6, OWNER_3x6)
    assert t2i.tolist() == T2I_3x6
    assert i2t.tolist() == I2T_3x6
    out = M.retrieval_metrics(ONE_HOT_3, SIMS_3x6, OWNER_3x6)
    assert out["t2i_R@1"] == pytest.approx(400 / 6)  # 4 of 6 texts at rank 1
    assert out["i2t_R@1"] == pytest.approx(200 / 3)  # 2 of 3 items
    assert out["t2i_R@5"] == out["i2t_R@5"] == out["t2i_R@10"] == out["i2t_R@10"] == 100.0
    assert out["rsum"] == pytest.approx(400 / 6 + 200 / 3 + 400)
    assert out["t2i_medr"] == 1.0 and out["t2i_meanr"] == pytest.approx(10 / 6)
    assert out["i2t_medr"] == 1.0 and out["i2t_meanr"] == pytest.approx(5 / 3)


def test_a_negative_tied_with_the_positive_ranks_before_it_whatever_its_index():
    # t0 (item1) scores .5 on item1 and .5 on item0 (lower index) -> rank 2
    # t1 (item0) scores .5 on item0 and .5 on item2 (higher index) -> rank 2 too
    # t2 (item2) scores .9 on item2, .5 elsewhere                   -> rank 1
    sims = np.array([[0.5, 0.5, 0.1], [0.5, 0.1, 0.5], [0.5, 0.5, 0.9]], np.float32)
    t2i, i2t = M.ranks(ONE_HOT_3, sims, [1, 0, 2])
    assert t2i.tolist() == [2, 2, 1]
    # item0 column .5 .5 .5, positive t1: negatives t0, t2 tie it        -> 3
    # item1 column .5 .1 .5, positive t0: negative t2 ties it            -> 2
    # item2 column .1 .5 .9, positive t2 (.9)                            -> 1
    assert i2t.tolist() == [3, 2, 1]


def test_positives_tied_at_the_best_score_do_not_push_each_other_down():
    # one item, texts: positive .5, negative .5 (other item), positive .5, negative .2
    items = np.eye(2, dtype=np.float32)
    sims = np.array([[0.5, 0.0], [0.5, 1.0], [0.5, 0.0], [0.2, 0.9]], np.float32)
    _, i2t = M.ranks(items, sims, [0, 1, 0, 1])
    assert i2t[0] == 2  # 1 + one negative (t1) at >= .5; the other positive does not count


def test_all_equal_scores_give_the_worst_rank():
    items = np.ones((3, 2), np.float32)
    texts = np.ones((6, 2), np.float32)  # every score is 2
    t2i, i2t = M.ranks(items, texts, OWNER_3x6)
    assert t2i.tolist() == [3] * 6  # both other items tie the positive
    assert i2t.tolist() == [5] * 3  # 1 + four negatives tie the best positive
    out = M.retrieval_metrics(items, texts, OWNER_3x6)
    assert out["t2i_R@1"] == 0.0 and out["i2t_R@5"] == 100.0 and out["i2t_R@1"] == 0.0


def test_custom_ks_name_the_metrics_and_rsum_sums_them():
    out = M.retrieval_metrics(ONE_HOT_3, SIMS_3x6, OWNER_3x6, ks=(1, 2))
    # t2i ranks 1 1 1 3 1 3: R@2 = 4/6; i2t ranks 1 1 3: R@2 = 2/3
    assert out["t2i_R@2"] == pytest.approx(400 / 6) and out["i2t_R@2"] == pytest.approx(200 / 3)
    assert out["rsum"] == pytest.approx(2 * (400 / 6 + 200 / 3))
    assert "t2i_R@10" not in out


def test_grouped_item_to_text_ranks_items_by_their_best_text():
    # texts -> item 0 0 1 2 2 (rows: score on item0, item1, item2)
    sims = np.array(
        [
            [0.9, 0.8, 0.2],  # t0 (item0)
            [0.3, 0.7, 0.3],  # t1 (item0)
            [0.5, 0.4, 0.95],  # t2 (item1)
            [0.6, 0.1, 0.1],  # t3 (item2)
            [0.2, 0.2, 0.3],  # t4 (item2)
        ],
        np.float32,
    )
    owner = [0, 0, 1, 2, 2]
    plain_t2i, plain_i2t = M.ranks(ONE_HOT_3, sims, owner)
    # item1 column .8 .7 .4 .1 .2: its text .4 is beaten by item0's .8 AND .7 -> 3 among texts,
    # but by one item (item0, best .8) -> 2 among items (item2's best is .2)
    # item2 column .2 .3 .95 .1 .3: its best .3; item0's best .3 ties it, item1's .95 beats it
    # -> 3 either way (the tie ranks the rival first)
    assert plain_i2t.tolist() == [1, 3, 3]
    for chunk in (1, 2, None):
        t2i, i2t = M.ranks(ONE_HOT_3, sims, owner, chunk_size=chunk, i2t_ranking="grouped")
        assert i2t.tolist() == [1, 2, 3]
        assert t2i.tolist() == plain_t2i.tolist() == [1, 3, 3, 3, 1]  # text->item unchanged
    out = M.retrieval_metrics(ONE_HOT_3, sims, owner, ks=(1, 2), i2t_ranking="grouped")
    assert out["i2t_R@2"] == pytest.approx(200 / 3) and out["i2t_meanr"] == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="item->text ranking 'best'"):
        M.ranks(ONE_HOT_3, sims, owner, i2t_ranking="best")


def naive_grouped_i2t(items, texts, owner):
    """Reference: per item, every item's best text score, then a sort, rivals placed first."""
    sims = items @ texts.T
    out = []
    for i, row in enumerate(sims):
        best = np.array([row[owner == u].max() for u in range(len(items))])
        order = np.lexsort((np.arange(len(items)) == i, -best))
        out.append(int(np.flatnonzero(order == i)[0]) + 1)
    return np.array(out)


# ------------------------------------------------------------------------------ chunking


def _random_case(rng, n, m, d, grid):
    owner = np.concatenate([np.arange(n), rng.integers(0, n, m - n)])
    rng.shuffle(owner)
    if grid:  # small integers: every product and sum is exact, so ties are real and frequent
        items = rng.integers(-2, 3, (n, d)).astype(np.float32)
        texts = rng.integers(-2, 3, (m, d)).astype(np.float32)
    else:
        items = rng.standard_normal((n, d)).astype(np.float32)
        texts = rng.standard_normal((m, d)).astype(np.float32)
        items /= np.linalg.norm(items, axis=1, keepdims=True)
        texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    return items, texts, owner


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_chunked_ranks_equal_a_naive_sort_for_any_chunk_size(data):
    n = data.draw(st.integers(1, 9), label="items")
    m = n + data.draw(st.integers(0, 14), label="extra texts")
    d = data.draw(st.integers(1, 4), label="dim")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    items, texts, owner = _random_case(np.random.default_rng(seed), n, m, d, grid=True)
    expected = naive_ranks(items, texts, owner)
    for chunk in (1, data.draw(st.integers(2, m + 1), label="chunk"), 4096):
        t2i, i2t = M.ranks(items, texts, owner, chunk_size=chunk)
        assert t2i.tolist() == expected[0].tolist()
        assert i2t.tolist() == expected[1].tolist()
        for fused in FUSED:  # rows in blocks of 4 plus a tail, near-ties kept and compared
            t2i, i2t = R._ranks(items, texts, owner, chunk, fused=fused)
            assert t2i.tolist() == expected[0].tolist() and i2t.tolist() == expected[1].tolist()
        _, grouped = M.ranks(items, texts, owner, chunk_size=chunk, i2t_ranking="grouped")
        assert grouped.tolist() == naive_grouped_i2t(items, texts, owner).tolist()
    # no room to keep near-ties: every item with a tied negative takes the exact fallback
    for fused in (False, *FUSED):
        t2i, i2t = R._ranks(items, texts, owner, chunk=3, window_budget=0, fused=fused)
        assert t2i.tolist() == expected[0].tolist() and i2t.tolist() == expected[1].tolist()


@pytest.fixture(params=["numpy", "fused"])
def counting(request, monkeypatch):
    """Run a test once with the NumPy counting passes and once with the compiled kernel."""
    if request.param == "fused" and not FUSED:
        pytest.skip("numba is not installed")
    threshold = 0 if request.param == "fused" else 2**62
    monkeypatch.setattr(R, "_FUSED_MIN_CELLS", threshold)
    return request.param


@pytest.mark.parametrize("seed", range(4))
def test_chunked_ranks_equal_a_naive_sort_on_float_embeddings(seed, monkeypatch, counting):
    rng = np.random.default_rng(seed)
    items, texts, owner = _random_case(rng, 40, 130, 8, grid=False)
    texts[::7] = items[owner[::7]]  # exact copies of an item score at the top, with ties
    expected = naive_ranks(items, texts, owner)
    for chunk in (1, 16, 129, 1000):
        t2i, i2t = M.ranks(items, texts, owner, chunk_size=chunk)
        np.testing.assert_array_equal(t2i, expected[0])
        np.testing.assert_array_equal(i2t, expected[1])
    monkeypatch.setattr(R, "_BLOCK_CELLS", 5 * 40)  # count 5 rows at a time: several per chunk
    t2i, i2t = M.ranks(items, texts, owner, chunk_size=32)
    np.testing.assert_array_equal(t2i, expected[0])
    np.testing.assert_array_equal(i2t, expected[1])


def test_exact_fallback_gives_the_same_ranks_when_the_rounding_window_is_too_narrow(
    monkeypatch, counting
):
    # a zero-width window misses most best-positive scores: those items are recomputed row-wise
    monkeypatch.setattr(R, "_EPS_SCALE", 0.0)
    rng = np.random.default_rng(7)
    items, texts, owner = _random_case(rng, 30, 90, 33, grid=False)
    expected = naive_ranks(items, texts, owner)
    t2i, i2t = M.ranks(items, texts, owner, chunk_size=17)
    np.testing.assert_array_equal(t2i, expected[0])
    np.testing.assert_array_equal(i2t, expected[1])


def test_large_galleries_take_the_fused_kernel_and_small_ones_numpy(monkeypatch):
    calls = []
    for name in ("_count_numpy", "_count_fused"):
        real = getattr(R, name)
        monkeypatch.setattr(R, name, lambda *a, _f=real, _n=name: calls.append(_n) or _f(*a))
    rng = np.random.default_rng(3)
    items, texts, owner = _random_case(rng, 20, 50, 4, grid=False)
    monkeypatch.setattr(R, "_FUSED_MIN_CELLS", 20 * 50 + 1)
    small = M.ranks(items, texts, owner)
    monkeypatch.setattr(R, "_FUSED_MIN_CELLS", 20 * 50)
    large = M.ranks(items, texts, owner)
    assert calls == ["_count_numpy", "_count_fused" if FUSED else "_count_numpy"]
    np.testing.assert_array_equal(small[0], large[0])
    np.testing.assert_array_equal(small[1], large[1])


def test_memory_scales_with_the_chunk_not_with_items_times_texts():
    rng = np.random.default_rng(0)
    items, texts, owner = _random_case(rng, 2000, 4000, 16, grid=False)
    full_matrix = 2000 * 4000 * 4  # 32 MB of float32
    tracemalloc.start()
    try:
        M.ranks(items, texts, owner, chunk_size=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_matrix / 4, f"peak {peak / 1e6:.1f} MB"


# ------------------------------------------------------------------------------ bootstrap


def _model_ranks(rng, n_texts, n_items):
    # a mediocre model: ranks spread over 1..20
    return rng.integers(1, 21, n_texts), rng.integers(1, 21, n_items)


def test_bootstrap_intervals_contain_the_point_estimate_and_are_seeded():
    rng = np.random.default_rng(3)
    items, texts, owner = _random_case(rng, 60, 300, 6, grid=False)
    out = M.retrieval_metrics(items, texts, owner, bootstrap=200, seed=11)
    intervals = out["intervals"]
    assert set(intervals) == {k for k in out if k != "intervals"}
    for name, (lo, hi) in intervals.items():
        assert lo <= out[name] <= hi, name
    again = M.retrieval_metrics(items, texts, owner, bootstrap=200, seed=11)["intervals"]
    other = M.retrieval_metrics(items, texts, owner, bootstrap=200, seed=12)["intervals"]
    assert again == intervals
    assert other != intervals


def test_bootstrap_intervals_shrink_with_more_queries():
    rng = np.random.default_rng(0)
    small = M.retrieval_intervals(*_model_ranks(rng, 100, 20), resamples=300)
    large = M.retrieval_intervals(*_model_ranks(rng, 10_000, 2_000), resamples=300)
    for name in ("t2i_R@5", "i2t_R@10", "rsum", "t2i_meanr"):
        width_small = small[name][1] - small[name][0]
        width_large = large[name][1] - large[name][0]
        assert width_large < width_small / 3, name  # ~ 1 / sqrt(100) shrink expected


def test_bootstrap_resamples_the_right_query_set_for_each_direction():
    # every text is found at rank 1, items never: t2i intervals collapse, i2t ones do too,
    # rsum is their sum, and medr of a constant rank is that rank
    out = M.retrieval_intervals(np.ones(50, int), np.full(7, 30), resamples=50)
    assert out["t2i_R@1"] == [100.0, 100.0] and out["i2t_R@10"] == [0.0, 0.0]
    assert out["rsum"] == [300.0, 300.0] and out["i2t_medr"] == [30.0, 30.0]


# ------------------------------------------------------------------------------ paired delta


def test_paired_delta_of_a_model_with_itself_is_zero_with_zero_width():
    rng = np.random.default_rng(0)
    r = _model_ranks(rng, 500, 100)
    delta, lo, hi = M.paired_bootstrap_delta(r, r, M.retrieval_metric_fn("rsum"), B=200, seed=1)
    assert (delta, lo, hi) == (0.0, 0.0, 0.0)


def test_paired_delta_is_a_minus_b_and_detects_a_consistent_small_gain():
    rng = np.random.default_rng(1)
    base = rng.integers(1, 30, 400)
    better = base.copy()
    better[:40] = 1  # 40 more queries at rank 1 (some were already there)
    gain = 100.0 * (np.mean(better == 1) - np.mean(base == 1))

    def r_at_1(r):
        return M.recall_at_k(r, 1)

    delta, lo, hi = M.paired_bootstrap_delta(better, base, r_at_1, B=500, seed=0)
    assert delta == pytest.approx(gain)
    assert 0.0 < lo <= delta <= hi  # every resample favours `better`: significant
    reverse = M.paired_bootstrap_delta(base, better, r_at_1, B=500, seed=0)
    assert reverse == pytest.approx((-delta, -hi, -lo))


def test_paired_delta_needs_the_same_queries():
    with pytest.raises(DataError, match="same queries"):
        M.paired_bootstrap_delta(np.ones(5), np.ones(6), np.mean, B=10, seed=0)
    with pytest.raises(DataError, match="same queries"):
        M.paired_bootstrap_delta((np.ones(5), np.ones(2)), (np.ones(5), np.ones(3)), len, 10, 0)


@pytest.mark.parametrize("metric", ["rsum", "t2i_R@5", "i2t_medr", "t2i_meanr"])
def test_batched_paired_delta_draws_and_scores_the_same_resamples(metric):
    from vilem.metrics.paired import probe_inputs

    rng = np.random.default_rng(3)
    a, b = _model_ranks(rng, 300, 60), _model_ranks(rng, 300, 60)
    fn = M.retrieval_metric_fn(metric)
    assert hasattr(fn, "batched")

    def one_at_a_time(r):  # the same metric without the batched path
        return fn(r)

    for B in (1, 7, 300):  # blocks of resamples must not change the draws
        fast = M.paired_bootstrap_delta(a, b, fn, B=B, seed=4)
        assert fast == pytest.approx(M.paired_bootstrap_delta(a, b, one_at_a_time, B, 4))
    cats = ["colour"] * 30 + ["relation"] * 20
    words = [None] * 30 + ["above", "below"] * 10
    run = {"category": cats, "word": words}
    pa = {**run, "correct": rng.integers(0, 2, 50).tolist()}
    pb = {**run, "correct": rng.integers(0, 2, 50).tolist()}
    for name in ("macro", "overall", "acc_colour", "acc_relation"):
        parts_a, parts_b, probe_fn = probe_inputs(name, pa, pb)
        assert hasattr(probe_fn, "batched")
        fast = M.paired_bootstrap_delta(parts_a, parts_b, probe_fn, B=200, seed=5)
        slow = M.paired_bootstrap_delta(parts_a, parts_b, lambda p, f=probe_fn: f(p), 200, 5)
        assert fast == pytest.approx(slow)


def test_paired_delta_takes_a_plain_list_as_one_query_set():
    # hand case: A right on queries 0-2, B on query 0 only -> delta 2/4 of the queries
    delta, lo, hi = M.paired_bootstrap_delta([1, 1, 1, 0], [1, 0, 0, 0], np.mean, B=50, seed=0)
    assert delta == 0.5 and 0.0 <= lo <= hi <= 1.0


def test_retrieval_metric_fn_matches_metrics_from_ranks():
    rng = np.random.default_rng(2)
    r = _model_ranks(rng, 300, 60)
    table = M.metrics_from_ranks(*r)
    for name, value in table.items():
        assert M.retrieval_metric_fn(name)(r) == pytest.approx(value), name
    with pytest.raises(ConfigError, match="did you mean"):
        M.retrieval_metric_fn("t2i_medianr")


# ------------------------------------------------------------------------------ probes


def test_probe_accuracy_counts_ties_as_wrong_per_category_and_overall():
    pos = [0.5, 0.3, 0.2, 1.0, 1.0]
    neg = [0.4, 0.3, 0.6, 0.0, 0.0]
    cats = ["colour", "colour", "colour", "shape", "shape"]
    out = M.probe_accuracy(pos, neg, cats)
    # colour: right, tie (wrong), wrong -> 1/3; shape: 2/2
    assert out["acc_colour"] == pytest.approx(100 / 3) and out["acc_shape"] == 100.0
    assert out["macro"] == pytest.approx((100 / 3 + 100) / 2)
    assert out["overall"] == pytest.approx(60.0)  # 3 of 5
    assert out["counts"] == {"colour": 3, "shape": 2}


def test_probe_bootstrap_intervals_per_category_are_seeded_and_contain_the_estimate():
    rng = np.random.default_rng(0)
    pos = rng.standard_normal(600)
    neg = pos - rng.standard_normal(600) + 0.3  # ~40% right
    cats = np.repeat(["a", "b", "c"], 200)
    neg[cats == "c"] = pos[cats == "c"] - 1.0  # category c always right
    out = M.probe_accuracy(pos, neg, cats, bootstrap=300, seed=5)
    assert set(out["intervals"]) == {"overall", "macro", "acc_a", "acc_b", "acc_c"}
    for name, (lo, hi) in out["intervals"].items():
        assert lo <= out[name] <= hi, name
    assert out["intervals"]["acc_c"] == [100.0, 100.0]
    lo, hi = out["intervals"]["acc_a"]
    assert 0 < hi - lo < 20
    assert M.probe_accuracy(pos, neg, cats, bootstrap=300, seed=5)["intervals"] == out["intervals"]


def test_word_balanced_accuracy_gives_a_blind_word_preference_exactly_50():
    # an image-blind text tower that always scores "above" over "below": right on the 3
    # "above" positives, wrong on the 1 "below" one -> raw 75%, balanced (75 + 0) / 2... per
    # word: above 100, below 0 -> 50; colour has no key words and stays unbalanced
    pos = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    neg = [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    cats = ["relation"] * 4 + ["colour"] * 2
    words = ["above", "above", "above", "below", None, None]
    out = M.probe_accuracy(pos, neg, cats, words=words, bootstrap=200, seed=1)
    assert out["acc_relation"] == 75.0 and out["acc_relation_bal"] == 50.0
    assert "acc_colour_bal" not in out and out["acc_colour"] == 50.0
    assert out["macro"] == 50.0  # the balanced relation figure enters the macro mean
    assert out["overall"] == pytest.approx(400 / 6)
    # per word every probe agrees, so the balanced interval has no width
    assert out["intervals"]["acc_relation_bal"] == [50.0, 50.0]
    lo, hi = out["intervals"]["acc_relation"]
    assert lo <= 75.0 <= hi
    without = M.probe_accuracy(pos, neg, cats)
    assert without["macro"] == (75.0 + 50.0) / 2 and "acc_relation_bal" not in without


def test_probe_accuracy_rejects_bad_input():
    with pytest.raises(DataError, match="equal-length"):
        M.probe_accuracy([1.0, 2.0], [1.0], ["a", "a"])
    with pytest.raises(DataError, match="NaN"):
        M.probe_accuracy([np.nan], [1.0], ["a"])


# ------------------------------------------------------------------------------ proofreading


def _proofread_case():
    prob = np.array([[0.9, 0.6, 0.4, 0.2], [0.5, 0.7, 0.99, 0.1]])
    err = np.array([[1, 0, 1, 0], [1, 0, 1, 1]])
    valid = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)  # last two tokens: padding
    return prob, err, valid


def test_proofreading_precision_recall_f1_ap_on_a_hand_case():
    out = M.proofreading_metrics(*_proofread_case())
    # valid tokens: p .9 .6 .4 .2 .5 .7, edited 1 0 1 0 1 0; flagged (> .5): .9 .6 .7
    # TP = 1 (.9), FP = 2 (.6, .7), FN = 2 (.4, .5: exactly .5 is not flagged)
    assert out["ed_precision"] == pytest.approx(100 / 3)
    assert out["ed_recall"] == pytest.approx(100 / 3)
    assert out["ed_f1"] == pytest.approx(100 / 3)
    # by score: .9(+) .7 .6 .5(+) .4(+) .2 -> precision at each recall step: 1/1, 2/4, 3/5
    # AP = 1/3 * (1 + 1/2 + 3/5) = 0.7
    assert out["ed_ap"] == pytest.approx(70.0)
    assert out["counts"] == {"tokens": 6, "edited": 3, "flagged": 3}
    assert "ec_accuracy" not in out


def test_proofreading_correction_accuracy_counts_only_truly_edited_valid_tokens():
    prob, err, valid = _proofread_case()
    target = np.array([[10, 11, 12, 13], [14, 15, 16, 17]])
    pred = np.array([[10, 0, 0, 0], [14, 0, 0, 0]])  # right at 2 of the 3 edited valid tokens
    out = M.proofreading_metrics(prob, err, valid, pred, target)
    assert out["ec_accuracy"] == pytest.approx(200 / 3)


def test_average_precision_matches_scikit_learn_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(50) < 0.3
        y[0] = True
        scores = rng.integers(0, 6, 50) / 5  # many tied scores
        assert M.average_precision(y, scores) == pytest.approx(average_precision_score(y, scores))


def test_proofreading_rejects_mismatched_shapes_and_no_edits():
    prob, err, valid = _proofread_case()
    with pytest.raises(DataError, match="same shape"):
        M.proofreading_metrics(prob, err[:1], valid)
    with pytest.raises(DataError, match="edited token"):
        M.proofreading_metrics(prob, np.zeros_like(err), valid)
    with pytest.raises(DataError, match="together"):
        M.proofreading_metrics(prob, err, valid, correction_pred=err)


# ------------------------------------------------------------------------------ inputs, table


@pytest.mark.parametrize(
    ("items", "texts", "owner", "message"),
    [
        (np.eye(2), np.eye(3), [0, 1, 1], "dim"),
        (np.eye(2), np.eye(2), [0, 1, 1], "one entry per text"),
        (np.eye(2), np.eye(2), [0, 2], "not an item index"),
        (np.eye(2), np.eye(2), [0, 0], "have no text"),
        (np.eye(2), np.eye(2), [0.0, 1.0], "integer"),
        (np.eye(2), np.array([[np.nan, 0.0], [0.0, 1.0]]), [0, 1], "NaN"),
        (np.zeros((0, 2)), np.eye(2), [0, 1], "non-empty"),
    ],
)
def test_bad_retrieval_input_is_a_data_error(items, texts, owner, message):
    with pytest.raises(DataError, match=message):
        M.retrieval_metrics(items, texts, owner)


def test_embeddings_whose_scores_overflow_are_refused_not_ranked_optimistically():
    # finite rows whose float32 dot products are inf: every score ties, and i2t would have
    # come out at rank 1 (the best) while t2i stayed at the worst
    huge = np.full((2, 1), 1e20, np.float32)
    with pytest.raises(DataError, match="overflow"):
        M.ranks(huge, huge, [0, 1])
    # large entries whose norms still multiply safely are ranked as usual (the cheap
    # elementwise bound trips, the norm bound does not: D max|a| max|b| > limit > |a| |b|)
    big = np.zeros((2, 64), np.float32)
    big[0, 0] = big[1, 1] = 5e18
    t2i, i2t = M.ranks(big, big, [0, 1])
    assert t2i.tolist() == [1, 1] and i2t.tolist() == [1, 1]


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="chunk_size"):
        M.ranks(ONE_HOT_3, ONE_HOT_3, [0, 1, 2], chunk_size=0)
    with pytest.raises(ConfigError, match="repeated"):
        M.retrieval_metrics(ONE_HOT_3, ONE_HOT_3, [0, 1, 2], ks=(1, 1))
    with pytest.raises(ConfigError, match="bootstrap"):
        M.retrieval_metrics(ONE_HOT_3, ONE_HOT_3, [0, 1, 2], bootstrap=-1)


def test_metric_registry_knows_every_reported_metric_and_its_direction():
    out = M.retrieval_metrics(ONE_HOT_3, SIMS_3x6, OWNER_3x6, ks=(1, 5, 10, 50))
    for name in out:
        spec = M.metric_spec(name)
        assert spec.higher_is_better == ("medr" not in name and "meanr" not in name)
        assert spec.unit == ("rank" if not spec.higher_is_better else "%")
        assert spec.display and M.higher_is_better(name) is spec.higher_is_better
    for name in ("macro", "overall", "ed_f1", "ed_ap", "ec_accuracy", "acc_colour", "acc_x_bal"):
        assert M.metric_spec(name).higher_is_better is True
    assert M.metric_spec("t2i_R@50").display == "T→I R@50"
    assert M.find_metric("t2i_R@0") is None and M.find_metric("nonsense") is None
    assert M.higher_is_better("a_metric_from_a_newer_vilem")
    with pytest.raises(ConfigError, match="did you mean 'rsum'"):
        M.metric_spec("rsun")
