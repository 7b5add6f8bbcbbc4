"""Re-ranking (dual softmax and QB-Norm) on hand-computed 3x3 matrices, and ranks from full
score matrices agreeing with the chunked metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vilem import metrics as M
from vilem.errors import ConfigError, DataError
from vilem.eval.rerank import (
    dual_softmax,
    qb_norm,
    ranks_from_scores,
    rerank_ranks,
    rerank_record,
)

LN2, LN3 = math.log(2), math.log(3)


# -- dual softmax --------------------------------------------------------------------------

# texts x items; with temperature 1 the softmaxes are ratios of small integers
SIM = np.array(
    [
        [LN2, 0.0, LN3],
        [0.0, LN2, 0.0],
        [0.0, 0.0, 0.0],
    ]
)


def test_dsl_for_text_queries_weights_by_a_softmax_over_texts():
    # column 0: exp = [2, 1, 1] -> [1/2, 1/4, 1/4]; column 1: [1, 2, 1] -> [1/4, 1/2, 1/4];
    # column 2: [3, 1, 1] -> [3/5, 1/5, 1/5]
    expected = np.array(
        [
            [LN2 / 2, 0.0, LN3 * 3 / 5],
            [0.0, LN2 / 2, 0.0],
            [0.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_allclose(dual_softmax(SIM, 1.0, "texts"), expected, rtol=1e-12)


def test_dsl_for_item_queries_weights_by_a_softmax_over_items():
    # row 0: exp = [2, 1, 3] -> [1/3, 1/6, 1/2]; row 1: [1, 2, 1] -> [1/4, 1/2, 1/4]; row 2: 1/3
    expected = np.array(
        [
            [LN2 / 3, 0.0, LN3 / 2],
            [0.0, LN2 / 2, 0.0],
            [0.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_allclose(dual_softmax(SIM, 1.0, "items"), expected, rtol=1e-12)


def test_dsl_default_temperature_is_one_hundredth_and_stable_for_large_logits():
    sim = np.array([[0.9, 0.8, -0.3], [0.85, 0.1, 0.2], [0.2, 0.3, 0.95]])
    manual = sim * np.exp(sim * 100) / np.exp(sim * 100).sum(axis=0, keepdims=True)
    np.testing.assert_allclose(dual_softmax(sim), manual, rtol=1e-10)
    assert np.isfinite(dual_softmax(sim * 50)).all()  # logits of 4,750 do not overflow


def test_dsl_demotes_an_item_that_prefers_another_text():
    # text 1 ranks item 0 first (0.8 vs 0.7), but item 0 belongs much more to text 0
    sim = np.array([[0.95, 0.1, 0.0], [0.8, 0.7, 0.0], [0.0, 0.1, 0.9]])
    assert np.argmax(sim[1]) == 0
    assert np.argmax(dual_softmax(sim, 0.05, "texts")[1]) == 1


# -- QB-Norm -------------------------------------------------------------------------------

BANK = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.5]])  # both bank queries retrieve item 0 first
QUERIES = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.3], [0.6, 0.1, 0.6]])


def test_qb_norm_normalises_only_queries_whose_top_item_the_bank_activates():
    # activation set {0}; beta = 1: column log-sums of exp(bank) are
    # item 0: log(2e) = 1 + ln2, item 1: log(2) = ln2, item 2: log(1 + e^0.5)
    got = qb_norm(QUERIES, BANK, beta=1.0, k=1)
    log_norm = np.array([1 + LN2, LN2, math.log(1 + math.exp(0.5))])
    np.testing.assert_allclose(got[0], QUERIES[0] - log_norm, rtol=1e-12)  # top-1 item 0
    np.testing.assert_array_equal(got[1], QUERIES[1])  # top-1 item 1: not activated
    # a tie between items 0 and 2 takes the lower index, item 0: normalised
    np.testing.assert_allclose(got[2], QUERIES[2] - log_norm, rtol=1e-12)
    # the hub item 0 loses its lead: -0.1 - ln2 < 0.5 - ln2
    assert np.argmax(got[0]) == 1


def test_qb_norm_is_the_log_of_the_papers_inverted_softmax():
    got = qb_norm(QUERIES, BANK, beta=20.0)
    paper = np.exp(20 * QUERIES[0]) / np.exp(20 * BANK).sum(axis=0)
    np.testing.assert_allclose(np.exp(got[0]), paper, rtol=1e-10)


def test_qb_norm_k_widens_the_activation_set():
    # k = 2 adds the bank's second choices (item 1 for row 0 by the lower-index tie rule,
    # item 2 for row 1): query 1, whose top item is 1, is now normalised too
    np.testing.assert_array_equal(qb_norm(QUERIES, BANK, beta=1.0, k=1)[1], QUERIES[1])
    log_norm = np.array([1 + LN2, LN2, math.log(1 + math.exp(0.5))])
    got = qb_norm(QUERIES, BANK, beta=1.0, k=2)
    np.testing.assert_allclose(got[1], QUERIES[1] - log_norm, rtol=1e-12)


def test_qb_norm_refuses_the_test_queries_as_querybank():
    with pytest.raises(ConfigError, match="querybank is the test queries"):
        qb_norm(QUERIES, QUERIES.copy())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"beta": 0}, ConfigError, "beta must be a positive number"),
        ({"k": 0}, ConfigError, "k must be an integer >= 1"),
        ({"bank_sim": np.ones((2, 4))}, DataError, "querybank scores 4 gallery items"),
        ({"bank_sim": np.array([[np.nan, 0, 0]])}, DataError, "non-finite"),
    ],
)
def test_qb_norm_bad_arguments(kwargs, error, message):
    args = {"sim": QUERIES, "bank_sim": BANK} | kwargs
    with pytest.raises(error, match=message):
        qb_norm(**args)


# -- ranks and the record ------------------------------------------------------------------


def test_ranks_from_scores_agree_with_the_chunked_metrics():
    rng = np.random.default_rng(0)
    items = rng.integers(-3, 4, size=(6, 4)).astype(np.float32)  # exact dot products, ties too
    texts = rng.integers(-3, 4, size=(11, 4)).astype(np.float32)
    owner = np.array([0, 0, 1, 2, 2, 2, 3, 4, 5, 5, 1])
    sim = texts @ items.T
    t2i, i2t = ranks_from_scores(sim, sim, owner)
    want_t2i, want_i2t = M.ranks(items, texts, owner)
    assert t2i.tolist() == want_t2i.tolist() and i2t.tolist() == want_i2t.tolist()


@pytest.mark.parametrize("seed", range(3))
def test_grouped_ranks_from_scores_agree_with_the_chunked_metrics(seed):
    rng = np.random.default_rng(seed)
    items = rng.integers(-3, 4, size=(7, 4)).astype(np.float32)  # exact products, ties too
    texts = rng.integers(-3, 4, size=(16, 4)).astype(np.float32)
    owner = np.concatenate([np.arange(7), rng.integers(0, 7, 9)])
    sim = texts @ items.T
    t2i, i2t = ranks_from_scores(sim, sim, owner, "grouped")
    want_t2i, want_i2t = M.ranks(items, texts, owner, i2t_ranking="grouped")
    assert t2i.tolist() == want_t2i.tolist() and i2t.tolist() == want_i2t.tolist()
    plain = ranks_from_scores(sim, sim, owner)[1]
    assert (i2t <= plain).all()  # rivals' extra texts can only push an item down among texts


def test_grouped_ranks_equal_all_texts_with_one_text_per_item():
    rng = np.random.default_rng(0)
    sim = rng.standard_normal((9, 9))
    owner = rng.permutation(9)
    assert ranks_from_scores(sim, sim, owner, "grouped")[1].tolist() == (
        ranks_from_scores(sim, sim, owner)[1].tolist()
    )
    t2i, i2t, _ = rerank_ranks(sim, owner, "dsl", i2t_ranking="grouped")
    assert i2t.tolist() == rerank_ranks(sim, owner, "dsl")[1].tolist()


def test_ranks_from_scores_hand_case_with_a_tie():
    scores = np.array([[0.9, 0.9, 0.1], [0.2, 0.8, 0.3], [0.1, 0.2, 0.3]])
    t2i, i2t = ranks_from_scores(scores, scores, [0, 1, 2])
    assert t2i.tolist() == [2, 1, 1]  # the tie ranks the negative first
    assert i2t.tolist() == [1, 2, 2]  # item 1: text 0's 0.9 beats its own 0.8; item 2 ties


def test_rerank_ranks_dsl_and_qb_norm_records():
    t2i, i2t, record = rerank_ranks(QUERIES, [0, 1, 2], "dsl")
    assert record == {"method": "dsl", "temperature": 0.01, "directions": ["t2i", "i2t"]}
    assert len(t2i) == 3 and len(i2t) == 3
    t2i, i2t, record = rerank_ranks(QUERIES, [0, 1, 2], "qb-norm", text_bank=BANK, beta=1.0)
    assert record["directions"] == ["t2i"] and record["querybank_texts"] == 2
    assert (
        t2i.tolist()
        == ranks_from_scores(qb_norm(QUERIES, BANK, 1.0), QUERIES, [0, 1, 2])[0].tolist()
    )
    assert i2t.tolist() == ranks_from_scores(QUERIES, QUERIES, [0, 1, 2])[1].tolist()
    labelled = rerank_record(record, "toy/train captions")
    assert labelled["protocol"] == "re-ranked (qb-norm)" and labelled["querybank"]
    with pytest.raises(ConfigError, match="must name its querybank"):
        rerank_record(record)
    with pytest.raises(ConfigError, match="needs a querybank of training captions"):
        rerank_ranks(QUERIES, [0, 1, 2], "qb-norm")
    with pytest.raises(ConfigError, match="unknown re-ranking 'dls'"):
        rerank_ranks(QUERIES, [0, 1, 2], "dls")
