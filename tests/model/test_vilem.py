"""The ViLEM model: towers, ITC, branches, heads, ablations, momentum, configs."""

import dataclasses

import pytest
import timm
import torch
import torch.nn.functional as F
from model_helpers import tiny_config as base_config
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForMaskedLM

from vilem.errors import ConfigError, DataError
from vilem.model.config import (
    TextCfg,
    ViLEMConfig,
    VisionCfg,
    config_from_dict,
    config_to_dict,
)
from vilem.model.heads import local_blocks
from vilem.model.negatives import build_editor
from vilem.model.towers import ImageTower, TextTower, default_text_folder
from vilem.model.vilem import ViLEM, retrieval_parameter_count

CAPTIONS = ["a red cube left of a blue ball.", "two green stars", "a small red cube"]
ITEMS = torch.tensor([0, 1, 0])  # captions 0 and 2 describe the same image


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    folder = tmp_path_factory.mktemp("mlm")
    BertForMaskedLM(config).save_pretrained(folder)
    return str(folder)


def tiny_config(**overrides) -> ViLEMConfig:
    return base_config(text_layers=3, **overrides)


def with_editor(model: ViLEM, mlm_dir: str | None) -> ViLEM:
    """Give an ED/EC model the MLM editor the trainer would (vilem.train.editor)."""
    if not model.config.itc_only:
        model.editor = build_editor(model.config.negatives, model.tokenizer, mlm_path=mlm_dir)
    return model


def make(mlm_dir: str | None, **overrides) -> ViLEM:
    return with_editor(ViLEM(tiny_config(**overrides)), mlm_dir)


def _batch(model, frames: int = 0):
    g = torch.Generator().manual_seed(0)
    shape = (3, frames, 3, 32, 32) if frames else (3, 3, 32, 32)
    ids, mask = model.tokenize(CAPTIONS)
    return torch.randn(shape, generator=g), ids, mask


def test_local_blocks_spread_over_vit_depth():
    assert local_blocks(12, 6) == [1, 3, 5, 7, 9, 11]
    assert local_blocks(4, 2) == [1, 3]
    assert local_blocks(12, 4) == [2, 5, 8, 11]


def test_image_tower_returns_cls_and_patch_tokens_of_chosen_blocks():
    tower = ImageTower(VisionCfg(image_size=32, patch_size=8, width=64, depth=4, heads=2)).eval()
    x = torch.randn(2, 3, 32, 32)
    cls, blocks = tower(x, return_blocks=[3, 1])
    assert cls.shape == (2, 64) and sorted(blocks) == [1, 3]
    # by hand: patch embed + pos embed, run the blocks, drop the CLS token
    vit = tower.vit
    h = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
    h1 = vit.blocks[1](vit.blocks[0](h))
    assert blocks[1].shape == (2, 16, 64)
    torch.testing.assert_close(blocks[1], h1[:, 1:])
    torch.testing.assert_close(cls, vit.norm(vit.blocks[3](vit.blocks[2](h1)))[:, 0])
    torch.testing.assert_close(tower(x)[0], cls)


def test_image_tower_loads_only_local_safetensors(tmp_path):
    cfg = VisionCfg(image_size=32, patch_size=8, width=64, depth=2, heads=2)
    source = timm.create_model(
        cfg.timm_name,
        pretrained=False,
        num_classes=10,
        img_size=32,
        patch_size=8,
        embed_dim=64,
        depth=2,
        num_heads=2,
    )
    save_file(source.state_dict(), tmp_path / "vit.safetensors")
    tower = ImageTower(dataclasses.replace(cfg, pretrained=str(tmp_path / "vit.safetensors")))
    torch.testing.assert_close(tower.vit.pos_embed, source.pos_embed)
    (tmp_path / "vit.pth").write_bytes(b"not opened")
    with pytest.raises(ConfigError, match="only .safetensors"):
        ImageTower(dataclasses.replace(cfg, pretrained=str(tmp_path / "vit.pth")))
    with pytest.raises(ConfigError, match="not found"):
        ImageTower(dataclasses.replace(cfg, pretrained=str(tmp_path / "none.safetensors")))


def test_packaged_minilm_loads_as_text_tower_with_its_weights():
    folder = default_text_folder()
    tower = TextTower(TextCfg(hf_path=folder), vocab_size=30522)
    assert (tower.width, tower.num_layers) == (384, 6)
    saved = load_file(f"{folder}/model.safetensors")
    key = next(k for k in saved if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(tower.word_embeddings.weight, saved[key])


def test_text_tower_architecture_from_a_folder_without_its_weights():
    folder = default_text_folder()
    tower = TextTower(TextCfg(hf_path=folder), vocab_size=30522, load_pretrained=False)
    assert (tower.width, tower.num_layers) == (384, 6)
    saved = load_file(f"{folder}/model.safetensors")
    key = next(k for k in saved if k.endswith("embeddings.word_embeddings.weight"))
    assert not torch.equal(tower.word_embeddings.weight, saved[key])
    with pytest.raises(ConfigError, match="vocabulary"):
        TextTower(TextCfg(hf_path=folder), vocab_size=1000, load_pretrained=False)
    with pytest.raises(ConfigError, match="not found"):
        TextTower(TextCfg(hf_path="/no/such/folder"), vocab_size=30522)


def test_forward_returns_all_parts_and_the_weighted_total(mlm_dir):
    torch.manual_seed(0)
    model = make(mlm_dir)
    out = model(*_batch(model), ITEMS, generator=torch.Generator().manual_seed(0))
    parts = {"itc", "ed_global", "ec_global", "ed_local", "ec_local"}
    assert parts <= set(out) and out["n_edits"] > 0
    expected = (
        out["itc"]
        + 0.8 * (out["ed_local"] + out["ec_local"])
        + 0.2 * (out["ed_global"] + out["ec_global"])
    )
    torch.testing.assert_close(out["loss"], expected)
    assert not out["n_edits"].requires_grad and not out["temp"].requires_grad
    # the trainer's proxy scale multiplies the ED/EC part only; the parts stay unscaled
    torch.manual_seed(1)
    out = model(*_batch(model), ITEMS, generator=torch.Generator().manual_seed(0))
    expected = out["loss"]
    torch.manual_seed(1)  # the same dropout masks
    scaled = model(
        *_batch(model), ITEMS, proxy_scale=0.25, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(scaled["ed_local"], out["ed_local"])
    torch.testing.assert_close(scaled["loss"], out["itc"] + 0.25 * (expected - out["itc"]))


def test_gradients_reach_towers_projections_cross_attention_heads_and_temperature(mlm_dir):
    torch.manual_seed(0)
    model = make(mlm_dir)
    model(*_batch(model), ITEMS, generator=torch.Generator().manual_seed(0))["loss"].backward()
    groups = {
        "image tower": model.image_tower,
        "text tower": model.text_tower,
        "vision proj": model.vision_proj,
        "text proj": model.text_proj,
        "global proj": model.global_proj,
        "cross-attention": model.cross_blocks,
        "ED head": model.ed_head,
        "EC head": model.ec_head,
    }
    for name, module in groups.items():
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    for i, block in enumerate(model.cross_blocks):
        assert block.kv_proj.weight.grad.abs().sum() > 0, f"cross block {i}"
    # the text layers the branches run get ED/EC gradient beyond ITC's
    assert model.temp.grad is not None and model.temp.grad != 0


def test_branches_see_the_image(mlm_dir):
    model = make(mlm_dir).eval()
    pixels, ids, mask = _batch(model)
    ed_a, ec_a = model.proofread_logits(pixels, ids, mask)
    ed_b, _ = model.proofread_logits(pixels.flip(0), ids, mask)
    assert ed_a.shape == (3, ids.shape[1], 2) and ec_a.shape == (3, ids.shape[1], 30522)
    assert not torch.allclose(ed_a, ed_b)


def _mean_position_cosine(hidden: torch.Tensor, mask: torch.Tensor) -> float:
    values = []
    for row, keep in zip(hidden, mask.bool(), strict=True):
        v = F.normalize(row[keep], dim=-1)
        n = len(v)
        values.append(float(((v @ v.T).sum() - n) / (n * (n - 1))))
    return sum(values) / len(values)


def test_global_branch_adds_the_image_after_the_embedding_norm_and_keeps_words_apart(mlm_dir):
    # the bug: the projected CLS (norm ~8) added before the embedding LayerNorm swamped the
    # word + position embeddings (norm ~0.5): every position became the same vector (cos ~0.998)
    torch.manual_seed(0)
    model = make(mlm_dir, use_local=False).eval()
    pixels, ids, mask = _batch(model)
    seen = {}
    model.text_tower.layers[0].register_forward_pre_hook(
        lambda _, args: seen.__setitem__("x", args[0])
    )
    words = model.text_tower.word_embeddings(ids)
    with torch.no_grad():
        cls = model.image_tower(pixels)[0]
        model._run_branch(model.text_tower, words, mask)
        plain, no_image = seen["x"], _mean_position_cosine(seen["x"], mask)
        model._run_branch(model.text_tower, words, mask, global_feat=cls)
        with_image = _mean_position_cosine(seen["x"], mask)
    torch.testing.assert_close(seen["x"], plain + model.global_proj(cls)[:, None, :])
    assert with_image < no_image + 0.25, (no_image, with_image)


def test_global_ed_head_learns_what_only_the_image_can_tell():
    # "a blue circle" is right for the blue image and wrong (its colour word) for the red one:
    # text alone cannot separate the two, so the global branch must read the image
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        tiny_config(use_local=False, use_ec=False),
        vision=VisionCfg(image_size=16, patch_size=8, width=32, depth=2, heads=2),
        text=TextCfg(hidden=32, layers=2, heads=2, intermediate=64, max_len=8),
        fusion_layer=1,
    )
    model = ViLEM(cfg)
    red, blue = torch.zeros(3, 16, 16), torch.zeros(3, 16, 16)
    red[0], blue[2] = 2.0, 2.0
    pixels = torch.stack([red, blue, blue, red])
    ids, mask = model.tokenize(["a blue circle", "a blue circle", "a red circle", "a red circle"])
    clean, _ = model.tokenize(["a red circle", "a blue circle", "a blue circle", "a red circle"])
    labels = (ids != clean).long().masked_fill(~mask.bool(), -100)
    labels[:, 0] = -100
    assert labels[:, 2].tolist() == [1, 0, 1, 0]

    class Fixed:
        def edit(self, *_args, **_kwargs):
            return ids, labels, clean

    model.editor = Fixed()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(pixels, clean, mask, torch.arange(4))["ed_global"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        ed, _ = model.proofread_logits(pixels, ids, mask)
    assert ed[:, 2].argmax(-1).tolist() == [1, 0, 1, 0]


def test_local_cross_attention_sits_between_self_attention_and_feed_forward(mlm_dir):
    # ALBEF's fusion layer (and the reference code): self-attention, cross-attention to the
    # image, then the feed-forward block, so every image read-out passes a feed-forward block
    model = make(mlm_dir, use_global=False).eval()
    pixels, ids, mask = _batch(model)
    calls = []
    text = model.text_tower
    for i in range(model.config.fusion_layer):
        for name, module in (
            ("self", text.layers[i].attention),
            ("cross", model.cross_blocks[i]),
            ("ffn", text.layers[i].intermediate),
        ):
            module.register_forward_hook(lambda *_, tag=f"{name}{i}": calls.append(tag))
    with torch.no_grad():
        model.proofread_logits(pixels, ids, mask)
    assert calls == ["self0", "cross0", "ffn0", "self1", "cross1", "ffn1"]


def test_heads_run_once_on_stacked_branches_and_give_each_its_own_losses(mlm_dir):
    torch.manual_seed(0)
    model = make(mlm_dir).eval()
    _, ids, _ = _batch(model)
    labels = torch.zeros_like(ids)
    labels[:, 0] = -100  # CLS
    labels[0, 2] = labels[1, 1] = labels[2, 3] = 1
    original = torch.randint(1000, 2000, ids.shape)
    hiddens = [torch.randn(*ids.shape, 64, requires_grad=True) for _ in range(3)]
    stacked = model._heads(hiddens, labels, original)
    assert len(stacked) == 3
    for hidden, parts in zip(hiddens, stacked, strict=True):
        (alone,) = model._heads([hidden], labels, original)
        assert set(parts) == {"ed", "ec"}
        for name in parts:
            torch.testing.assert_close(parts[name], alone[name])
    # each loss depends on its own hidden states only
    stacked[1]["ec"].backward()
    assert hiddens[0].grad is None or not hiddens[0].grad.any()
    assert hiddens[1].grad[labels == 1].abs().sum() > 0
    # no replaced token: EC is 0 and still part of the graph
    none = model._heads(hiddens[:2], torch.zeros_like(labels), original)
    assert all(float(p["ec"].detach()) == 0.0 and p["ec"].requires_grad for p in none)


@pytest.mark.parametrize(
    "overrides, parts",
    [
        ({"use_local": False}, {"ed_global", "ec_global"}),
        ({"use_global": False}, {"ed_local", "ec_local"}),
        ({"use_ec": False}, {"ed_global", "ed_local"}),
        ({"use_ed": False}, {"ec_global", "ec_local"}),
    ],
)
def test_ablations_build_and_run(mlm_dir, overrides, parts):
    model = make(mlm_dir, **overrides)
    out = model(*_batch(model), ITEMS)
    branch = {"itc", "ed_global", "ec_global", "ed_local", "ec_local"}
    assert set(out) & branch == parts | {"itc"}
    assert hasattr(model, "global_proj") == ("use_global" not in overrides)
    assert hasattr(model, "cross_blocks") == ("use_local" not in overrides)
    assert hasattr(model, "ed_head") == ("use_ed" not in overrides)
    assert hasattr(model, "ec_head") == ("use_ec" not in overrides)
    if len(parts) == 2 and "use_ed" not in overrides and "use_ec" not in overrides:
        # a single branch is weighted 1, not beta or 1 - beta
        torch.testing.assert_close(out["loss"], out["itc"] + sum(out[p] for p in parts))
    out["loss"].backward()


def test_itc_only_builds_no_heads_no_branches_no_editor():
    model = make(None, use_ed=False, use_ec=False)
    for name in ("global_proj", "cross_blocks", "ed_head", "ec_head"):
        assert not hasattr(model, name)
    assert model.editor is None
    out = model(*_batch(model), ITEMS)
    assert set(out) == {"itc", "loss", "temp"}


def test_itc_only_twin_has_the_same_retrieval_encoder(mlm_dir):
    torch.manual_seed(1)
    itc = make(None, use_ed=False, use_ec=False).eval()
    vilem = make(mlm_dir).eval()
    assert retrieval_parameter_count(itc) == retrieval_parameter_count(vilem)
    assert sum(p.numel() for p in vilem.parameters()) > sum(p.numel() for p in itc.parameters())
    pixels, ids, mask = _batch(vilem)
    assert not torch.allclose(itc.encode_image(pixels), vilem.encode_image(pixels))
    shared = itc.state_dict()
    assert set(shared) < set(vilem.state_dict())
    vilem.load_state_dict(shared, strict=False)
    torch.testing.assert_close(itc.encode_image(pixels), vilem.encode_image(pixels), rtol=0, atol=0)
    torch.testing.assert_close(
        itc.encode_text(ids, mask), vilem.encode_text(ids, mask), rtol=0, atol=0
    )


def test_embeddings_are_unit_norm_and_video_is_mean_of_frames(mlm_dir):
    model = make(mlm_dir).eval()
    videos, ids, mask = _batch(model, frames=2)
    frames = model.encode_image(videos.flatten(0, 1)).view(3, 2, -1)
    expected = F.normalize(frames.mean(dim=1), dim=-1)
    torch.testing.assert_close(model.encode_video(videos), expected)
    torch.testing.assert_close(model.encode_text(ids, mask).norm(dim=-1), torch.ones(3))


def test_video_batches_train(mlm_dir):
    model = make(mlm_dir)
    out = model(*_batch(model, frames=2), ITEMS)
    assert {"ed_local", "ed_global"} <= set(out)
    out["loss"].backward()
    assert model.cross_blocks[0].kv_proj.weight.grad is not None


def test_temperature_is_clamped(mlm_dir):
    model = make(None, use_ed=False, use_ec=False)
    with torch.no_grad():
        model.temp.fill_(2.0)
    model(*_batch(model), ITEMS)
    assert model.temp.item() == pytest.approx(0.5)


def test_momentum_queue_and_paired_branches(mlm_dir):
    cfg = tiny_config(momentum=True, momentum_m=0.5, queue_size=4, paired_momentum=True)
    model = with_editor(ViLEM(cfg), mlm_dir)
    online = model.vision_proj.weight.detach().clone()
    with torch.no_grad():
        model.vision_proj_m.weight.zero_()
    out = model(*_batch(model), ITEMS, alpha=0.4)
    # one EMA step with m = 0.5 from zero: half the online weight
    torch.testing.assert_close(model.vision_proj_m.weight, 0.5 * online)
    assert int(model.queue_filled) == 3 and int(model.queue_ptr) == 3
    out["loss"].backward()
    assert model.vision_proj_m.weight.grad is None
    # second step wraps around the queue of 4
    model(*_batch(model), torch.tensor([5, 6, 5]), alpha=0.4)
    assert int(model.queue_filled) == 4 and int(model.queue_ptr) == 2
    assert model.id_queue.tolist() == [6, 5, 0, 5]  # slots 3, 0, 1 overwritten


def test_tokenize_rejects_empty_captions():
    model = make(None, use_ed=False, use_ec=False)
    with pytest.raises(DataError, match="caption 1 is empty"):
        model.tokenize(["a cube", "  "])
    ids, _ = model.tokenize(["word " * 50])
    assert ids.shape[1] == 16  # max_len


def test_config_round_trip_and_errors_name_the_key():
    cfg = tiny_config(momentum=True)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match=r"model\.text\.hiden.*'hidden'"):
        config_from_dict({"text": {"hiden": 64}})
    with pytest.raises(ConfigError, match=r"'model\.embed_dim' must be int, got '256'"):
        config_from_dict({"embed_dim": "256"})
    with pytest.raises(ConfigError, match=r"'model\.use_ed' must be bool, got 1"):
        config_from_dict({"use_ed": 1})
    with pytest.raises(ConfigError, match=r"'model\.negatives\.p' must be float, got True"):
        config_from_dict({"negatives": {"p": True}})
    assert config_from_dict({"beta": 1}).beta == 1.0
    with pytest.raises(ConfigError, match="queue_size > 0 needs model.momentum"):
        config_from_dict({"queue_size": 16})


def test_fusion_layer_beyond_text_depth_is_refused():
    with pytest.raises(ConfigError, match="fusion_layer"):
        make(None, fusion_layer=4, use_ed=False, use_ec=False)
