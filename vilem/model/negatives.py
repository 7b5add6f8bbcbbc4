"""Plausible negative captions ("text edition"): replace a few word-pieces of each caption.

``MLMEditor`` is ViLEM's generator: a frozen masked language model fills each picked position
from the clean caption. ``LexiconEditor`` swaps words within hand-made categories (colour,
number, ...), the ablation. Both return ``(edited_ids, error_labels, original_ids)`` where
labels are 1 = replaced, 0 = kept, -100 = ignored (CLS, SEP, PAD).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from vilem.errors import ConfigError
from vilem.io import read_json
from vilem.model.config import NegativesCfg
from vilem.model.losses import IGNORE_INDEX

_STOPWORDS = """
a an the and or but of in on at to for with by from up down into onto over under near is are was
were be been being has have had do does did it its this that these those there here he she they
them his her their him we you i me my our your as than then so not no very just also while who
whom which what when where how all any some each
"""
STOPWORDS = frozenset(_STOPWORDS.split())

# Same-category swap groups for the lexicon ablation: the kinds of edits the probes test.
_LEXICON = {
    "colour": "red green blue yellow black white orange purple pink brown gray grey",
    "number": "one two three four five six seven eight nine ten",
    "size": "small large big tiny huge little tall short",
    "relation": "left right above below behind front inside outside",
    "direction": "up down left right",
    "shape": "circle square triangle cube ball box star ring",
    "person": "man woman boy girl person child people",
    "animal": "dog cat horse cow sheep bird elephant bear zebra giraffe",
    "vehicle": "car bus truck train bicycle motorcycle airplane boat",
    "food": "pizza sandwich banana apple orange cake donut broccoli carrot",
    "furniture": "chair couch bed table bench desk",
}
DEFAULT_LEXICON: dict[str, list[str]] = {k: v.split() for k, v in _LEXICON.items()}


def _is_punctuation(token: str) -> bool:
    text = token[2:] if token.startswith("##") else token
    return bool(text) and all(
        ch in string.punctuation or unicodedata.category(ch).startswith("P") for ch in text
    )


def _token_sets(
    tokenizer: PreTrainedTokenizerBase, cfg: NegativesCfg
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vocabulary masks: which ids are never picked, never proposed, are stopwords/sub-words."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = torch.zeros(len(vocab), dtype=torch.bool)
    special[list(tokenizer.all_special_ids)] = True
    # BERT vocabularies hold "[unused17]"-style slots: never trained, never a plausible word
    bracketed = torch.tensor([bool(re.fullmatch(r"\[.*\]", t or "")) for t in vocab])
    punct = torch.tensor([_is_punctuation(t or "") for t in vocab])
    subword = torch.tensor([(t or "").startswith("##") for t in vocab])
    stop = torch.tensor([(t or "") in STOPWORDS for t in vocab])
    # "," and "." are never picked (the design's rule); other punctuation is never proposed
    comma_dot = torch.zeros(len(vocab), dtype=torch.bool)
    comma_dot[tokenizer.convert_tokens_to_ids([",", "."])] = True
    never_pick = special | comma_dot
    if cfg.avoid_stopwords:
        never_pick |= stop
    never_propose = special | bracketed | punct
    if cfg.avoid_subwords:
        never_propose |= subword
    return never_pick, never_propose, subword


def _pick_positions(
    eligible: torch.Tensor, p: float, max_edits: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Each eligible position independently with probability p, then a random subset of at most
    ``max_edits`` per row. Random numbers come from ``generator`` (on its own device)."""
    gen_device = generator.device if generator is not None else eligible.device
    draws = torch.rand(eligible.shape, generator=generator, device=gen_device).to(eligible.device)
    picked = eligible & (draws < p)
    order_keys = torch.rand(eligible.shape, generator=generator, device=gen_device)
    order_keys = order_keys.to(eligible.device).masked_fill(~picked, -1.0)
    ranks = order_keys.argsort(dim=1, descending=True).argsort(dim=1)
    return picked & (ranks < max_edits)


def _labels(
    edited: torch.Tensor,
    original: torch.Tensor,
    attention_mask: torch.Tensor,
    special: torch.Tensor,
) -> torch.Tensor:
    labels = (edited != original).long()
    ignored = ~attention_mask.bool() | special[original.cpu()].to(original.device)
    return labels.masked_fill(ignored, IGNORE_INDEX)


class MLMEditor:
    """ViLEM's negative generator around a frozen masked LM (kept in eval mode, no gradient).

    Args:
        mlm_model: a transformers ``*ForMaskedLM`` (or any module returning ``.logits``
            (N, L, V) from ``(input_ids, attention_mask)``) sharing the tokenizer's vocabulary.
        tokenizer: the text tower's tokenizer.
        cfg: picking and sampling options.
    """

    def __init__(self, mlm_model: nn.Module, tokenizer: PreTrainedTokenizerBase, cfg: NegativesCfg):
        self.mlm = mlm_model.eval().requires_grad_(False)
        self.cfg = cfg
        self.mask_id = tokenizer.mask_token_id
        if self.mask_id is None:
            raise ConfigError("the tokenizer has no [MASK] token; an MLM editor needs one")
        self.never_pick, self.never_propose, self.subword = _token_sets(tokenizer, cfg)
        self.propose_bias = torch.zeros(len(self.never_propose)).masked_fill(
            self.never_propose, -math.inf
        )
        self.special = torch.zeros_like(self.never_pick)
        self.special[list(tokenizer.all_special_ids)] = True

    def _eligible(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = input_ids.cpu()
        ok = ~self.never_pick[ids] & attention_mask.bool().cpu()
        if self.cfg.avoid_subwords:
            # a piece is a whole word when neither it nor the next piece is a "##" continuation
            nxt = torch.zeros_like(ok)
            nxt[:, :-1] = self.subword[ids[:, 1:]]
            ok &= ~self.subword[ids] & ~nxt
        return ok.to(input_ids.device)

    def _masked_logits(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """Vocabulary logits (N, V) at ``positions`` of N masked copies, in bounded chunks."""
        rows = torch.arange(ids.shape[0], device=ids.device)
        bert, head = getattr(self.mlm, "bert", None), getattr(self.mlm, "cls", None)
        chunk = 256 if bert is not None and head is not None else 32
        out = []
        for s in range(0, ids.shape[0], chunk):
            sl = slice(s, s + chunk)
            if bert is not None and head is not None:
                # BERT: decode only the masked position instead of all L positions
                hidden = bert(input_ids=ids[sl], attention_mask=attention_mask[sl])[0]
                out.append(head(hidden[rows[sl] - s, positions[sl]]))
            else:
                logits = self.mlm(input_ids=ids[sl], attention_mask=attention_mask[sl]).logits
                out.append(logits[rows[sl] - s, positions[sl]])
        return torch.cat(out).float()

    @torch.no_grad()
    def edit(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edit a batch of tokenised captions; fresh random edits on every call.

        Returns:
            (edited ids (B, L), error labels (B, L), original ids (B, L)).
        """
        device = input_ids.device
        if next(self.mlm.parameters(), torch.empty(0)).device != device:
            self.mlm.to(device)
        eligible = self._eligible(input_ids, attention_mask)
        keep = _pick_positions(eligible, self.cfg.p, self.cfg.max_edits, generator)
        rows, cols = keep.nonzero(as_tuple=True)
        edited = input_ids.clone()
        if rows.numel():
            # one masked copy of the CLEAN caption per picked position: each replacement sees
            # the true context, never another replacement or another [MASK]
            copies = input_ids[rows].clone()
            copies[torch.arange(rows.numel(), device=device), cols] = self.mask_id
            logits = self._masked_logits(copies, attention_mask[rows], cols)  # a fresh tensor
            if self.propose_bias.device != device:
                self.propose_bias = self.propose_bias.to(device)
            logits += self.propose_bias  # -inf on ids never proposed, 0 elsewhere
            log_norm = logits.logsumexp(dim=1)  # with the original: the MLM's own distribution
            logits[torch.arange(rows.numel(), device=device), input_ids[rows, cols]] = -math.inf
            top_vals, top_ids = logits.topk(self.cfg.top_k, dim=1)
            probs = top_vals.softmax(dim=1)
            gen_device = generator.device if generator is not None else device
            choice = torch.multinomial(probs.to(gen_device), 1, generator=generator).to(device)
            new = top_ids.gather(1, choice).squeeze(1)
            if self.cfg.min_prob > 0:
                plausible = top_vals.gather(1, choice).squeeze(1) - log_norm
                keep = plausible >= math.log(self.cfg.min_prob)
                rows, cols, new = rows[keep], cols[keep], new[keep]
            edited[rows, cols] = new
        return edited, _labels(edited, input_ids, attention_mask, self.special), input_ids


class LexiconEditor:
    """Same-category word swaps (a colour for another colour, ...): the lexicon ablation.

    Only words that are one word-piece and a whole word in the caption are candidates; each is
    picked with ``cfg.p`` (at most ``cfg.max_edits``) and replaced by a uniformly drawn other
    member of its categories.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        groups: dict[str, list[str]],
        cfg: NegativesCfg | None = None,
    ):
        self.cfg = cfg or NegativesCfg(kind="lexicon")
        vocab = tokenizer.get_vocab()
        alternatives: dict[int, set[int]] = {}
        for words in groups.values():
            ids = {vocab[w] for w in (x.lower() for x in words) if w in vocab}
            for i in ids:
                alternatives.setdefault(i, set()).update(ids - {i})
        self.alternatives = {k: sorted(v) for k, v in alternatives.items() if v}
        if not self.alternatives:
            raise ConfigError("lexicon has no category with two single-piece vocabulary words")
        n = len(tokenizer)
        self.candidate = torch.zeros(n, dtype=torch.bool)
        self.candidate[list(self.alternatives)] = True
        tokens = tokenizer.convert_ids_to_tokens(list(range(n)))
        self.subword = torch.tensor([(t or "").startswith("##") for t in tokens])
        self.special = torch.zeros(n, dtype=torch.bool)
        self.special[list(tokenizer.all_special_ids)] = True

    @torch.no_grad()
    def edit(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Same interface as ``MLMEditor.edit``."""
        ids = input_ids.cpu()
        ok = self.candidate[ids] & attention_mask.bool().cpu()
        nxt = torch.zeros_like(ok)
        nxt[:, :-1] = self.subword[ids[:, 1:]]  # "red" in "red ##dish" is not the word red
        keep = _pick_positions(
            (ok & ~nxt).to(input_ids.device), self.cfg.p, self.cfg.max_edits, generator
        )
        edited = input_ids.clone()
        gen_device = generator.device if generator is not None else input_ids.device
        for r, c in keep.nonzero().tolist():
            options = self.alternatives[int(input_ids[r, c])]
            j = torch.randint(len(options), (1,), generator=generator, device=gen_device)
            edited[r, c] = options[int(j)]
        return edited, _labels(edited, input_ids, attention_mask, self.special), input_ids


Editor = MLMEditor | LexiconEditor


def load_mlm(path: str) -> nn.Module:
    """A fill-mask model from a local folder (safetensors weights only)."""
    from transformers import AutoModelForMaskedLM

    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"mlm_path folder not found: {path}")
    if not any(folder.glob("*.safetensors")):
        raise ConfigError(
            f"mlm_path {path} holds no .safetensors weights "
            "(pickle-based checkpoints are not loaded)"
        )
    try:
        return AutoModelForMaskedLM.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a masked LM from {path}: {exc}") from exc


def build_editor(
    cfg: NegativesCfg,
    tokenizer: PreTrainedTokenizerBase,
    mlm_path: str | None = None,
    groups: dict[str, list[str]] | None = None,
) -> Editor:
    """The negative generator ``cfg`` asks for: an MLM editor reading the fill-mask folder
    ``mlm_path``, or a lexicon editor (``groups`` are the word classes of ``lexicon:
    synthetic``, which the caller derives from the synthetic grammar)."""
    if cfg.kind == "lexicon":
        return LexiconEditor(tokenizer, _lexicon_groups(cfg, groups), cfg)
    if cfg.kind != "mlm":
        raise ConfigError(f"model.negatives.kind must be 'mlm' or 'lexicon', not {cfg.kind!r}")
    if not mlm_path:
        raise ConfigError(
            "mlm_path is required for MLM negatives (a local fill-mask model folder with the "
            "text tower's vocabulary)"
        )
    mlm = load_mlm(mlm_path)
    vocab = mlm.get_input_embeddings().num_embeddings
    if vocab != len(tokenizer):
        raise ConfigError(
            f"mlm_path {mlm_path} has a vocabulary of {vocab}, the text tokenizer "
            f"{len(tokenizer)}: they must share one"
        )
    return MLMEditor(mlm, tokenizer, cfg)


def _lexicon_groups(cfg: NegativesCfg, groups: dict[str, list[str]] | None) -> dict:
    if cfg.lexicon not in ("general", "synthetic"):
        raise ConfigError(
            f"model.negatives.lexicon must be 'general' or 'synthetic', not {cfg.lexicon!r}"
        )
    if cfg.lexicon_path:
        groups = read_json(cfg.lexicon_path, "lexicon file")
        if not isinstance(groups, dict) or not all(
            isinstance(v, list) and all(isinstance(w, str) for w in v) for v in groups.values()
        ):
            raise ConfigError(
                f"lexicon file {cfg.lexicon_path} must map categories to lists of words"
            )
        return groups
    if cfg.lexicon == "synthetic":
        if groups is None:
            raise ConfigError(
                "model.negatives.lexicon 'synthetic' needs the synthetic grammar's word classes "
                "(vilem.train.plausibility.synthetic_lexicon)"
            )
        return groups
    return DEFAULT_LEXICON
