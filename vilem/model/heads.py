"""The ViLEM heads: cross-attention to image patches (the local branch), error detection and
error correction, and which ViT blocks the local branch attends to."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
