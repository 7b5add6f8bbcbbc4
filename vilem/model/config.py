"""The ViLEM model config: network fields only (architecture, losses, the negatives' editing
rule). Training-schedule fields (the ED/EC ramp, the distillation weight) and the MLM folder live
in the training config, so they never change a checkpoint's fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vilem.config import from_dict, to_dict
from vilem.errors import ConfigError

# what a checkpoint's config.json says it is (here, not in checkpoint.py, so that code telling
# checkpoints apart from other model folders need not import the towers)
CHECKPOINT_FORMAT = "vilem-checkpoint"

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # pixel normalisation when the architecture has none
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class VisionCfg:
    timm_name: str = "vit_base_patch16_224"  # a timm VisionTransformer architecture name
    image_size: int = 224  # input resolution (square)
    patch_size: int | None = None  # None = the timm default for timm_name
    width: int | None = None  # embed_dim; None = timm default
    depth: int | None = None  # number of blocks; None = timm default
    heads: int | None = None  # attention heads; None = timm default
    pretrained: str | None = None  # local timm checkpoint (.safetensors only); None = random init
    drop_path: float = 0.0  # stochastic depth rate


@dataclass
class TextCfg:
    hf_path: str | None = None  # local HF BERT folder; when set, the architecture comes from it
    tokenizer_path: str | None = None  # tokenizer folder; None = hf_path, else the packaged MiniLM
    hidden: int = 768  # random-init BERT width (ignored with hf_path)
    layers: int = 12  # random-init BERT depth (ignored with hf_path)
    heads: int = 12  # random-init attention heads (ignored with hf_path)
    intermediate: int = 3072  # random-init FFN width (ignored with hf_path)
    max_len: int = 40  # captions are truncated to this many word-pieces (incl. CLS/SEP)


@dataclass
class NegativesCfg:
    kind: str = "mlm"  # "mlm" (ViLEM) or "lexicon" (same-category word swaps, ablation)
    p: float = 0.15  # each eligible word-piece is picked independently with this probability
    max_edits: int = 8  # at most this many replacements per caption
    top_k: int = 20  # the replacement is sampled from the MLM's top-k (softmaxed)
    avoid_stopwords: bool = False  # never pick stopwords
    avoid_subwords: bool = False  # only whole single-piece words are picked or proposed
    # drop a sampled replacement to which the MLM gives less than this probability in the clean
    # context (softmax over the whole vocabulary, the original included): where the grammar
    # leaves no alternative ("a [picture] of"), only junk could be written there
    min_prob: float = 0.0
    lexicon: str = "general"  # built-in swap groups for "lexicon": "general" or "synthetic"
    lexicon_path: str | None = None  # JSON {category: [words]} for "lexicon"; overrides lexicon


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
    temp_init: float = 0.07  # initial ITC temperature (learnable, clamped to [0.001, 0.5])
    momentum: bool = False  # EMA momentum encoders (ALBEF)
    momentum_m: float = 0.995  # EMA decay
    queue_size: int = 0  # momentum feature queue length (0 = none; needs momentum)
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
    return to_dict(cfg)


def config_from_dict(data: Mapping[str, Any], path: str = "model") -> ViLEMConfig:
    """A dict (from YAML/JSON) -> validated ViLEMConfig; missing keys take defaults.

    Raises:
        ConfigError: naming the key path (e.g. ``model.text.hiden``) of an unknown key or a
            value of the wrong type, or a value out of range.
    """
    cfg = from_dict(ViLEMConfig, data, path)
    cfg.validate()
    return cfg
