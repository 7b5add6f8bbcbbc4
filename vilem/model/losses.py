"""ViLEM's losses: multi-positive image-text contrastive (ITC), error detection (ED) and error
correction (EC), plus the cross-rank feature gather used by ITC."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vilem.dist import rank_world

IGNORE_INDEX = -100


def positive_targets(query_ids: torch.Tensor, key_ids: torch.Tensor) -> torch.Tensor:
    """(N,), (M,) item ids -> (N, M) target distribution, uniform over keys of the same item.

    A query whose item has no key gets an all-zero row (it then contributes no loss).
    """
    pos = (query_ids[:, None] == key_ids[None, :]).float()
    return pos / pos.sum(dim=1, keepdim=True).clamp(min=1)


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def contrastive_loss(
    image_feat: torch.Tensor,
    text_feat: torch.Tensor,
    logit_scale: torch.Tensor | float,
    image_ids: torch.Tensor,
    text_ids: torch.Tensor,
    *,
    image_keys: tuple[torch.Tensor, torch.Tensor] | None = None,
    text_keys: tuple[torch.Tensor, torch.Tensor] | None = None,
    soft_targets: tuple[torch.Tensor, torch.Tensor] | None = None,
    alpha: float = 0.0,
) -> torch.Tensor:
    """Symmetric InfoNCE where every key of the same item is a positive.

    Image queries score text keys and text queries score image keys. Keys default to the other
    modality's queries (the plain in-batch loss); with momentum encoders and a queue they are
    ``(features, item ids)`` of the momentum batch plus the queue. The target of a query is uniform
    over its positives (COCO: the 5 captions of an image); with ``soft_targets`` (image->text,
    text->image probabilities from momentum encoders) it is ``alpha * soft + (1 - alpha) * hard``.

    Args:
        image_feat, text_feat: L2-normalised (N, D) and (M, D) query features.
        logit_scale: 1 / temperature.
        image_ids, text_ids: (N,), (M,) item ids; equal ids are positives.

    Returns:
        the mean of the image->text and text->image cross-entropies.
    """
    t_feat, t_ids = text_keys if text_keys is not None else (text_feat, text_ids)
    i_feat, i_ids = image_keys if image_keys is not None else (image_feat, image_ids)
    logits_i2t = logit_scale * image_feat @ t_feat.t()
    logits_t2i = logit_scale * text_feat @ i_feat.t()
    target_i2t = positive_targets(image_ids, t_ids)
    target_t2i = positive_targets(text_ids, i_ids)
    if soft_targets is not None and alpha > 0:
        target_i2t = alpha * soft_targets[0] + (1 - alpha) * target_i2t
        target_t2i = alpha * soft_targets[1] + (1 - alpha) * target_t2i
    return 0.5 * (
        _soft_cross_entropy(logits_i2t, target_i2t) + _soft_cross_entropy(logits_t2i, target_t2i)
    )


def error_detection_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-level correct (0) / replaced (1) cross-entropy, **summed** over valid tokens
    (label != -100) and divided by the number of replaced tokens in the batch (at least 1):
    replaced tokens are rare, so a mean over all tokens would drown them."""
    valid = labels != IGNORE_INDEX
    total = F.cross_entropy(logits[valid], labels[valid], reduction="sum")
    return total / (labels == 1).sum().clamp(min=1)


def error_correction_loss(logits_at_edits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the vocabulary logits at replaced positions (E, V) against the original
    tokens (E,), averaged; 0 (still part of the graph) when nothing was replaced."""
    if targets.numel() == 0:
        return logits_at_edits.sum() * 0.0
    return F.cross_entropy(logits_at_edits, targets)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather rows (ranks may hold different counts) whose backward sums every rank's
    gradient of the gathered tensor and hands each rank the rows it contributed."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
        size = torch.tensor([x.shape[0]], device=x.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        sizes = [int(s.item()) for s in sizes]
        longest = max(sizes)
        padded = x
        if x.shape[0] < longest:
            padded = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))])
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.offset, ctx.size = sum(sizes[:rank]), sizes[rank]
        return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.offset : ctx.offset + ctx.size], None, None


def gather_with_local_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0, with gradient (open_clip's
    ``gather_with_grad=True``). Ranks may hold different batch sizes (a last, smaller batch).

    Every rank computes the same full-batch loss on the gathered features; the backward sums
    the ranks' gradients, so after DDP averages parameter gradients over ranks the update equals
    the single-process one on the global batch (a local-only gradient would be 1/world of it).
    """
    rank, world = rank_world()
    if world == 1:
        return x
    return _GatherWithGrad.apply(x, rank, world)
