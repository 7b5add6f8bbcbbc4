"""Negative caption generation: where edits go, what they may be, and how they are sampled."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from vilem.errors import ConfigError
from vilem.model.config import NegativesCfg
from vilem.model.negatives import DEFAULT_LEXICON, STOPWORDS, LexiconEditor, MLMEditor, build_editor
from vilem.model.towers import default_text_folder
from vilem.train.plausibility import synthetic_lexicon

CAPTIONS = [
    "a red cube, left of a blue ball.",
    "two small green stars above the big yellow circle near three pinkish squares",
    "dog",
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_text_folder(), local_files_only=True)


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    folder = tmp_path_factory.mktemp("mlm")
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def batch(tokenizer):
    enc = tokenizer(CAPTIONS, padding="longest", return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def _editor(tokenizer, mlm_dir, **kw) -> MLMEditor:
    return build_editor(NegativesCfg(**kw), tokenizer, mlm_path=str(mlm_dir))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_edits_are_labelled_exactly_where_tokens_changed(tokenizer, mlm_dir, batch):
    ids, mask = batch
    editor = _editor(tokenizer, mlm_dir, p=0.5)
    for seed in range(5):
        edited, labels, original = editor.edit(ids, mask, _gen(seed))
        assert torch.equal(original, ids)
        valid = labels != -100
        assert torch.equal((edited != ids) & valid, labels == 1)
        assert torch.equal(edited[~valid], ids[~valid])  # CLS/SEP/PAD untouched
        assert (labels == 1).any()


def test_special_padding_and_comma_dot_are_never_edited_nor_proposed(tokenizer, mlm_dir, batch):
    ids, mask = batch
    editor = _editor(tokenizer, mlm_dir, p=1.0, max_edits=100)
    edited, labels, _ = editor.edit(ids, mask, _gen(0))
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    assert torch.equal(labels == -100, special | (mask == 0))
    comma_dot = torch.isin(ids, torch.tensor(tokenizer.convert_tokens_to_ids([",", "."])))
    assert comma_dot.any() and torch.equal(edited[comma_dot], ids[comma_dot])
    # with p = 1 every other real token is replaced, never by punctuation or a special token
    assert torch.equal(labels == 1, ~special & ~comma_dot & (mask == 1))
    new_tokens = tokenizer.convert_ids_to_tokens(edited[labels == 1].tolist())
    assert not any(
        t in {",", ".", "!", "?", "[CLS]", "[SEP]", "[PAD]", "[MASK]"} for t in new_tokens
    )
    assert not any(t.startswith("[unused") for t in new_tokens)


def test_at_most_max_edits_per_caption(tokenizer, mlm_dir, batch):
    ids, mask = batch
    editor = _editor(tokenizer, mlm_dir, p=1.0, max_edits=3)
    _, labels, _ = editor.edit(ids, mask, _gen(1))
    # captions 0 and 1 have more than 3 editable tokens, caption 2 has one ("dog")
    assert (labels == 1).sum(dim=1).tolist() == [3, 3, 1]


def test_pick_rate_follows_p(tokenizer, mlm_dir):
    enc = tokenizer(CAPTIONS[1:2] * 64, return_tensors="pt")
    editor = _editor(tokenizer, mlm_dir, p=0.15, max_edits=100)
    _, labels, _ = editor.edit(enc["input_ids"], enc["attention_mask"], _gen(2))
    rate = (labels == 1).sum().item() / (labels != -100).sum().item()
    assert 0.11 < rate < 0.19  # 896 Bernoulli(0.15) draws: std ~ 0.012


class ContextMLM(nn.Module):
    """Favours token 3000 + (sum of the other ids) % 500 when exactly one [MASK] is present,
    token 2999 otherwise: sampled tokens reveal what context each position was filled in."""

    def __init__(self, mask_id: int, vocab: int = 30522):
        super().__init__()
        self.mask_id, self.vocab = mask_id, vocab
        self.calls: list[int] = []
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        self.calls.append(input_ids.shape[0])
        masked = input_ids == self.mask_id
        context = input_ids.masked_fill(masked, 0).sum(dim=1)
        favourite = torch.where(masked.sum(dim=1) == 1, 3000 + context % 500, 2999)
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[torch.arange(len(input_ids)), :, favourite] = 10.0
        return SimpleNamespace(logits=logits)


def test_each_position_is_filled_from_its_own_clean_context(tokenizer, batch):
    ids, mask = batch
    fake = ContextMLM(tokenizer.mask_token_id)
    editor = MLMEditor(fake, tokenizer, NegativesCfg(p=1.0, max_edits=100, top_k=1))
    edited, labels, _ = editor.edit(ids, mask, _gen(0))
    rows, cols = (labels == 1).nonzero(as_tuple=True)
    expected = 3000 + (ids.sum(dim=1)[rows] - ids[rows, cols]) % 500
    assert not torch.equal(expected, ids[rows, cols])  # the favourite is never blocked here
    assert torch.equal(edited[rows, cols], expected)
    assert sum(fake.calls) == len(rows)  # one masked copy per edit, batched in one call
    assert len(fake.calls) == 1


def test_original_token_is_blocked(tokenizer, batch):
    ids, mask = batch

    class EchoMLM(ContextMLM):  # always favours the original token at the masked slot
        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, self.vocab)
            logits.scatter_(
                2,
                self.original[: len(input_ids), None, None].expand(-1, input_ids.shape[1], 1),
                50.0,
            )
            return SimpleNamespace(logits=logits)

    fake = EchoMLM(tokenizer.mask_token_id)
    editor = MLMEditor(fake, tokenizer, NegativesCfg(p=1.0, max_edits=100, top_k=1))
    eligible = editor._eligible(ids, mask)
    fake.original = ids[eligible]  # nonzero order = the editor's copy order
    edited, labels, _ = editor.edit(ids, mask, _gen(0))
    assert (labels == 1).sum() == eligible.sum()
    assert not (edited[labels == 1] == ids[labels == 1]).any()


class OriginalFirstMLM(ContextMLM):
    """Puts ``lead`` logits on the original token of the masked slot and ``alt`` on token
    3000; every other token has logit 0."""

    def __init__(self, mask_id: int, lead: float, alt: float):
        super().__init__(mask_id)
        self.lead, self.alt = lead, alt

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        rows = torch.arange(len(input_ids))
        logits[rows, :, self.original[: len(input_ids)]] = self.lead
        logits[:, :, 3000] = self.alt
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("alt, kept", [(14.0, True), (3.0, False)])
def test_min_prob_drops_fills_the_mlm_itself_finds_implausible(tokenizer, batch, alt, kept):
    # the original has logit 20: token 3000 gets p = e^14 / (e^20 + e^14 + ...) ~ 0.25% of the
    # mass at alt 14 (above min_prob 0.1%) and ~ e^-17 at alt 3 (far below): only then dropped
    ids, mask = batch
    fake = OriginalFirstMLM(tokenizer.mask_token_id, lead=20.0, alt=alt)
    cfg = NegativesCfg(p=1.0, max_edits=100, top_k=1, min_prob=0.001)
    editor = MLMEditor(fake, tokenizer, cfg)
    eligible = editor._eligible(ids, mask)
    fake.original = ids[eligible]
    edited, labels, _ = editor.edit(ids, mask, _gen(0))
    if kept:
        assert (labels == 1).sum() == eligible.sum() and (edited[labels == 1] == 3000).all()
    else:
        assert not (labels == 1).any() and torch.equal(edited, ids)
    # without the filter the same implausible fill is written
    plain = MLMEditor(fake, tokenizer, NegativesCfg(p=1.0, max_edits=100, top_k=1))
    assert (plain.edit(ids, mask, _gen(0))[1] == 1).sum() == eligible.sum()


def test_synthetic_lexicon_swaps_only_within_the_grammars_word_classes(tokenizer):
    cfg = NegativesCfg(kind="lexicon", lexicon="synthetic", p=1.0)
    with pytest.raises(ConfigError, match="needs the synthetic grammar's word classes"):
        build_editor(cfg, tokenizer)  # the model wing does not reach into the data
    editor = build_editor(cfg, tokenizer, groups=synthetic_lexicon())
    enc = tokenizer(["a large pink cross to the left of two small red stars"], return_tensors="pt")
    edited, labels, _ = editor.edit(enc["input_ids"], enc["attention_mask"], _gen(0))
    before = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    after = tokenizer.convert_ids_to_tokens(edited[0])
    flags = labels[0].tolist()
    swaps = {b: a for b, a, flag in zip(before, after, flags, strict=True) if flag == 1}
    assert {"large", "pink", "cross", "left", "two", "small", "red"} <= set(swaps)
    assert swaps["large"] == "small" and swaps["small"] == "large" and swaps["left"] == "right"
    assert swaps["two"] == "three" and swaps["cross"] in {"circle", "square", "triangle", "star"}
    assert swaps["pink"] in {"red", "green", "blue", "yellow", "purple", "black"}
    with pytest.raises(ConfigError, match="lexicon must be"):
        build_editor(NegativesCfg(kind="lexicon", lexicon="sythetic"), tokenizer)


def test_seeded_generator_is_deterministic_and_calls_are_fresh(tokenizer, mlm_dir, batch):
    ids, mask = batch
    editor = _editor(tokenizer, mlm_dir, p=0.5)
    a = editor.edit(ids, mask, _gen(7))
    b = editor.edit(ids, mask, _gen(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    g = _gen(7)
    first, second = editor.edit(ids, mask, g), editor.edit(ids, mask, g)
    assert not torch.equal(first[0], second[0])  # the generator moved on: new negatives


def test_avoid_stopwords_and_subwords(tokenizer, mlm_dir, batch):
    ids, mask = batch
    editor = _editor(
        tokenizer, mlm_dir, p=1.0, max_edits=100, avoid_stopwords=True, avoid_subwords=True
    )
    edited, labels, _ = editor.edit(ids, mask, _gen(3))
    picked = tokenizer.convert_ids_to_tokens(ids[labels == 1].tolist())
    assert picked and not any(t in STOPWORDS for t in picked)
    # "pinkish" is "pink ##ish": neither piece is a whole word
    pink = tokenizer.convert_ids_to_tokens(ids[1].tolist()).index("pink")
    assert (labels[1, pink : pink + 2] == 0).all()
    new = tokenizer.convert_ids_to_tokens(edited[labels == 1].tolist())
    assert not any(t.startswith("##") for t in new)


def test_lexicon_swaps_within_a_category(tokenizer, batch):
    ids, mask = batch
    editor = LexiconEditor(tokenizer, DEFAULT_LEXICON, NegativesCfg(kind="lexicon", p=1.0))
    edited, labels, _ = editor.edit(ids, mask, _gen(0))
    before = tokenizer.convert_ids_to_tokens(ids[labels == 1].tolist())
    after = tokenizer.convert_ids_to_tokens(edited[labels == 1].tolist())
    assert "red" in before and "blue" in before
    for old, new in zip(before, after, strict=True):
        assert old != new
        assert any(old in words and new in words for words in DEFAULT_LEXICON.values())
    assert torch.equal((edited != ids) & (labels != -100), labels == 1)
    # "pink" in "pink ##ish" is not the colour word pink
    pink = tokenizer.convert_ids_to_tokens(ids[1].tolist()).index("pink")
    assert labels[1, pink] == 0 and labels[1, pink - 1] == 1  # "three" is swapped


def test_build_editor_refuses_bad_sources(tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="mlm_path is required"):
        build_editor(NegativesCfg(), tokenizer)
    with pytest.raises(ConfigError, match="not found"):
        build_editor(NegativesCfg(), tokenizer, mlm_path=str(tmp_path / "nope"))
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"\x80")
    (tmp_path / "pickled" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no .safetensors"):
        build_editor(NegativesCfg(), tokenizer, mlm_path=str(tmp_path / "pickled"))
    with pytest.raises(ConfigError, match="kind"):
        build_editor(NegativesCfg(kind="wordnet"), tokenizer)


def test_build_editor_refuses_a_foreign_vocabulary(tokenizer, tmp_path):
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="vocabulary"):
        build_editor(NegativesCfg(), tokenizer, mlm_path=str(tmp_path))
