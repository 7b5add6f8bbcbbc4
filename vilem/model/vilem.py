"""ViLEM (CVPR 2023): a dual encoder trained with ITC plus visual-language error modeling.

Retrieval uses only ``encode_image`` / ``encode_text`` (ViT + BERT, linear projections, L2 norm),
so a ViLEM model encodes exactly as fast as its ITC-only twin. Training adds, on captions edited
by a frozen MLM (``vilem.model.negatives``):
- error detection (ED): which tokens were replaced;
- error correction (EC): which token was there before;
both predicted from layer K of the text encoder (K = ``fusion_layer``), which sees the image
either globally (the projected CLS added to every token at the input of layer 0) or locally
(inside each of the first K layers, cross-attention to the patch tokens of one ViT depth between
self-attention and feed-forward, as ALBEF's fusion layers).

Reads top to bottom: configs, blocks, model.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn

from vilem.errors import ConfigError
from vilem.model.config import IMAGENET_MEAN, IMAGENET_STD, ViLEMConfig
from vilem.model.heads import (
    CrossAttentionBlock,
    ErrorCorrectionHead,
    ErrorDetectionHead,
    local_blocks,
)
from vilem.model.losses import (
    contrastive_loss,
    error_correction_loss,
    error_detection_loss,
    gather_with_local_grad,
)
from vilem.model.negatives import Editor
from vilem.model.towers import ImageTower, TextTower, load_tokenizer, tokenize

# ---------------------------------------------------------------------------------------------
# model

RETRIEVAL_MODULES = ("image_tower", "text_tower", "vision_proj", "text_proj")


class ViLEM(nn.Module):
    """The ViLEM dual encoder and its training losses.

    Args:
        cfg: the model config (validated here).
        load_pretrained: load tower weights named by the config (off when a checkpoint follows).

    Training ED/EC needs ``model.editor``, the negative generator (``vilem.model.negatives``);
    the trainer sets it (``vilem.train.editor.make_editor``), so evaluation never needs an MLM.
    """

    def __init__(self, cfg: ViLEMConfig, load_pretrained: bool = True):
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.tokenizer = load_tokenizer(cfg.text)
        self.image_tower = ImageTower(cfg.vision, load_pretrained)
        self.text_tower = TextTower(cfg.text, len(self.tokenizer), load_pretrained)
        if cfg.fusion_layer > self.text_tower.num_layers:
            raise ConfigError(
                f"model.fusion_layer ({cfg.fusion_layer}) exceeds the text tower's "
                f"{self.text_tower.num_layers} layers"
            )
        iw, tw = self.image_tower.width, self.text_tower.width
        self.vision_proj = nn.Linear(iw, cfg.embed_dim)
        self.text_proj = nn.Linear(tw, cfg.embed_dim)
        self.temp = nn.Parameter(torch.tensor(cfg.temp_init))

        self._editor: Editor | None = None
        self.local_blocks: list[int] = []
        if not cfg.itc_only:
            bert_cfg = self.text_tower.bert.config
            if cfg.use_global:
                self.global_proj = nn.Linear(iw, tw)
            if cfg.use_local:
                self.local_blocks = local_blocks(self.image_tower.depth, cfg.fusion_layer)
                self.cross_blocks = nn.ModuleList(
                    CrossAttentionBlock(
                        tw, iw, bert_cfg.num_attention_heads, bert_cfg.hidden_dropout_prob
                    )
                    for _ in range(cfg.fusion_layer)
                )
            if cfg.use_ed:
                self.ed_head = ErrorDetectionHead(tw)
            if cfg.use_ec:
                self.ec_head = ErrorCorrectionHead(tw, self.text_tower.bert.config.vocab_size)

        if cfg.momentum:
            # EMA copies of the retrieval encoders; never trained by gradient
            for name in RETRIEVAL_MODULES:
                twin = copy.deepcopy(getattr(self, name)).requires_grad_(False)
                setattr(self, f"{name}_m", twin)
            if cfg.queue_size:
                q, d = cfg.queue_size, cfg.embed_dim
                self.register_buffer("image_queue", torch.zeros(q, d))
                self.register_buffer("text_queue", torch.zeros(q, d))
                self.register_buffer("id_queue", torch.full((q,), -1, dtype=torch.long))
                self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
                self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    # -- negatives ------------------------------------------------------------------------------

    @property
    def editor(self) -> Editor | None:
        """The negative-caption generator; ED/EC training refuses to run without one."""
        if self._editor is None and not self.config.itc_only:
            raise ConfigError(
                "this ViLEM model trains ED/EC but has no negative editor: set model.editor "
                "(vilem.model.negatives.build_editor; the trainer builds it from mlm_path)"
            )
        return self._editor

    @editor.setter
    def editor(self, value: Editor) -> None:
        self._editor = value

    # -- retrieval encoders -----------------------------------------------------------------------

    def image_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Pixel normalisation: the timm architecture's own, else ImageNet's."""
        return self.image_tower.mean_std() or (IMAGENET_MEAN, IMAGENET_STD)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Strings -> (input_ids, attention_mask) on the model's device (``towers.tokenize``)."""
        ids, mask = tokenize(self.tokenizer, texts, self.config.text.max_len)
        device = self.temp.device
        return ids.to(device), mask.to(device)

    def _image_embed(self, cls: torch.Tensor, frames: int, proj: nn.Module) -> torch.Tensor:
        feat = F.normalize(proj(cls), dim=-1)
        if frames > 1:  # a video: mean of normalised frame embeddings, re-normalised
            feat = F.normalize(feat.view(-1, frames, feat.shape[-1]).mean(dim=1), dim=-1)
        return feat

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> L2-normalised (B, embed_dim)."""
        return F.normalize(self.vision_proj(self.image_tower(pixels)[0]), dim=-1)

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, embed_dim): mean of normalised frame embeddings, re-normalised."""
        cls = self.image_tower(pixels.flatten(0, 1))[0]
        return self._image_embed(cls, pixels.shape[1], self.vision_proj)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens -> L2-normalised (B, embed_dim)."""
        return F.normalize(self.text_proj(self.text_tower(input_ids, attention_mask)), dim=-1)

    def retrieval_modules(self) -> nn.ModuleDict:
        """The modules retrieval runs (identical in a ViLEM model and its ITC-only twin)."""
        return nn.ModuleDict({name: getattr(self, name) for name in RETRIEVAL_MODULES})

    # -- ViLEM branches ---------------------------------------------------------------------------

    def _run_branch(
        self,
        text: TextTower,
        words: torch.Tensor,
        attention_mask: torch.Tensor,
        global_feat: torch.Tensor | None = None,
        patches: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Layer-K hidden states of the edited caption from its word embeddings ``words``
        (B, L, W), seeing the image globally (``global_feat`` added to every token at the input
        of layer 0) or locally (inside each layer i < K, cross-attention to ``patches[i]``
        between self-attention and feed-forward)."""
        hidden = text.embed(words)
        if global_feat is not None:
            # after the embedding LayerNorm, as the reference: there the projected CLS is a bias
            # of the tokens' own scale; added before it, it swamped the words (every position
            # became the same vector)
            hidden = hidden + self.global_proj(global_feat)[:, None, :]
        bias = text.attention_bias(hidden, attention_mask)
        for i in range(self.config.fusion_layer):
            cross = None
            if patches is not None:
                cross = functools.partial(self.cross_blocks[i], patches=patches[i])
            hidden = text.run_layer(i, hidden, bias, between=cross)
        return hidden

    def _heads(
        self, hiddens: list[torch.Tensor], labels: torch.Tensor, original_ids: torch.Tensor
    ) -> list[dict[str, torch.Tensor]]:
        """ED/EC losses of each of several layer-K hidden states (B, L, W) of the same edited
        captions (one per branch and image pairing).

        Each head runs once on them all stacked: one vocabulary product for EC on n x E rows
        instead of n products on E rows (23 vs 31 ms for the two branches of the small CPU
        recipe), and one dense gradient of the tied embedding instead of n."""
        out: list[dict[str, torch.Tensor]] = [{} for _ in hiddens]
        if self.config.use_ed:
            b = len(labels)
            logits = self.ed_head(torch.cat(hiddens))
            for i, parts in enumerate(out):
                parts["ed"] = error_detection_loss(logits[i * b : (i + 1) * b], labels)
        if self.config.use_ec:
            edits = labels == 1
            targets = original_ids[edits]
            n = len(targets)
            # decode only the replaced positions: the vocabulary matmul dominates otherwise
            rows = torch.cat([hidden[edits] for hidden in hiddens])
            logits = self.ec_head(rows, self.text_tower.word_embeddings.weight)
            for i, parts in enumerate(out):
                parts["ec"] = error_correction_loss(logits[i * n : (i + 1) * n], targets)
        return out

    def proofread_logits(
        self,
        pixels: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        ec_positions: torch.Tensor | None = None,
        item_of: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """ED logits (B, L, 2) and EC logits (B, L, V) for (possibly edited) captions, through
        the local branch when built, else the global one. None for a head that is not built.

        With ``ec_positions`` (bool, (B, L)) the EC logits are only those positions' rows,
        (n, V) in row-major order: the vocabulary product dominates the pass otherwise. With
        ``item_of`` ((B,) long) caption i reads image or video ``pixels[item_of[i]]``, so each
        of several captions of one item costs one image-tower pass, not one each."""
        if self.config.itc_only:
            raise ConfigError("this model has no ED/EC heads (an ITC-only checkpoint)")
        frames = pixels.shape[1] if pixels.dim() == 5 else 1
        cls, blocks = self.image_tower(pixels.flatten(0, pixels.dim() - 4), self.local_blocks)
        words = self.text_tower.word_embeddings(input_ids)
        if self.config.use_local:
            patches = [_frames_to_tokens(blocks[b], frames) for b in self.local_blocks]
            if item_of is not None:
                patches = [p[item_of] for p in patches]
            hidden = self._run_branch(self.text_tower, words, attention_mask, patches=patches)
        else:
            glob = cls.view(-1, frames, cls.shape[-1]).mean(dim=1)
            if item_of is not None:
                glob = glob[item_of]
            hidden = self._run_branch(self.text_tower, words, attention_mask, global_feat=glob)
        ed = self.ed_head(hidden) if self.config.use_ed else None
        ec = None
        if self.config.use_ec:
            rows = hidden if ec_positions is None else hidden[ec_positions]
            ec = self.ec_head(rows, self.text_tower.word_embeddings.weight)
        return ed, ec

    # -- momentum -------------------------------------------------------------------------------

    @torch.no_grad()
    def _momentum_update(self) -> None:
        m = self.config.momentum_m
        for name in RETRIEVAL_MODULES:
            online, twin = getattr(self, name), getattr(self, f"{name}_m")
            for p, p_m in zip(online.parameters(), twin.parameters(), strict=True):
                p_m.mul_(m).add_(p.detach(), alpha=1 - m)

    @torch.no_grad()
    def _enqueue(
        self, image_feat: torch.Tensor, text_feat: torch.Tensor, ids: torch.Tensor
    ) -> None:
        q = self.config.queue_size
        n = min(image_feat.shape[0], q)
        image_feat, text_feat, ids = image_feat[-n:], text_feat[-n:], ids[-n:]
        slots = (self.queue_ptr + torch.arange(n, device=ids.device)) % q
        self.image_queue[slots] = image_feat
        self.text_queue[slots] = text_feat
        self.id_queue[slots] = ids
        self.queue_ptr.copy_((self.queue_ptr + n) % q)
        self.queue_filled.copy_(torch.clamp(self.queue_filled + n, max=q))

    # -- training forward -----------------------------------------------------------------------

    def forward(
        self,
        pixels: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        item_ids: torch.Tensor,
        *,
        alpha: float = 0.0,
        proxy_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training losses for a batch of (image or video, caption) pairs.

        Args:
            pixels: (B, 3, H, W) images or (B, T, 3, H, W) videos.
            input_ids, attention_mask: (B, L) clean captions.
            item_ids: (B,) the item each caption describes; captions of one item are positives.
            alpha: momentum-distillation weight for this step (ramped by the trainer; used only
                with momentum encoders).
            proxy_scale: factor on the ED/EC losses in the total for this step (the trainer
                passes ``proxy_weight`` times its ramp); the parts are reported unscaled.
            generator: random source of the negative edits (reproducible runs).

        Returns:
            "loss" (total) and its parts "itc", "ed_global", "ec_global", "ed_local", "ec_local"
            (those enabled), plus detached stats "temp" and "n_edits".
        """
        with torch.no_grad():
            self.temp.clamp_(0.001, 0.5)
        frames = pixels.shape[1] if pixels.dim() == 5 else 1
        flat = pixels.flatten(0, 1) if pixels.dim() == 5 else pixels
        cls, blocks = self.image_tower(flat, self.local_blocks)
        image_feat = self._image_embed(cls, frames, self.vision_proj)
        text_feat = F.normalize(self.text_proj(self.text_tower(input_ids, attention_mask)), dim=-1)
        momentum = None
        if self.config.momentum:
            momentum = self._momentum_features(flat, frames, input_ids, attention_mask)

        out = {"itc": self._itc_loss(image_feat, text_feat, item_ids, momentum, alpha)}
        total = out["itc"]
        stats = {"temp": self.temp.detach().clone()}
        if not self.config.itc_only:
            edited, labels, original = self.editor.edit(input_ids, attention_mask, generator)
            stats["n_edits"] = (labels == 1).sum().float()
            # (text tower, image CLS, image blocks) pairs; paired momentum crosses online and EMA
            pairs = [(self.text_tower, cls, blocks)]
            if self.config.paired_momentum:
                cls_m, blocks_m = momentum[:2]
                pairs = [(self.text_tower, cls_m, blocks_m), (self.text_tower_m, cls, blocks)]
            errors = self._error_modeling_losses(
                pairs, frames, edited, attention_mask, labels, original
            )
            for name, (weight, value) in errors.items():
                out[name] = value
                total = total + proxy_scale * weight * value
        out["loss"] = total
        out.update(stats)
        return out

    @torch.no_grad()
    def _momentum_features(
        self, flat: torch.Tensor, frames: int, input_ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor], torch.Tensor, torch.Tensor]:
        """EMA step, then (CLS, blocks, image embedding, text embedding) of the momentum
        encoders; embeddings gathered over ranks."""
        if self.training:
            self._momentum_update()
        cls_m, blocks_m = self.image_tower_m(flat, self.local_blocks)
        image_m = self._image_embed(cls_m, frames, self.vision_proj_m)
        text_m = F.normalize(self.text_proj_m(self.text_tower_m(input_ids, mask)), dim=-1)
        return cls_m, blocks_m, gather_with_local_grad(image_m), gather_with_local_grad(text_m)

    def _itc_loss(
        self,
        image_feat: torch.Tensor,
        text_feat: torch.Tensor,
        item_ids: torch.Tensor,
        momentum: tuple[torch.Tensor, ...] | None,
        alpha: float,
    ) -> torch.Tensor:
        """ITC over all ranks (labels from item ids, so multi-caption batches just work); with
        momentum encoders the keys are the EMA features plus the queue, with distillation."""
        all_image = gather_with_local_grad(image_feat)
        all_text = gather_with_local_grad(text_feat)
        all_ids = gather_with_local_grad(item_ids.to(image_feat.device))
        logit_scale = 1.0 / self.temp
        if momentum is None:
            return contrastive_loss(all_image, all_text, logit_scale, all_ids, all_ids)
        image_m, text_m = momentum[2:]
        keys_i, keys_t, key_ids = image_m, text_m, all_ids
        n = int(self.queue_filled) if self.config.queue_size else 0
        if n:
            keys_i = torch.cat([image_m, self.image_queue[:n]])
            keys_t = torch.cat([text_m, self.text_queue[:n]])
            key_ids = torch.cat([all_ids, self.id_queue[:n]])
        with torch.no_grad():
            soft = (
                (logit_scale * image_m @ keys_t.t()).softmax(dim=1),
                (logit_scale * text_m @ keys_i.t()).softmax(dim=1),
            )
        loss = contrastive_loss(
            all_image,
            all_text,
            logit_scale,
            all_ids,
            all_ids,
            image_keys=(keys_i, key_ids),
            text_keys=(keys_t, key_ids),
            soft_targets=soft,
            alpha=alpha,
        )
        if self.config.queue_size and self.training:
            self._enqueue(image_m, text_m, all_ids)
        return loss

    def _error_modeling_losses(
        self,
        pairs: list[tuple[TextTower, torch.Tensor, dict[int, torch.Tensor]]],
        frames: int,
        edited: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        original: torch.Tensor,
    ) -> dict[str, tuple[float, torch.Tensor]]:
        """{"ed_local": (weight, loss), ...}: ED/EC per branch, averaged over the pairs.

        Weights follow L = itc + (1 - beta) local + beta global; a model with one branch gives
        it weight 1 (an ablation should not also shrink the remaining branch's loss)."""
        cfg = self.config
        both = cfg.use_global and cfg.use_local
        weights = {"global": cfg.beta if both else 1.0, "local": 1 - cfg.beta if both else 1.0}
        # one word-embedding lookup per text tower, shared by the branches (one dense
        # vocabulary gradient instead of one per branch)
        words = {id(text): text.word_embeddings(edited) for text, _, _ in pairs}
        runs: list[tuple[str, torch.Tensor]] = []  # (branch, layer-K hidden states)
        for branch in ("global", "local"):
            if not getattr(cfg, f"use_{branch}"):
                continue
            for text, img_cls, img_blocks in pairs:
                if branch == "global":
                    glob = img_cls.view(-1, frames, img_cls.shape[-1]).mean(dim=1)
                    hidden = self._run_branch(
                        text, words[id(text)], attention_mask, global_feat=glob
                    )
                else:
                    patches = [_frames_to_tokens(img_blocks[b], frames) for b in self.local_blocks]
                    hidden = self._run_branch(
                        text, words[id(text)], attention_mask, patches=patches
                    )
                runs.append((branch, hidden))
        parts: dict[tuple[str, str], list[torch.Tensor]] = {}
        heads = self._heads([hidden for _, hidden in runs], labels, original)
        for (branch, _), values in zip(runs, heads, strict=True):
            for name, value in values.items():
                parts.setdefault((name, branch), []).append(value)
        return {
            f"{name}_{branch}": (weights[branch], torch.stack(values).mean())
            for (name, branch), values in parts.items()
        }


def _frames_to_tokens(tokens: torch.Tensor, frames: int) -> torch.Tensor:
    """(B*T, P, W) frame patch tokens -> (B, T*P, W): a video's frames side by side."""
    return tokens.reshape(-1, frames * tokens.shape[1], tokens.shape[2])


def retrieval_parameter_count(model: ViLEM) -> int:
    """Parameters that retrieval runs (towers and projections)."""
    return sum(p.numel() for p in model.retrieval_modules().parameters())


__all__ = ["ViLEM", "retrieval_parameter_count"]
