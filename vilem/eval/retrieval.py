"""The retrieval task: text->item and item->text recall@K, RSUM and ranks, with per-query ranks
for paired deltas (``vilem.metrics.paired.retrieval_inputs``)."""

from __future__ import annotations

from vilem import metrics as M
from vilem.dist import is_main
from vilem.eval.engine import TaskRun, save_embeddings
from vilem.eval.tasks import TaskOutput


def run(r: TaskRun) -> TaskOutput:
    texts = r.timed("encode_texts", lambda: r.encode_texts(r.split.texts))
    t2i, i2t = r.timed("metrics", lambda: M.ranks(r.items, texts, r.split.text_to_item))
    scores = M.metrics_from_ranks(t2i, i2t)
    if r.opts.bootstrap:
        scores["intervals"] = M.retrieval_intervals(
            t2i, i2t, resamples=r.opts.bootstrap, seed=r.opts.seed
        )
    if r.save_embeddings_dir is not None and is_main():
        save_embeddings(r.save_embeddings_dir, r.split, r.items, texts)
    return TaskOutput(scores, {"t2i_ranks": t2i.tolist(), "i2t_ranks": i2t.tolist()})
