"""Retrieval validation during training, through the evaluation engine's encode path.

The live (training) ViLEM module is wrapped as the evaluation interface's ``ViLEMRetrieval``
and encoded with ``vilem.eval.engine.encode_items`` / ``encode_texts``, uncached, under the
trainer's device and autocast: the same loading, preprocessing and batching as ``vilem eval``.
"""

from __future__ import annotations

from typing import Any

import torch

from vilem.data.base import Split
from vilem.eval.cache import EmbeddingCache
from vilem.eval.engine import EvalOptions, encode_items, encode_texts
from vilem.models.vilem import ViLEMRetrieval

VAL_BATCH = 64  # items or captions per encoding batch


class LiveViLEMRetrieval(ViLEMRetrieval):
    """``ViLEMRetrieval`` over a module that is still training. Its weights change every step
    and validation never caches embeddings, so the fingerprint does not hash them."""

    def weights_digest(self) -> str:
        return "live"


def live_retrieval(model: torch.nn.Module, device: torch.device) -> ViLEMRetrieval:
    """The raw (not DDP-wrapped) training module as an evaluation model on ``device``; note
    that this puts ``model`` in eval mode."""
    return LiveViLEMRetrieval(model, str(device))


class Validator:
    """Encodes a validation split with the dual encoder and scores retrieval both ways.

    Every rank calls it: the engine shards the items and texts over the process group in whole
    batches and gathers them back, so the embeddings are those of a single process.
    """

    def __init__(self, split: Split, frames: int, batch_size: int = VAL_BATCH):
        self.split = split
        self.opts = EvalOptions(
            batch_size=batch_size,
            num_workers=0,  # loading in the training process: no worker start-up per call
            frames=frames,
            sampling="uniform",
            bootstrap=0,
            cache_dir=None,
            quiet=True,
        )

    @torch.no_grad()
    def __call__(self, model: Any, device: torch.device, amp: torch.dtype | None) -> dict:
        """Retrieval metrics (percent; ``t2i_R@1`` ... ``rsum``) of ``model`` on the split."""
        from vilem.metrics import retrieval_metrics

        was_training = model.training
        cache = EmbeddingCache(None)
        # the engine's DataLoader draws a base seed from the global RNG; training's dropout
        # stream must not see validation, so the CPU generator is restored afterwards
        with torch.random.fork_rng(devices=[]):
            try:
                retrieval = live_retrieval(model, device)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    items = encode_items(retrieval, self.split, self.opts, cache)
                    texts = encode_texts(retrieval, self.split.texts, self.opts, cache)
            finally:
                model.train(was_training)
        metrics = retrieval_metrics(items, texts, self.split.text_to_item)
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
