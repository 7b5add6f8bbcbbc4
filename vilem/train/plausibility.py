"""How plausible an editor's negatives are, measured against the synthetic caption grammar.

An edit the proxy task can only detect with the image keeps the caption a sentence of the
grammar; an edit that breaks the grammar ("two red circle", "there picture a ...") can be found
from the text alone. Two figures say which kind an editor makes (FIDELITY-AUDIT.md section 2):

- ``edit_report``: the share of single edits whose caption is still grammatical, i.e. whose
  *template* (the words with every colour / shape / size / ... word replaced by its class)
  occurs among the templates of a caption corpus, with the mix of edited word classes;
- ``text_only_detector_ap``: the AP of a small text-only token classifier trained to find the
  edits; plausible edits leave it near the prior (the share of replaced tokens).

The word classes are derived from the grammar's own constants in ``vilem.data.scene_words``.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from vilem import threads
from vilem.data.scene_words import (
    COLOURS,
    COUNT_WORDS,
    DIRECTION_WORDS,
    PLURALS,
    RELATION_WORDS,
    SHAPES,
    SIZES,
    SPEED_WORDS,
    TEXTURES,
    VERBS,
)
from vilem.metrics import average_precision
from vilem.model.losses import IGNORE_INDEX

_REPORT_MAX_LEN = 64  # every synthetic caption fits; longer ones would be judged truncated
_N_EXAMPLES = 8


class CaptionEditor(Protocol):
    """What ``vilem.model.negatives.MLMEditor`` and ``LexiconEditor`` have in common."""

    def edit(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


# ----------------------------------------------------------------------------- word classes


def _word_classes() -> dict[str, tuple[str, ...]]:
    uses = Counter(w for phrase in RELATION_WORDS.values() for w in phrase.split())
    # the words that tell "to the left of" from "to the right of"; one-word phrases ("above")
    relation_lr = tuple(
        w for p in RELATION_WORDS.values() if " " in p for w in p.split() if uses[w] == 1
    )
    relation_ab = tuple(p for p in RELATION_WORDS.values() if " " not in p)
    # a direction phrasing ends in its direction word; "left" / "right" already are relation_lr
    direction = tuple(
        dict.fromkeys(
            w
            for style in range(2)
            for phrasings in DIRECTION_WORDS.values()
            if (w := phrasings[style].split()[-1]) not in relation_lr
        )
    )
    return {
        "colour": tuple(COLOURS),
        "shape": SHAPES,
        "shape_plural": tuple(PLURALS.values()),
        "size": tuple(SIZES),
        "count": tuple(COUNT_WORDS.values()),
        "relation_lr": relation_lr,
        "relation_ab": relation_ab,
        "texture": TEXTURES,
        "direction": direction,
        "speed": tuple(SPEED_WORDS.values()),
        "verb": VERBS,
    }


WORD_CLASSES: dict[str, tuple[str, ...]] = _word_classes()
_CLASS_OF: dict[str, str] = {w: c for c, words in WORD_CLASSES.items() for w in words}
assert len(_CLASS_OF) == sum(map(len, WORD_CLASSES.values())), "a word in two classes"

# Word class -> class of the report's edit mix; words of no class are "function" when the
# grammar uses them (a, of, is, there, picture, ...) and "other" when it does not.
REPORT_CLASSES: dict[str, str] = {
    "colour": "colour",
    "shape": "shape",
    "shape_plural": "shape",
    "size": "size",
    "count": "count",
    "relation_lr": "relation",
    "relation_ab": "relation",
    "texture": "texture",
    "direction": "motion",
    "speed": "motion",
    "verb": "motion",
}

_PUNCTUATION = re.compile(r"([^\w\s])")


def word_class(word: str) -> str | None:
    """The grammar class of ``word`` ("colour", "shape_plural", ...), None for a literal word.

    "left" / "right" are ``relation_lr`` also where a video caption uses them as a direction.
    """
    return _CLASS_OF.get(word.lower())


def caption_words(text: str) -> list[str]:
    """Lower-cased words of a caption, punctuation as words of its own ("a, b" -> a , b), so a
    decoded caption splits the same whatever spacing the tokenizer's decode leaves."""
    return _PUNCTUATION.sub(r" \1 ", text.lower()).split()


def template(text: str) -> tuple[str, ...]:
    """The caption's words with every class word replaced by ``<class>``."""
    return tuple(f"<{c}>" if (c := word_class(w)) else w for w in caption_words(text))


@dataclass(frozen=True)
class Grammar:
    """The caption templates (and words) of a corpus; a caption is grammatical when its
    template occurs in the corpus and it uses no word the corpus never uses."""

    templates: frozenset[tuple[str, ...]]
    vocabulary: frozenset[str]

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Grammar:
        """The grammar of a caption corpus."""
        texts = list(texts)
        return cls(
            templates=frozenset(template(t) for t in texts),
            vocabulary=frozenset(w for t in texts for w in caption_words(t)),
        )

    def grammatical(self, text: str) -> bool:
        """Whether ``text`` is a sentence of this grammar."""
        words = caption_words(text)
        return all(w in self.vocabulary for w in words) and template(text) in self.templates

    def __len__(self) -> int:
        return len(self.templates)


def _report_class(word: str, next_word: str | None, grammar: Grammar) -> str:
    cls = word_class(word)
    if cls == "relation_lr" and next_word != "of":
        return "motion"  # "moving to the left", "slides right": a direction, not a relation
    if cls is not None:
        return REPORT_CLASSES[cls]
    return "function" if word in grammar.vocabulary else "other"


def synthetic_lexicon() -> dict[str, list[str]]:
    """Swap groups for ``LexiconEditor`` that are exactly the grammar's word classes, so every
    edit keeps the caption grammatical (an oracle arm). Directions are swapped within their
    phrasing (up <-> down, upwards <-> downwards), as the probes edit them."""
    groups = {c: list(words) for c, words in WORD_CLASSES.items() if c != "direction"}
    for style in range(2):
        words = [p[style].split()[-1] for p in DIRECTION_WORDS.values()]
        groups[f"direction_{style}"] = [w for w in words if w in WORD_CLASSES["direction"]]
    return groups


# ----------------------------------------------------------------------------- edit report


def _pct(part: float, whole: float, digits: int = 1) -> float | None:
    return round(100.0 * part / whole, digits) if whole else None


def _words_of_pieces(tokens: list[str], valid: list[bool]) -> tuple[list[str], dict[int, int]]:
    """Whole words of a tokenised caption and the word each valid position belongs to."""
    words: list[str] = []
    word_of: dict[int, int] = {}
    for pos, (tok, ok) in enumerate(zip(tokens, valid, strict=True)):
        if not ok:
            continue
        if tok.startswith("##") and words:
            words[-1] += tok[2:]
        else:
            words.append(tok.lower())
        word_of[pos] = len(words) - 1
    return words, word_of


def _bracketed(tokens: list[str], valid: list[bool], replaced: list[bool]) -> str:
    """The edited caption with each replaced word-piece in [brackets]."""
    out = ""
    for tok, ok, rep in zip(tokens, valid, replaced, strict=True):
        if not ok:
            continue
        piece = tok[2:] if tok.startswith("##") else tok
        piece = f"[{piece}]" if rep else piece
        out += piece if tok.startswith("##") and out else f" {piece}"
    return out.strip()


def edit_report(
    original_ids: torch.Tensor,
    edited_ids: torch.Tensor,
    labels: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    grammar: Grammar,
) -> dict[str, Any]:
    """How plausible a batch of edited captions is, edit by edit.

    Each edit (one replaced word-piece, label 1) is applied alone to the clean caption, the
    result decoded and tested with ``grammar``; its class is that of the original whole word.

    Args:
        original_ids: clean ids (B, L), as the editor returned them.
        edited_ids: edited ids (B, L).
        labels: (B, L), 1 = replaced, 0 = kept, -100 = ignored (CLS, SEP, PAD).
        tokenizer: the tokenizer of the ids.
        grammar: the grammar the captions come from.

    Returns:
        A JSON-able dict; percentages in percent (None where nothing is counted). ``mix_pct``
        is the share of edits per class of the original word, ``clean_grammatical_pct`` the
        share of clean captions the grammar knows (below 100 the other figures understate).
    """
    original, edited, labels = original_ids.cpu(), edited_ids.cpu(), labels.cpu()
    valid, replaced = labels != IGNORE_INDEX, labels == 1
    per_class: Counter[str] = Counter()
    per_class_ok: Counter[str] = Counter()
    n_edits = n_ok = n_edited = n_all_ok = n_clean_ok = 0
    examples: list[str] = []
    for r in range(original.shape[0]):
        row = original[r]
        clean_text = tokenizer.decode(row.tolist(), skip_special_tokens=True)
        n_clean_ok += grammar.grammatical(clean_text)
        cols = replaced[r].nonzero().flatten().tolist()
        if not cols:
            continue
        n_edited += 1
        row_valid = valid[r].tolist()
        words, word_of = _words_of_pieces(tokenizer.convert_ids_to_tokens(row.tolist()), row_valid)
        caption_ok = True
        for c in cols:
            single = row.clone()
            single[c] = edited[r, c]
            ok = grammar.grammatical(tokenizer.decode(single.tolist(), skip_special_tokens=True))
            w = word_of[c]
            cls = _report_class(words[w], words[w + 1] if w + 1 < len(words) else None, grammar)
            per_class[cls] += 1
            per_class_ok[cls] += ok
            n_edits += 1
            n_ok += ok
            caption_ok &= ok
        n_all_ok += caption_ok
        if len(examples) < _N_EXAMPLES:
            edited_tokens = tokenizer.convert_ids_to_tokens(edited[r].tolist())
            shown = _bracketed(edited_tokens, row_valid, replaced[r].tolist())
            examples.append(f"{clean_text} -> {shown}")
    n_captions = int(original.shape[0])
    order = [c for c, _ in per_class.most_common()]
    return {
        "captions": n_captions,
        "zero_edit_captions_pct": _pct(n_captions - n_edited, n_captions),
        "edits_per_caption": round(n_edits / n_captions, 2) if n_captions else None,
        "edit_rate_pct": _pct(n_edits, int(valid.sum())),
        "grammatical_pct": _pct(n_ok, n_edits),
        "all_grammatical_captions_pct": _pct(n_all_ok, n_edited),
        "clean_grammatical_pct": _pct(n_clean_ok, n_captions),
        "mix_pct": {c: _pct(per_class[c], n_edits) for c in order},
        "grammatical_by_class_pct": {c: _pct(per_class_ok[c], per_class[c]) for c in order},
        "examples": examples,
    }


# ----------------------------------------------------------------------------- text-only detector


class _TextOnlyDetector(nn.Module):
    """A small random-init BERT with a 2-way token head: "was this word-piece replaced?"."""

    def __init__(self, vocab_size: int, max_len: int, pad_id: int, width: int = 128):
        super().__init__()
        from transformers import BertConfig, BertModel

        cfg = BertConfig(
            vocab_size=vocab_size,
            hidden_size=width,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=4 * width,
            max_position_embeddings=max_len,
            pad_token_id=pad_id,
            # no dropout: the edits are fresh every step, and training draws no global randomness
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        self.bert = BertModel(cfg, add_pooling_layer=False)
        # a batch touches a few dozen of the ~30k embedding rows: a sparse gradient and
        # optimiser keep a step ~10x cheaper than dense AdamW over the whole table
        self.bert.embeddings.word_embeddings.sparse = True
        self.head = nn.Linear(width, 2)

    def optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """SparseAdam for the word embeddings, AdamW for everything else."""
        table = self.bert.embeddings.word_embeddings.weight
        rest = [p for p in self.parameters() if p is not table]
        return [
            torch.optim.SparseAdam([table], lr=lr),
            torch.optim.AdamW(rest, lr=lr, weight_decay=0.01),
        ]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(hidden)


def _editor_device(editor: CaptionEditor) -> torch.device:
    """Where the editor computes (an MLM editor's model device; CPU otherwise)."""
    mlm = getattr(editor, "mlm", None)
    if isinstance(mlm, nn.Module):
        param = next(mlm.parameters(), None)
        if param is not None:
            return param.device
    return torch.device("cpu")


def _tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_len: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_len, return_tensors="pt"
    )
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def text_only_detector_ap(
    editor: CaptionEditor,
    tokenizer: PreTrainedTokenizerBase,
    train_texts: Sequence[str],
    test_texts: Sequence[str],
    steps: int = 300,
    batch_size: int = 64,
    seed: int = 0,
    max_len: int = 32,
) -> dict[str, Any]:
    """Can the edits be found without the image? Train a text-only token classifier on
    captions freshly edited by ``editor`` every step, then score one edit of ``test_texts``.

    Returns:
        {"ap": AP of replaced tokens among valid tokens, "prior_ap": the share of replaced
        tokens (the AP of a constant score), "steps", "seconds"}; AP in percent, None when
        the test edits replaced nothing. Plausible edits give an AP near the prior.
    """
    start = time.perf_counter()
    device = _editor_device(editor)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG stays untouched
        torch.manual_seed(seed)
        detector = _TextOnlyDetector(len(tokenizer), max_len, tokenizer.pad_token_id or 0)
    detector.to(device).train()
    optimizers = detector.optimizers(lr=1e-3)
    for _ in range(steps):
        picks = torch.randint(len(train_texts), (batch_size,), generator=gen).tolist()
        ids, mask = _tokenize(tokenizer, [train_texts[i] for i in picks], max_len, device)
        edited, labels, _ = editor.edit(ids, mask, gen)
        logits = detector(edited, mask)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        threads.tick()

    detector.eval()
    test_gen = torch.Generator().manual_seed(seed + 1)  # the same test edits whatever ``steps``
    scores, targets = [], []
    with torch.no_grad():
        for s in range(0, len(test_texts), 256):
            ids, mask = _tokenize(tokenizer, test_texts[s : s + 256], max_len, device)
            edited, labels, _ = editor.edit(ids, mask, test_gen)
            prob = detector(edited, mask).float().softmax(-1)[..., 1]
            keep = labels != IGNORE_INDEX
            scores.append(prob[keep].cpu().numpy())
            targets.append((labels[keep] == 1).cpu().numpy())
    y, score = np.concatenate(targets), np.concatenate(scores)
    has_positive = bool(y.any())
    return {
        "ap": round(100.0 * average_precision(y, score), 1) if has_positive else None,
        "prior_ap": round(100.0 * float(y.mean()), 1) if y.size else None,
        "steps": steps,
        "seconds": round(time.perf_counter() - start, 1),
    }


# ----------------------------------------------------------------------------- summary


def plausibility_summary(
    editor: CaptionEditor,
    tokenizer: PreTrainedTokenizerBase,
    grammar_texts: Sequence[str] | Grammar,
    sample_texts: Sequence[str],
    detector_train_texts: Sequence[str],
    detector_test_texts: Sequence[str],
    n: int = 2048,
    seed: int = 0,
    detector_steps: int = 300,
) -> dict[str, Any]:
    """The plausibility figures a trainer or bench reports for its negatives.

    Edits ``n`` captions drawn (seeded) from ``sample_texts`` once, reports them with
    ``edit_report`` against the grammar of ``grammar_texts`` (or a ready ``Grammar``) and adds
    ``"text_only_detector"`` (``text_only_detector_ap``) unless ``detector_steps`` is 0.
    """
    grammar = (
        grammar_texts if isinstance(grammar_texts, Grammar) else Grammar.from_texts(grammar_texts)
    )
    texts = list(sample_texts)
    sample = random.Random(seed).sample(texts, min(n, len(texts)))
    ids, mask = _tokenize(tokenizer, sample, _REPORT_MAX_LEN, _editor_device(editor))
    edited, labels, original = editor.edit(ids, mask, torch.Generator().manual_seed(seed))
    report = edit_report(original, edited, labels, tokenizer, grammar)
    if detector_steps > 0:
        report["text_only_detector"] = text_only_detector_ap(
            editor,
            tokenizer,
            detector_train_texts,
            detector_test_texts,
            steps=detector_steps,
            seed=seed,
        )
    return report
