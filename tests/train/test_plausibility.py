"""Plausibility of negatives: word classes, the template grammar, the edit report, the oracle
lexicon and the text-only detector."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch

from vilem.data import scene_captions as cap
from vilem.data import scenes as sc
from vilem.model.config import NegativesCfg, TextCfg
from vilem.model.losses import IGNORE_INDEX
from vilem.model.negatives import DEFAULT_LEXICON, LexiconEditor
from vilem.model.towers import load_tokenizer
from vilem.train.plausibility import (
    Grammar,
    edit_report,
    plausibility_summary,
    synthetic_lexicon,
    template,
    text_only_detector_ap,
    word_class,
)

GRAMMAR_CAPTIONS = [
    "a large purple circle below a yellow cross",
    "two red circles",
    "a pink star",
    "a red circle",
    "a picture of a small red triangle",
    "there is a large green triangle, a small red triangle and a large cross",
    "a small blue square moves slowly to the left while a red star stays still",
    "a pink star is to the right of a red circle",
    "three large crosses and two stars",
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(TextCfg())


@pytest.fixture(scope="module")
def grammar() -> Grammar:
    return Grammar.from_texts(GRAMMAR_CAPTIONS)


def _synthetic_captions(n_images: int, n_videos: int) -> list[str]:
    """Captions exactly as the synthetic generator writes them (no media rendered)."""
    texts = []
    for kind, n in ((0, n_images), (1, n_videos)):
        for i in range(n):
            rng = np.random.default_rng([0, kind, 0, i])
            scene = sc.sample_video_scene(rng) if kind else sc.sample_image_scene(rng)
            caps = cap.make_captions(random.Random(int(rng.integers(2**62))), scene, 5)
            texts += [cap.render_caption(c) for c in caps]
    return texts


# ----------------------------------------------------------------------------- classes, grammar


def test_word_class_covers_the_grammar_words_and_leaves_literals():
    assert word_class("Red") == "colour"
    assert word_class("cross") == "shape" and word_class("crosses") == "shape_plural"
    assert word_class("large") == "size" and word_class("three") == "count"
    assert word_class("left") == "relation_lr" and word_class("below") == "relation_ab"
    assert word_class("striped") == "texture"
    assert word_class("upwards") == "direction" and word_class("down") == "direction"
    assert word_class("quickly") == "speed" and word_class("travels") == "verb"
    for literal in ("a", "an", "of", "is", "there", "picture", "background", "zebra"):
        assert word_class(literal) is None


def test_template_abstracts_class_words_and_splits_commas():
    assert template("a small red circle, two stars and a cross") == (
        "a", "<size>", "<colour>", "<shape>", ",", "<count>", "<shape_plural>", "and", "a",
        "<shape>",
    )  # fmt: skip
    assert template("a b , c") == template("a b, c") == template("a b ,c")


def test_grammar_accepts_same_template_and_rejects_broken_ones(grammar):
    assert len(grammar) == len(GRAMMAR_CAPTIONS) - 1  # "a pink star", "a red circle": one
    assert grammar.grammatical("a small blue circle below a yellow cross")
    assert grammar.grammatical(
        "a large pink cross moves slowly to the right while a blue circle stays still"
    )
    for broken in (
        "a large small circle",
        "two red circle",
        "a picture of three small red triangle",
        "there picture a large green triangle, a small red triangle and a large cross",
        "a large purple circle below a yellow stares",  # a word the corpus never uses
    ):
        assert not grammar.grammatical(broken), broken


def test_grammar_rejects_a_class_word_the_corpus_never_uses():
    g = Grammar.from_texts(["a red circle"])
    assert g.grammatical("a red circle")
    assert not g.grammatical("a blue circle")  # same template, unseen word


# ----------------------------------------------------------------------------- edit report


def _pieces(text: str) -> list[str]:
    return text.split()


def _row(tok, tokens: list[str], length: int) -> list[int]:
    ids = tok.convert_tokens_to_ids(["[CLS]", *tokens, "[SEP]"])
    return ids + [tok.pad_token_id] * (length - len(ids))


def test_edit_report_counts_each_edit_alone_with_word_piece_classes(tok, grammar):
    L = 11
    clean = [
        _pieces("a large purple circle below a yellow cross"),
        ["two", "red", "cross", "##es"],  # "crosses" in two pieces
        ["two", "red", "star", "##s"],
        ["a", "pink", "star"],
        ["a", "red", "circle"],
    ]
    original = torch.tensor([_row(tok, t, L) for t in clean])
    edited_tokens = [
        _pieces("a small blue circle below two yellow cross"),  # size, colour ok; "a" not
        ["two", "red", "star", "##es"],  # "two red stares": broken, class of "crosses"
        ["two", "red", "circle", "##s"],  # "two red circles": grammatical
        ["a", "pink", "star"],  # no edit
        ["a", "red", "##s"],  # "a reds": the piece merges into the word before
    ]
    edited = torch.tensor([_row(tok, t, L) for t in edited_tokens])
    labels = (edited != original).long()
    labels[(original == tok.pad_token_id) | (original == tok.cls_token_id)] = IGNORE_INDEX
    labels[original == tok.sep_token_id] = IGNORE_INDEX

    rep = edit_report(original, edited, labels, tok, grammar)
    # 6 edits over 8 + 4 + 4 + 3 + 3 = 22 valid tokens; 3 grammatical (large, purple, star)
    assert rep["captions"] == 5
    assert rep["zero_edit_captions_pct"] == 20.0
    assert rep["edits_per_caption"] == 1.2
    assert rep["edit_rate_pct"] == 27.3
    assert rep["grammatical_pct"] == 50.0
    assert rep["all_grammatical_captions_pct"] == 25.0  # only "two red stars" of 4 edited
    assert rep["clean_grammatical_pct"] == 100.0
    assert rep["mix_pct"] == {"shape": 50.0, "size": 16.7, "colour": 16.7, "function": 16.7}
    assert rep["grammatical_by_class_pct"] == {
        "shape": 33.3,
        "size": 100.0,
        "colour": 100.0,
        "function": 0.0,
    }
    assert rep["examples"][0] == (
        "a large purple circle below a yellow cross -> "
        "a [small] [blue] circle below [two] yellow cross"
    )
    assert rep["examples"][1] == "two red crosses -> two red [star]es"
    assert len(rep["examples"]) == 4


def test_edit_report_calls_left_right_a_direction_in_motion_captions(tok, grammar):
    words = _pieces("a small blue square moves slowly to the left while a red star stays still")
    original = torch.tensor([_row(tok, words, 20)] * 2)
    edited = original.clone()
    left = words.index("left") + 1
    edited[0, left] = tok.convert_tokens_to_ids("right")
    edited[1, words.index("slowly") + 1] = tok.convert_tokens_to_ids("up")
    labels = (edited != original).long()
    labels[original == tok.pad_token_id] = IGNORE_INDEX
    rep = edit_report(original, edited, labels, tok, grammar)
    assert rep["mix_pct"] == {"motion": 100.0}
    assert rep["grammatical_by_class_pct"] == {"motion": 50.0}  # "moves up to the left": no


# ----------------------------------------------------------------------------- oracle lexicon


def test_synthetic_lexicon_edits_are_all_grammatical_default_lexicon_not(tok):
    texts = _synthetic_captions(160, 60)
    grammar = Grammar.from_texts(texts)
    enc = tok(texts, padding="longest", return_tensors="pt")
    cfg = NegativesCfg(kind="lexicon", p=0.5)

    def grammatical_pct(groups: dict[str, list[str]]) -> dict:
        editor = LexiconEditor(tok, groups, cfg)
        gen = torch.Generator().manual_seed(0)
        edited, labels, original = editor.edit(enc["input_ids"], enc["attention_mask"], gen)
        return edit_report(original, edited, labels, tok, grammar)

    oracle = grammatical_pct(synthetic_lexicon())
    assert oracle["edits_per_caption"] > 1.5
    assert oracle["clean_grammatical_pct"] == 100.0
    assert oracle["grammatical_pct"] == 100.0
    assert {"colour", "shape", "size", "count", "relation", "motion"} <= set(oracle["mix_pct"])
    default = grammatical_pct(DEFAULT_LEXICON)
    assert default["grammatical_pct"] < 80.0


def test_synthetic_lexicon_groups_are_the_grammar_classes():
    groups = synthetic_lexicon()
    assert groups["direction_0"] == ["up", "down"]
    assert groups["direction_1"] == ["upwards", "downwards"]
    assert groups["relation_lr"] == ["left", "right"]
    words = [w for ws in groups.values() for w in ws]
    assert len(words) == len(set(words))  # no word in two groups: LexiconEditor would merge them
    assert all(word_class(w) is not None for w in words)


# ----------------------------------------------------------------------------- text-only detector


class _ZebraEditor:
    """Junk negatives: picked tokens become "zebra", a word the captions never use."""

    def __init__(self, tok, p: float = 0.15):
        self.zebra = tok.convert_tokens_to_ids("zebra")
        self.special = torch.tensor(tok.all_special_ids)
        self.p = p

    def edit(self, input_ids, attention_mask, generator=None):
        valid = attention_mask.bool() & ~torch.isin(input_ids, self.special)
        picked = valid & (torch.rand(input_ids.shape, generator=generator) < self.p)
        edited = input_ids.masked_fill(picked, self.zebra)
        labels = picked.long().masked_fill(~valid, IGNORE_INDEX)
        return edited, labels, input_ids


def test_text_only_detector_finds_junk_edits_far_above_prior(tok):
    texts = _synthetic_captions(100, 0)
    start = time.perf_counter()
    before = torch.random.get_rng_state()
    out = text_only_detector_ap(_ZebraEditor(tok), tok, texts[:400], texts[400:], steps=80)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert out["steps"] == 80 and 5.0 < out["prior_ap"] < 30.0
    assert out["ap"] > 90.0
    assert time.perf_counter() - start < 20.0


def test_plausibility_summary_reports_edits_and_skips_detector_at_zero_steps(tok):
    texts = _synthetic_captions(40, 10)
    editor = LexiconEditor(tok, synthetic_lexicon(), NegativesCfg(kind="lexicon"))
    rep = plausibility_summary(editor, tok, texts, texts, texts, texts, n=64, detector_steps=0)
    assert rep["captions"] == 64 and rep["grammatical_pct"] == 100.0
    assert "text_only_detector" not in rep
    again = plausibility_summary(editor, tok, texts, texts, texts, texts, n=64, detector_steps=0)
    assert again == rep  # seeded
    with_detector = plausibility_summary(
        editor, tok, Grammar.from_texts(texts), texts, texts, texts, n=64, detector_steps=2
    )
    assert with_detector["text_only_detector"]["steps"] == 2
