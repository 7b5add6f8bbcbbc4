"""Checkpoints: safetensors round trip, refusals, and the ``vilem:DIR`` evaluation model."""

import json

import pytest
import torch
from model_helpers import tiny_config as base_config
from safetensors.torch import load_file, save_file

from vilem.errors import ConfigError
from vilem.model.checkpoint import load_model, save_model
from vilem.model.config import ViLEMConfig
from vilem.model.vilem import ViLEM
from vilem.models import MODELS
from vilem.models.base import RetrievalModel
from vilem.models.vilem import ViLEMRetrieval

CAPTIONS = ["a red cube left of a blue ball.", "two green stars"]


def tiny_config(**overrides) -> ViLEMConfig:
    return base_config(text_layers=2, **overrides)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = ViLEM(tiny_config(momentum=True, queue_size=4)).eval()
    folder = tmp_path_factory.mktemp("ckpt")
    save_model(model, folder)
    return model, folder


def _inputs(model):
    ids, mask = model.tokenize(CAPTIONS)
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), ids, mask


def test_round_trip_gives_identical_outputs(saved):
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(folder).eval()
    pixels, ids, mask = _inputs(model)
    assert torch.equal(loaded.encode_image(pixels), model.encode_image(pixels))
    assert torch.equal(loaded.encode_text(ids, mask), model.encode_text(ids, mask))
    for a, b in zip(
        loaded.proofread_logits(pixels, ids, mask),
        model.proofread_logits(pixels, ids, mask),
        strict=True,
    ):
        assert torch.equal(a, b)
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_config_records_paths_as_given(saved):
    _, folder = saved
    meta = json.loads((folder / "config.json").read_text())
    # the MLM folder and the schedule are training settings: not part of the model (and so of
    # its fingerprint)
    assert "mlm_path" not in meta["model"]["negatives"] and meta["model"]["negatives"]["p"] == 0.5
    assert "proxy_ramp_steps" not in meta["model"] and "distill_alpha" not in meta["model"]
    assert meta["model"]["text"]["tokenizer_path"] is None


def test_pickle_checkpoints_are_refused_without_being_opened(tmp_path, monkeypatch):
    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load must never be called")

    monkeypatch.setattr(torch, "load", no_pickle)
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ConfigError, match="pytorch_model.bin.*pickle"):
        load_model(tmp_path)
    with pytest.raises(ConfigError, match="only safetensors"):
        load_model(tmp_path / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="only safetensors"):
        load_model(tmp_path / "model.pt")


def test_missing_folder_or_files_are_refused(tmp_path, saved):
    with pytest.raises(ConfigError, match="not found"):
        load_model(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"has no weights \(model.safetensors\)"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes((saved[1] / "model.safetensors").read_bytes())
    with pytest.raises(ConfigError, match="no config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_model(tmp_path)


def _copy(folder, dest, state_edit=None, config_edit=None):
    dest.mkdir()
    state = load_file(folder / "model.safetensors")
    if state_edit:
        state_edit(state)
    save_file(state, dest / "model.safetensors")
    meta = json.loads((folder / "config.json").read_text())
    if config_edit:
        config_edit(meta)
    (dest / "config.json").write_text(json.dumps(meta))
    return dest


def test_missing_tensor_is_refused_naming_it(saved, tmp_path):
    dest = _copy(saved[1], tmp_path / "c", lambda s: s.pop("text_proj.bias"))
    with pytest.raises(ConfigError, match=r"missing tensors \[text_proj.bias\]"):
        load_model(dest)


def test_unexpected_tensor_is_refused_naming_it(saved, tmp_path):
    dest = _copy(saved[1], tmp_path / "c", lambda s: s.update(extra=torch.zeros(1)))
    with pytest.raises(ConfigError, match=r"unexpected tensors \[extra\]"):
        load_model(dest)


def test_wrong_shape_is_refused(saved, tmp_path):
    dest = _copy(saved[1], tmp_path / "c", lambda s: s.update(temp=torch.zeros(2)))
    with pytest.raises(ConfigError, match=r"wrong shape: temp \(2,\) vs \(\)"):
        load_model(dest)


def test_wrong_architecture_is_refused(saved, tmp_path):
    def no_momentum(meta):
        meta["model"]["momentum"], meta["model"]["queue_size"] = False, 0

    with pytest.raises(ConfigError, match="unexpected tensors.*_m\\."):
        load_model(_copy(saved[1], tmp_path / "a", config_edit=no_momentum))

    def wider(meta):
        meta["model"]["embed_dim"] = 48

    with pytest.raises(ConfigError, match="wrong shape"):
        load_model(_copy(saved[1], tmp_path / "b", config_edit=wider))

    def typo(meta):
        meta["model"]["embed_dimm"] = 48

    with pytest.raises(ConfigError, match="model.embed_dimm"):
        load_model(_copy(saved[1], tmp_path / "c", config_edit=typo))


def test_save_overwrites_atomically_without_leftovers(tmp_path):
    model = ViLEM(tiny_config(use_ed=False, use_ec=False))
    save_model(model, tmp_path)
    with torch.no_grad():
        model.temp.fill_(0.3)
    save_model(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert load_model(tmp_path).temp.item() == pytest.approx(0.3)


@pytest.mark.parametrize("kind", ["hf-clip", "hf"])
def test_a_vilem_checkpoint_given_to_a_transformers_spec_names_the_vilem_spec(saved, kind):
    folder = saved[1]
    with pytest.raises(ConfigError, match=f"is a vilem checkpoint.*use vilem:{folder}"):
        MODELS.get(kind)(str(folder), "cpu")


def test_a_config_without_model_type_is_not_a_transformers_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ConfigError, match="config.json has no model_type"):
        MODELS.get("hf-clip")(str(tmp_path), "cpu")


def test_vilem_spec_builds_a_retrieval_model(saved):
    model, folder = saved
    retrieval = MODELS.get("vilem")(str(folder), "cpu")
    assert isinstance(retrieval, ViLEMRetrieval) and isinstance(retrieval, RetrievalModel)
    assert retrieval.image_size == 32
    assert retrieval.mean == (0.5, 0.5, 0.5)  # timm's own normalisation for this ViT
    pixels, ids, mask = _inputs(model)
    assert torch.equal(retrieval.encode_images(pixels), model.encode_image(pixels))
    assert torch.equal(retrieval.encode_texts(CAPTIONS), model.encode_text(ids, mask))
    videos = pixels[None].expand(2, 2, 3, 32, 32)
    assert retrieval.encode_videos(videos).shape == (2, 32)
    assert retrieval.fingerprint() == MODELS.get("vilem")(str(folder), "cpu").fingerprint()
    with pytest.raises(ConfigError, match="checkpoint folder"):
        MODELS.get("vilem")(None, "cpu")


def test_proofread_gives_per_token_error_probability_and_correction(saved):
    model, folder = saved
    retrieval = ViLEMRetrieval(load_model(folder), source=str(folder))
    pixels, ids, mask = _inputs(model)
    prob, top1 = retrieval.proofread(CAPTIONS, pixels)
    assert prob.shape == ids.shape and top1.shape == ids.shape
    ignored = (mask == 0) | (ids == 101) | (ids == 102)  # PAD, CLS, SEP
    assert (prob[ignored] == 0).all() and (top1[ignored] == -100).all()
    ed, ec = model.proofread_logits(pixels, ids, mask)  # local branch, as proofread uses
    torch.testing.assert_close(prob[~ignored], ed.softmax(-1)[..., 1][~ignored])
    assert torch.equal(top1[~ignored], ec.argmax(-1)[~ignored])


def test_proofread_of_shared_items_and_chosen_positions_matches_the_full_pass(saved):
    model, folder = saved
    retrieval = ViLEMRetrieval(load_model(folder), source=str(folder))
    pixels, _, _ = _inputs(model)
    texts = CAPTIONS + CAPTIONS[::-1]  # four captions about two images: 0, 1, 1, 0
    item_of = torch.tensor([0, 1, 1, 0])
    prob, top1 = retrieval.proofread(texts, pixels[item_of])
    shared_prob, shared_top1 = retrieval.proofread(texts, pixels, item_of=item_of)
    torch.testing.assert_close(shared_prob, prob)
    assert torch.equal(shared_top1, top1)
    ids, _ = model.tokenize(texts)
    correct_at = torch.zeros(ids.shape, dtype=torch.bool)
    correct_at[0, 2] = correct_at[3, 1] = True
    _, some = retrieval.proofread(texts, pixels, correct_at=correct_at, item_of=item_of)
    assert torch.equal(some[correct_at], top1[correct_at])
    assert (some[~correct_at] == -100).all()
    with pytest.raises(ValueError, match="item_of"):
        retrieval.proofread(texts, pixels, item_of=torch.tensor([0, 1, 2, 0]))


def test_itc_only_checkpoint_evaluates_but_cannot_proofread(tmp_path):
    model = ViLEM(tiny_config(use_ed=False, use_ec=False))
    save_model(model, tmp_path)
    retrieval = MODELS.get("vilem")(str(tmp_path), "cpu")
    assert retrieval.config()["itc_only"] is True
    assert retrieval.encode_texts(CAPTIONS).shape == (2, 32)
    with pytest.raises(ConfigError, match="ITC-only"):
        retrieval.proofread(CAPTIONS, torch.zeros(2, 3, 32, 32))


def test_a_checkpoint_from_before_the_schedule_moved_to_training_still_loads(saved, tmp_path):
    # vilem <= 0.1 wrote the MLM folder and the ED/EC schedule into the model config
    model, folder = saved
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    meta = json.loads((folder / "config.json").read_text())
    meta["model"].update(proxy_ramp_steps=1200, distill_alpha=0.4)
    meta["model"]["negatives"]["mlm_path"] = "runs/mlm-synthetic"
    (old / "config.json").write_text(json.dumps(meta))
    assert load_model(old).config == model.config
    meta["model"]["negatives"]["mlm_paht"] = "x"  # anything else unknown is still refused
    (old / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="mlm_paht"):
        load_model(old)
