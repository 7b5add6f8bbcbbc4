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
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vilem.errors import ConfigError, DataError
from vilem.model.losses import (
    contrastive_loss,
    error_correction_loss,
    error_detection_loss,
    gather_with_local_grad,
)
from vilem.model.negatives import Editor, NegativesCfg, build_editor
from vilem.model.towers import ImageTower, TextCfg, TextTower, VisionCfg, load_tokenizer
from vilem.registry import closest

# ---------------------------------------------------------------------------------------------
# configs


@dataclass
class ViLEMConfig:
    vision: VisionCfg = field(default_factory=VisionCfg)  # image tower
    text: TextCfg = field(default_factory=TextCfg)  # text tower
    embed_dim: int = 256  # shared retrieval embedding size
    fusion_layer: int = 6  # K: the ViLEM branches run text layers 0..K-1
    use_ed: bool = True  # error detection loss
    use_ec: bool = True  # error correction loss
    use_global: bool = True  # global branch: image CLS added to the text input
    use_local: bool = True  # local branch: cross-attention to multi-level patch tokens
    beta: float = 0.2  # L = itc + w * ((1 - beta) local + beta global)
    proxy_weight: float = 1.0  # w: weight of the ED/EC losses against ITC (the paper: 1)
    proxy_ramp_steps: int = 0  # w ramps linearly from 0 over these first optimizer steps
    temp_init: float = 0.07  # initial ITC temperature (learnable, clamped to [0.001, 0.5])
    momentum: bool = False  # EMA momentum encoders (ALBEF)
    momentum_m: float = 0.995  # EMA decay
    queue_size: int = 0  # momentum feature queue length (0 = none; needs momentum)
    distill_alpha: float = 0.4  # momentum distillation weight at the end of its ramp
    paired_momentum: bool = False  # ED/EC on online-text x momentum-image and the reverse
    negatives: NegativesCfg = field(default_factory=NegativesCfg)  # negative caption generator

    @property
    def itc_only(self) -> bool:
        return not (self.use_ed or self.use_ec)

    def validate(self) -> None:
        """Raise ConfigError on values that cannot work together."""
        checks = [
            (self.embed_dim > 0, "model.embed_dim must be positive"),
            (self.fusion_layer >= 1, "model.fusion_layer must be >= 1"),
            (0.0 <= self.beta <= 1.0, "model.beta must be in [0, 1]"),
            (self.proxy_weight >= 0.0, "model.proxy_weight must be >= 0"),
            (self.proxy_ramp_steps >= 0, "model.proxy_ramp_steps must be >= 0"),
            (0.001 <= self.temp_init <= 0.5, "model.temp_init must be in [0.001, 0.5]"),
            (0.0 <= self.momentum_m < 1.0, "model.momentum_m must be in [0, 1)"),
            (self.queue_size >= 0, "model.queue_size must be >= 0"),
            (self.queue_size == 0 or self.momentum, "model.queue_size > 0 needs model.momentum"),
            (
                not self.paired_momentum or self.momentum,
                "model.paired_momentum needs model.momentum",
            ),
            (
                self.itc_only or self.use_global or self.use_local,
                "model.use_ed/use_ec need at least one of model.use_global, model.use_local",
            ),
            (0.0 < self.negatives.p <= 1.0, "model.negatives.p must be in (0, 1]"),
            (self.negatives.max_edits >= 1, "model.negatives.max_edits must be >= 1"),
            (self.negatives.top_k >= 1, "model.negatives.top_k must be >= 1"),
            (0.0 <= self.negatives.min_prob < 1.0, "model.negatives.min_prob must be in [0, 1)"),
            (
                self.negatives.kind in ("mlm", "lexicon"),
                "model.negatives.kind must be 'mlm' or 'lexicon'",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A (nested) config dataclass -> plain JSON-able dict."""
    return dataclasses.asdict(cfg)


def _check_type(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, not {type(value).__name__}")
        return _from_dict(hint, value, path)
    # bool is an int subclass: refuse it where a number is meant, and numbers where a flag is
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, not {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} at {path}")


def _from_dict(cls: type, data: Mapping[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key {path}.{key}{closest(str(key), names)}")
        kwargs[key] = _check_type(value, hints[key], f"{path}.{key}")
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any], path: str = "model") -> ViLEMConfig:
    """A dict (from YAML/JSON) -> validated ViLEMConfig; missing keys take defaults.

    Raises:
        ConfigError: naming the key path (e.g. ``model.text.hiden``) of an unknown key or a
            value of the wrong type, or a value out of range.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must be a mapping, not {type(data).__name__}")
    cfg = _from_dict(ViLEMConfig, data, path)
    cfg.validate()
    return cfg


# ---------------------------------------------------------------------------------------------
# blocks


class CrossAttentionBlock(nn.Module):
    """Text tokens attend to image patch tokens (projected to text width); BERT-style post-norm
    residual, as the cross-attention sub-layer of ALBEF's fusion layers."""

    def __init__(self, text_width: int, image_width: int, heads: int, dropout: float):
        super().__init__()
        self.kv_norm = nn.LayerNorm(image_width)  # block outputs are un-normalised residuals
        self.kv_proj = nn.Linear(image_width, text_width)
        self.attn = nn.MultiheadAttention(text_width, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(text_width, eps=1e-12)

    def forward(self, text: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        kv = self.kv_proj(self.kv_norm(patches))
        out = self.attn(text, kv, kv, need_weights=False)[0]
        return self.norm(text + self.dropout(out))


class ErrorDetectionHead(nn.Module):
    """Per token: dense + GELU + LayerNorm, then correct (0) vs replaced (1)."""

    def __init__(self, width: int):
        super().__init__()
        self.transform = nn.Sequential(
            nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width, eps=1e-12)
        )
        self.classifier = nn.Linear(width, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transform(hidden))


class ErrorCorrectionHead(nn.Module):
    """An MLM head whose decoder is the text tower's word-embedding matrix (tied) plus a bias.

    The tie is a functional one (``F.linear`` with the embedding weight), so the state dict holds
    no second reference to the embedding and safetensors checkpoints need no special casing.
    """

    def __init__(self, width: int, vocab_size: int):
        super().__init__()
        self.transform = nn.Sequential(
            nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width, eps=1e-12)
        )
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), word_embeddings, self.bias)


def local_blocks(depth: int, k: int) -> list[int]:
    """The ViT block (0-based) each of the K cross-attention layers attends to, spread evenly
    over the depth and ending at the last block: depth 12, K 6 -> 1, 3, 5, 7, 9, 11."""
    return [max(0, (i + 1) * depth // k - 1) for i in range(k)]


# ---------------------------------------------------------------------------------------------
# model

RETRIEVAL_MODULES = ("image_tower", "text_tower", "vision_proj", "text_proj")


class ViLEM(nn.Module):
    """The ViLEM dual encoder and its training losses.

    Args:
        cfg: the model config (validated here).
        load_pretrained: load tower weights named by the config (off when a checkpoint follows).
        build_negatives: build the negative editor now (otherwise on the first training step that
            needs it, so loading a checkpoint for evaluation never needs the MLM folder).
    """

    def __init__(
        self, cfg: ViLEMConfig, load_pretrained: bool = True, build_negatives: bool = True
    ):
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
            if build_negatives:
                self._editor = build_editor(cfg.negatives, self.tokenizer)

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
        """The negative-caption generator (None for ITC-only models); built on first use."""
        if self._editor is None and not self.config.itc_only:
            self._editor = build_editor(self.config.negatives, self.tokenizer)
        return self._editor

    @editor.setter
    def editor(self, value: Editor) -> None:
        self._editor = value

    # -- retrieval encoders -----------------------------------------------------------------------

    def image_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Pixel normalisation: the timm architecture's own, else ImageNet's."""
        from vilem.models.base import IMAGENET_MEAN, IMAGENET_STD

        return self.image_tower.mean_std() or (IMAGENET_MEAN, IMAGENET_STD)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Strings -> (input_ids, attention_mask), padded to the longest, cut at max_len."""
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"caption {i} is empty: every text needs at least one word")
        enc = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self.config.text.max_len,
            return_tensors="pt",
        )
        device = self.temp.device
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

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
        self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """ED logits (B, L, 2) and EC logits (B, L, V) for (possibly edited) captions, through
        the local branch when built, else the global one. None for a head that is not built."""
        if self.config.itc_only:
            raise ConfigError("this model has no ED/EC heads (an ITC-only checkpoint)")
        frames = pixels.shape[1] if pixels.dim() == 5 else 1
        cls, blocks = self.image_tower(pixels.flatten(0, pixels.dim() - 4), self.local_blocks)
        words = self.text_tower.word_embeddings(input_ids)
        if self.config.use_local:
            patches = [_frames_to_tokens(blocks[b], frames) for b in self.local_blocks]
            hidden = self._run_branch(self.text_tower, words, attention_mask, patches=patches)
        else:
            glob = cls.view(-1, frames, cls.shape[-1]).mean(dim=1)
            hidden = self._run_branch(self.text_tower, words, attention_mask, global_feat=glob)
        ed = self.ed_head(hidden) if self.config.use_ed else None
        ec = (
            self.ec_head(hidden, self.text_tower.word_embeddings.weight)
            if self.config.use_ec
            else None
        )
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


__all__ = [
    "ViLEM",
    "ViLEMConfig",
    "VisionCfg",
    "TextCfg",
    "NegativesCfg",
    "config_to_dict",
    "config_from_dict",
    "local_blocks",
    "retrieval_parameter_count",
]
