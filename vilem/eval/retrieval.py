"""The retrieval task: text->item and item->text recall@K, RSUM and ranks, with per-query ranks
for paired deltas (``vilem.metrics.paired.retrieval_inputs``). With ``opts.rerank`` the ranks
come from re-ranked similarities (``vilem.eval.rerank``), and with ``opts.i2t_ranking="grouped"``
item->text ranks the items by their best text (CLIP4Clip's multi-caption count): each a separate
protocol, recorded."""

from __future__ import annotations

from typing import Any

import numpy as np

from vilem import metrics as M
from vilem.dist import is_main
from vilem.eval.engine import TaskRun, save_embeddings
from vilem.eval.tasks import TaskOutput


def _reranked(r: TaskRun, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    from vilem.eval.rerank import rerank_ranks, rerank_record

    sim = texts @ r.items.T
    bank = None
    if r.opts.rerank == "qb-norm":
        bank = r.encode_texts(list(r.opts.querybank or [])) @ r.items.T
    t2i, i2t, record = rerank_ranks(
        sim, r.split.text_to_item, r.opts.rerank, text_bank=bank, i2t_ranking=r.opts.i2t_ranking
    )
    return t2i, i2t, rerank_record(record, r.opts.querybank_label)


def run(r: TaskRun) -> TaskOutput:
    texts = r.timed("encode_texts", lambda: r.encode_texts(r.split.texts))
    extra: dict[str, Any] = {}
    if r.opts.rerank:
        t2i, i2t, extra["rerank"] = r.timed("metrics", lambda: _reranked(r, texts))
    else:
        ranking = r.opts.i2t_ranking
        t2i, i2t = r.timed(
            "metrics", lambda: M.ranks(r.items, texts, r.split.text_to_item, i2t_ranking=ranking)
        )
    ks = r.opts.recall_ks
    scores = M.metrics_from_ranks(t2i, i2t, ks)
    if r.opts.bootstrap:
        scores["intervals"] = M.retrieval_intervals(
            t2i, i2t, ks, resamples=r.opts.bootstrap, seed=r.opts.seed
        )
    if r.save_embeddings_dir is not None and is_main():
        save_embeddings(r.save_embeddings_dir, r.split, r.items, texts)
    per_query = {"t2i_ranks": t2i.tolist(), "i2t_ranks": i2t.tolist()}
    return TaskOutput(scores, per_query, extra)
