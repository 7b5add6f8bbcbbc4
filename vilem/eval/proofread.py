"""The proofreading probe (ViLEM only): given an edited caption and its image or video, does the
error-detection head flag the edited word(s), and does the correction head restore the original?

The edits are the split's probes (exact synthetic edits, category edits of real captions, or
SugarCrepe negatives); only probes whose edit keeps the word-piece count are used, so the edited
positions are exactly where the token ids differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vilem import metrics as M
from vilem import threads
from vilem.data.base import Probe, Split
from vilem.errors import DataError
from vilem.eval.engine import TaskRun, media_dataset
from vilem.eval.probes import probes_for_split
from vilem.eval.tasks import TaskOutput
from vilem.io import display_path
from vilem.results import ProofreadExample

N_EXAMPLES = 8  # examples kept in the result for the report's coloured-word figure


def aligned_edits(
    model: Any, probes: list[Probe]
) -> tuple[list[Probe], torch.Tensor, torch.Tensor]:
    """Probes whose edited caption tokenizes to as many word-pieces as the true one, with the
    original ids (the correction targets) and the edited ids."""
    keep, originals, edited = [], [], []
    for p in probes:
        pos, _ = model.tokenize([p.positive])
        neg, _ = model.tokenize([p.negative])
        if pos.shape == neg.shape and bool((pos != neg).any()):
            keep.append(p)
            originals.append(pos[0])
            edited.append(neg[0])
    if not keep:
        return keep, torch.zeros(0, 0, dtype=torch.long), torch.zeros(0, 0, dtype=torch.long)
    width = max(len(x) for x in originals)
    pad = model.tokenizer.pad_token_id

    def stack(rows: list[torch.Tensor]) -> torch.Tensor:
        out = torch.full((len(rows), width), pad, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    return keep, stack(originals), stack(edited)


def example_indices(probes: list[Probe], n: int) -> list[int]:
    """``n`` probes of different items, spread evenly over the split, the first probe of each."""
    first: dict[int, int] = {}
    for i, p in enumerate(probes):
        first.setdefault(p.item, i)
    order = sorted(first.values())
    step = max(1, len(order) // n)
    return order[::step][:n]


def proofread_split(model: Any, split: Split, opts: Any, batch_size: int = 64) -> dict[str, Any]:
    """ED precision/recall/F1/AP and EC top-1 accuracy (percent) over the split's probes."""
    probes, original, edited = aligned_edits(model, probes_for_split(split, seed=opts.seed))
    if not probes:
        raise DataError(f"{split.dataset}/{split.split}: no token-aligned edits to proofread")
    media = media_dataset(split, model, opts)  # the same media pipeline as retrieval
    shown = example_indices(probes, N_EXAMPLES)
    # corrections are scored at the edited words; the report's examples show every word
    correct_at = original != edited
    correct_at[shown] = True
    probs, top1s = _proofread_batches(model, probes, media, correct_at, batch_size)
    width = original.shape[1]

    def cat(parts: list[torch.Tensor | None], fill: float) -> np.ndarray | None:
        if parts[0] is None:
            return None
        out = np.full((len(probes), width), fill)
        row = 0
        for part in parts:
            w = min(width, part.shape[1])
            out[row : row + len(part), :w] = part[:, :w].numpy()
            row += len(part)
        return out

    prob, top1 = cat(probs, 0.0), cat(top1s, -100)
    special = torch.tensor(model.tokenizer.all_special_ids)
    valid = (~torch.isin(edited, special)).numpy()
    is_error = (original != edited).numpy()
    has_ed = prob is not None
    if prob is None:  # an EC-only model: flag nothing, score the correction only
        prob = np.zeros(is_error.shape)
    target = None if top1 is None else original.numpy()  # an ED-only model corrects nothing
    scores = M.proofreading_metrics(prob, is_error, valid, top1, target)
    scores.pop("counts", None)
    if top1 is None:
        scores.pop("ec_accuracy", None)
    tokens, pad = model.tokenizer.convert_ids_to_tokens, model.tokenizer.pad_token_id

    def example(i: int) -> ProofreadExample:
        v = valid[i]
        return ProofreadExample(
            tokens=tokens(edited[i][v].tolist()),
            error_prob=[round(float(x), 4) for x in prob[i][v]],
            is_error=is_error[i][v].astype(int).tolist(),
            category=probes[i].category,
            truth=probes[i].positive,
            media=display_path(split.item_paths[probes[i].item], Path.cwd()),
            modality=split.modality,
            original=tokens(original[i][v].tolist()),
            correction=None
            if top1 is None
            else tokens([int(t) if t >= 0 else pad for t in top1[i][v]]),
        )

    scores["examples"] = [example(i) for i in shown]
    flagged = (prob > 0.5) & valid
    detected = [int(flagged[i][is_error[i]].all()) for i in range(len(probes))]
    if has_ed:
        scores.update(flag_rates(probes, detected))
    else:  # no detection head: no detection scores (not zeros)
        for key in ("ed_precision", "ed_recall", "ed_f1", "ed_ap"):
            scores.pop(key, None)
    scores["per_query"] = {
        "detected": detected,
        "category": [p.category for p in probes],
        "binding": [p.binding for p in probes],
    }
    return scores


def _proofread_batches(
    model: Any, probes: list[Probe], media: Any, correct_at: torch.Tensor, batch_size: int
) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """``model.proofread`` over the probes in batches: (error probabilities, corrections)."""
    probs, top1s = [], []
    for s in range(0, len(probes), batch_size):
        chunk = probes[s : s + batch_size]
        # a split's probes come item by item: decode and encode each item once per chunk
        items = sorted({p.item for p in chunk})
        row = {item: i for i, item in enumerate(items)}
        prob, top1 = model.proofread(
            [p.negative for p in chunk],
            torch.stack([media[item] for item in items]),
            correct_at=correct_at[s : s + batch_size],
            item_of=torch.tensor([row[p.item] for p in chunk]),
        )
        probs.append(prob)
        top1s.append(top1)
        threads.tick()
    return probs, top1s


def flag_rates(probes: list[Probe], detected: list[int]) -> dict[str, float]:
    """``ed_flag_<group>``: percent of a group's probes whose every edited word the ED head
    flags. Groups: each category, and for attribute edits with a known ``binding`` the
    category's ``_binding`` (the new value is on another object of the item, so only binding
    words to objects tells the edit) and ``_absent`` (the new value is nowhere in the item)."""
    groups: dict[str, list[int]] = {}
    for p, hit in zip(probes, detected, strict=True):
        names = [p.category]
        if p.binding is not None:
            names.append(f"{p.category}_{'binding' if p.binding else 'absent'}")
        for name in names:
            groups.setdefault(f"{M.ED_FLAG_PREFIX}{name}", []).append(hit)
    return {name: 100.0 * sum(hits) / len(hits) for name, hits in sorted(groups.items())}


def run(r: TaskRun) -> TaskOutput:
    scores = r.timed("proofread", lambda: proofread_split(r.model, r.split, r.opts))
    examples = scores.pop("examples", [])
    per_query = scores.pop("per_query", None)
    return TaskOutput(scores, per_query, examples=examples)
