"""The loop's pieces (schedule, parameter groups, seeds) and a short end-to-end run that lowers
every loss part; the ``vilem train`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from train_helpers import tiny_train_dict

from vilem.cli import main
from vilem.errors import ConfigError
from vilem.train.config import config_from_mapping
from vilem.train.loop import resolve_amp, step_seed, train
from vilem.train.optim import adamw, lr_at, param_groups


def test_lr_schedule_at_hand_picked_steps():
    # warm-up 4 steps to 1.0, cosine to 0 at step 14
    assert lr_at(0, 1.0, 4, 14) == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4, 14) == pytest.approx(1.0)
    assert lr_at(4, 1.0, 4, 14) == pytest.approx(1.0)  # cos(0)
    assert lr_at(9, 1.0, 4, 14) == pytest.approx(0.5)  # half-way: (1 + cos(pi/2)) / 2
    assert lr_at(6, 2.0, 4, 14) == pytest.approx(2.0 * (1 + math.cos(math.pi * 0.2)) / 2)
    assert lr_at(14, 1.0, 4, 14) == pytest.approx(0.0)
    assert lr_at(9, 1.0, 4, 14, min_ratio=0.1) == pytest.approx(0.55)
    assert lr_at(0, 3e-4, 0, 10) == pytest.approx(3e-4)  # no warm-up: the peak at once


def test_proxy_weight_ramps_linearly_then_holds():
    from vilem.train.optim import proxy_weight_at

    assert [proxy_weight_at(s, 0.5, 3) for s in (0, 1, 2, 3, 10)] == [0.125, 0.25, 0.375, 0.5, 0.5]
    assert proxy_weight_at(0, 1.0, 0) == 1.0  # no ramp: the full weight from the first step


def test_param_groups_skip_decay_on_bias_norm_temperature_and_scale_the_image_tower():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.image_tower = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
            self.text_proj = torch.nn.Linear(2, 2)
            self.temp = torch.nn.Parameter(torch.tensor(0.07))
            self.frozen = torch.nn.Linear(2, 2).requires_grad_(False)

    model = Tiny()
    groups = {g["name"]: g for g in param_groups(model, 0.05, 0.1)}
    names = {id(p): n for n, p in model.named_parameters()}
    members = {k: sorted(names[id(p)] for p in g["params"]) for k, g in groups.items()}
    assert members == {
        "image/decay": ["image_tower.0.weight"],
        "image/no_decay": ["image_tower.0.bias", "image_tower.1.bias", "image_tower.1.weight"],
        "other/decay": ["text_proj.weight"],
        "other/no_decay": ["temp", "text_proj.bias"],
    }
    assert groups["image/decay"]["lr_mult"] == 0.1 and groups["other/decay"]["lr_mult"] == 1.0
    assert groups["image/no_decay"]["weight_decay"] == 0.0
    assert groups["other/decay"]["weight_decay"] == 0.05


def _adamw_updates(optimizer_factory) -> list[torch.Tensor]:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    groups = [{"params": params[:1], "weight_decay": 0.1}, {"params": params[1:]}]
    optimizer = optimizer_factory(groups, lr=0.01, betas=(0.9, 0.98), weight_decay=0.0)
    for step in range(3):
        for p in params:
            p.grad = torch.randn_like(p) * (step + 1)
        optimizer.step()
    return [p.detach() for p in params]


def test_adamw_is_fused_where_torch_has_the_kernel_and_updates_as_the_reference():
    optimizer = adamw([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    if torch.__version__ >= (2, 4):  # torch's fused AdamW runs on CPU since 2.4
        assert optimizer.defaults["fused"] is True
    reference = _adamw_updates(torch.optim.AdamW)
    for got, want in zip(_adamw_updates(adamw), reference, strict=True):
        torch.testing.assert_close(got, want)


def test_adamw_falls_back_when_there_is_no_fused_kernel(monkeypatch):
    original = torch.optim.AdamW

    def no_fused(params, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be on CUDA")
        return original(params, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    params = (p for p in [torch.nn.Parameter(torch.zeros(2))])  # a generator: read once
    optimizer = adamw(params, lr=0.1)
    assert not optimizer.defaults.get("fused") and len(optimizer.param_groups[0]["params"]) == 1


def test_step_seeds_differ_per_step_micro_batch_and_rank():
    seeds = {step_seed(0, s, m, r) for s in range(3) for m in range(2) for r in range(2)}
    assert len(seeds) == 12 and step_seed(0, 1, 0, 0) == step_seed(0, 1, 0, 0)
    assert all(0 <= s < 2**63 for s in seeds)


def test_amp_is_bf16_on_cuda_and_fp32_on_cpu_by_default():
    assert resolve_amp("auto", torch.device("cpu")) is None
    assert resolve_amp("auto", torch.device("cuda", 0)) is torch.bfloat16
    assert resolve_amp("fp32", torch.device("cuda", 0)) is None
    assert resolve_amp("bf16", torch.device("cpu")) is torch.bfloat16


def test_a_short_run_lowers_every_loss_part(tmp_path, synth_root, tiny_mlm):
    raw = tiny_train_dict(
        synth_root,
        tiny_mlm,
        optim={"steps": 40, "lr": 2e-3, "warmup_steps": 4, "batch_size": 16},
        data={"val_split": "val"},
    )
    summary = train(config_from_mapping(raw), tmp_path, quiet=True)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 41))
    parts = ["itc", "ed_global", "ec_global", "ed_local", "ec_local", "loss"]
    for part in parts:
        first = np.mean([r[part] for r in records[:8]])
        last = np.mean([r[part] for r in records[-8:]])
        assert last < first, f"{part}: {first:.3f} -> {last:.3f}"
    assert records[-1]["samples_per_s"] > 0 and records[0]["lr"] == pytest.approx(2e-3 / 4)
    assert summary["val"]["rsum"] == records[-1]["val/rsum"] and 0 <= summary["val"]["rsum"] <= 600
    # the negatives were measured against the synthetic grammar before training
    report = json.loads((tmp_path / "negatives.json").read_text())
    assert report["captions"] > 0 and 0 <= report["grammatical_pct"] <= 100
    assert report["clean_grammatical_pct"] == 100.0 and "text_only_detector" not in report
    # the final model loads as an evaluation model
    from vilem.models import load_model

    model = load_model(f"vilem:{tmp_path / 'model'}")
    emb = model.encode_texts(["a red circle"])
    assert emb.shape == (1, 32) and torch.allclose(emb.norm(dim=-1), torch.ones(1))


def test_train_command_runs_a_recipe_file_with_overrides(tmp_path, synth_root, capsys):
    import yaml

    raw = tiny_train_dict(synth_root, None, optim={"steps": 2})
    raw["model"].update(use_ed=False, use_ec=False)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    # overrides may come in groups between options; the later value wins
    argv = ["train", "--config", str(recipe), "optim.steps=5", "--out", str(out), "--quiet"]
    code = main([*argv, "optim.steps=3"])
    assert code == 0
    assert "trained 3/3 steps" in capsys.readouterr().out
    assert (out / "model" / "model.safetensors").is_file()

    code = main(["train", "--config", str(recipe), "--out", str(out), "optim.stesp=3"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown config key 'optim.stesp'" in err and "did you mean 'steps'" in err
    assert err.count("\n") == 1  # one line, no traceback


def test_video_training_validates_on_clips_and_starts_from_an_image_model(
    tmp_path, synth_root, tiny_mlm
):
    from safetensors.torch import load_file

    from vilem.model.config import config_from_dict
    from vilem.model.vilem import ViLEM
    from vilem.train.loop import _init_from

    image = tiny_train_dict(synth_root, None, optim={"steps": 1})
    image["model"].update(use_ed=False, use_ec=False)
    train(config_from_mapping(image), tmp_path / "image", quiet=True)

    video = tiny_train_dict(
        synth_root,
        tiny_mlm,
        optim={"steps": 2, "batch_size": 4},
        data={"dataset": "synthetic-video", "val_split": "val", "frames": 2},
        init_from=str(tmp_path / "image" / "model"),
    )
    summary = train(config_from_mapping(video), tmp_path / "video", quiet=True)
    assert summary["finished"] and "rsum" in summary["val"]
    assert summary["last_log"]["ed_local"] > 0  # the local branch ran over the clip's patches

    # init_from copies the retrieval towers and leaves the new ViLEM heads as initialised
    model = ViLEM(config_from_dict(video["model"]))
    _init_from(model, tmp_path / "image" / "model", quiet=True)
    source = load_file(str(tmp_path / "image" / "model" / "model.safetensors"))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source.items())
    assert any(k.startswith("ed_head") for k in state) and not any(
        k.startswith("ed_head") for k in source
    )
    bigger = dict(video["model"], embed_dim=64)
    with pytest.raises(ConfigError, match="does not match the model's retrieval towers"):
        _init_from(ViLEM(config_from_dict(bigger)), tmp_path / "image" / "model", True)


def test_the_loop_ticks_the_governor_and_records_the_count(tmp_path, synth_root, monkeypatch):
    from vilem import threads

    ticks = []
    monkeypatch.setattr(threads, "tick", lambda: ticks.append(1))
    raw = tiny_train_dict(synth_root, None, optim={"steps": 3})
    raw["model"].update(use_ed=False, use_ec=False)
    summary = train(config_from_mapping(raw), tmp_path, quiet=True)
    assert len(ticks) == 3
    # the numbers depend on torch's thread count: the log and the summary say which it was
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    logged = [r["threads"] for r in records if "loss" in r]
    assert logged and set(logged) == {torch.get_num_threads()}
    assert summary["threads"]["threads"] == torch.get_num_threads()
