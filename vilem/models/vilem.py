"""A ViLEM checkpoint (or its ITC-only twin) behind the evaluation interface: ``vilem:DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vilem.errors import ConfigError
from vilem.model.config import config_to_dict
from vilem.model.vilem import ViLEM
from vilem.models.base import RetrievalModel, register_model, state_dict_digest

PROOFREAD_CHUNK = 64  # captions per ED/EC pass in proofread()


class ViLEMRetrieval(RetrievalModel):
    """Retrieval with a ViLEM model: only its encoders and projections run.

    Args:
        model: a ViLEM model (e.g. from ``vilem.model.checkpoint.load_model``).
        device: where encoding runs; embeddings are returned on the CPU.
        source: the checkpoint folder, recorded in ``config()``.
    """

    def __init__(self, model: ViLEM, device: str = "cpu", source: str | None = None):
        self.model = model.to(device).eval()
        self.device = device
        self.source = source
        self.image_size = model.config.vision.image_size
        mean, std = model.image_mean_std()
        self.mean, self.std = tuple(mean), tuple(std)
        self._digest: str | None = None

    @property
    def has_proofreading_heads(self) -> bool:
        """True unless this is an ITC-only checkpoint (then there is nothing to proofread)."""
        return not self.model.config.itc_only

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) exactly as ``encode_texts`` and ``proofread`` see them."""
        return self.model.tokenize(texts)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels.to(self.device)).float().cpu()

    @torch.no_grad()
    def encode_videos(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_video(pixels.to(self.device)).float().cpu()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self.model.config.embed_dim)
        ids, mask = self.model.tokenize(texts)
        return self.model.encode_text(ids, mask).float().cpu()

    @torch.no_grad()
    def proofread(
        self,
        texts_edited: list[str],
        pixels: torch.Tensor,
        correct_at: torch.Tensor | None = None,
        item_of: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The proofreading probe: for each token of each (edited) text, the ED head's
        probability that it was replaced, and the EC head's top-1 token id.

        Positions align with ``self.tokenize(texts_edited)``; CLS, SEP and padding get error
        probability 0 and correction id -100. The local branch is used when the model has one,
        else the global one. A head the model lacks gives None.

        Args:
            texts_edited: B captions.
            pixels: (B, 3, S, S) images or (B, T, 3, S, S) videos, preprocessed; with
                ``item_of``, (N, ...): the distinct items, encoded once each.
            item_of: optional (B,) long: text i is about ``pixels[item_of[i]]``.
            correct_at: optional bool (B, L') of the positions whose correction is wanted
                (e.g. the edited ones); the others get -100. Columns beyond L are ignored.
                Default: every token.

        Raises:
            ConfigError: for an ITC-only model (no heads).
        """
        cfg = self.model.config
        if cfg.itc_only:
            raise ConfigError("this model has no ED/EC heads (an ITC-only checkpoint)")
        if not texts_edited:
            empty = torch.zeros(0, 0)
            return (empty if cfg.use_ed else None), (empty.long() if cfg.use_ec else None)
        ids, mask = self.model.tokenize(texts_edited)
        if item_of is None and pixels.shape[0] != ids.shape[0]:
            raise ValueError(f"{ids.shape[0]} texts but {pixels.shape[0]} images/videos")
        if item_of is not None and (
            item_of.shape != (ids.shape[0],) or int(item_of.min()) < 0
            or int(item_of.max()) >= pixels.shape[0]
        ):  # fmt: skip
            raise ValueError(f"item_of must give each of {ids.shape[0]} texts an item row")
        special = torch.isin(
            ids, torch.tensor(self.model.tokenizer.all_special_ids, device=ids.device)
        )
        ignored = (special | ~mask.bool()).cpu()
        wanted = ~ignored  # the vocabulary product runs only at the positions to correct
        if correct_at is not None:
            given = torch.zeros_like(wanted)
            width = min(given.shape[1], correct_at.shape[1])
            given[:, :width] = correct_at[:, :width].bool().cpu()
            wanted &= given
        probs, top1s = [], []
        # chunks bound the (rows, vocab) correction logits
        for s in range(0, ids.shape[0], PROOFREAD_CHUNK):
            sl = slice(s, s + PROOFREAD_CHUNK)
            rows, index = pixels[sl], None
            if item_of is not None:  # the chunk's distinct items, each encoded once
                used, index = item_of[sl].unique(return_inverse=True)
                rows, index = pixels[used], index.to(self.device)
            ed, ec = self.model.proofread_logits(
                rows.to(self.device), ids[sl], mask[sl], wanted[sl].to(self.device), index
            )
            probs.append(None if ed is None else ed.float().softmax(dim=-1)[..., 1].cpu())
            if ec is not None:
                top1 = torch.full(wanted[sl].shape, -100, dtype=torch.long)
                top1[wanted[sl]] = ec.argmax(dim=-1).cpu()
                top1s.append(top1)
        prob = None if probs[0] is None else torch.cat(probs).masked_fill(ignored, 0.0)
        top1 = torch.cat(top1s) if top1s else None
        return prob, top1

    @property
    def text_max_len(self) -> int:
        return self.model.config.text.max_len

    def config(self) -> dict[str, Any]:
        return {
            "name": "vilem",
            "checkpoint": self.source,
            "itc_only": self.model.config.itc_only,
            "model": config_to_dict(self.model.config),
        }

    def weights_digest(self) -> str:
        # the embeddings depend only on the retrieval encoders, not on heads or momentum copies
        if self._digest is None:
            self._digest = state_dict_digest(self.model.retrieval_modules())
        return self._digest


@register_model("vilem")
def build_vilem(argument: str | None, device: str = "cpu") -> ViLEMRetrieval:
    """``vilem:DIR`` where DIR is a checkpoint written by ``vilem.model.checkpoint.save_model``
    (ViLEM or, with use_ed/use_ec off, its ITC-only baseline)."""
    from vilem.model.checkpoint import load_model

    if not argument:
        raise ConfigError("model spec 'vilem' needs a checkpoint folder: vilem:path/to/checkpoint")
    return ViLEMRetrieval(load_model(argument, device="cpu"), device, source=str(Path(argument)))
