"""Checkpoints: atomic swap survives a crash at any point, nothing is pickled, and a stopped
then resumed run ends bit-identical to an uninterrupted one (CPU)."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import tiny_train_dict

from vilem.errors import ConfigError
from vilem.train import state as S
from vilem.train.config import config_from_mapping
from vilem.train.loop import train


def _folder(path, text):
    path.mkdir(parents=True)
    (path / S.STATE_JSON).write_text(text)
    return path


def test_swap_in_replaces_the_checkpoint_and_leaves_no_debris(tmp_path):
    _folder(tmp_path / "checkpoint", "A")
    S.swap_in(_folder(tmp_path / "checkpoint.tmp-1", "B"), tmp_path / "checkpoint")
    assert (tmp_path / "checkpoint" / S.STATE_JSON).read_text() == "B"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_crash_between_the_renames_recovers_the_old_checkpoint(tmp_path):
    _folder(tmp_path / "checkpoint", "A")
    _folder(tmp_path / "checkpoint.tmp-9", "B")
    # the swap's first rename happened, then the process was killed
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    found = S.recover_checkpoint(tmp_path)
    assert found == tmp_path / "checkpoint"
    assert (found / S.STATE_JSON).read_text() == "A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_crash_before_cleanup_keeps_the_new_checkpoint(tmp_path):
    _folder(tmp_path / "checkpoint.old", "A")
    _folder(tmp_path / "checkpoint", "B")
    assert (S.recover_checkpoint(tmp_path) / S.STATE_JSON).read_text() == "B"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_crash_while_writing_leaves_no_checkpoint_to_resume(tmp_path):
    (tmp_path / "checkpoint.tmp-3").mkdir()  # killed before its train_state.json existed
    assert S.recover_checkpoint(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_optimizer_state_round_trips_exactly():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    for _ in range(2):
        model(torch.randn(5, 4)).square().sum().backward()
        opt.step()
    tensors, meta = S.flatten_optimizer(opt)
    assert all(torch.is_tensor(v) for v in tensors.values())
    meta = json.loads(json.dumps(meta))  # it must survive JSON
    opt2 = torch.optim.AdamW(model.parameters(), lr=0.1)
    opt2.load_state_dict(S.unflatten_optimizer(tensors, meta))
    for p in model.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][key], opt2.state[p][key])


def test_rng_states_round_trip():
    import random

    import numpy as np

    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    saved = S.rng_state_tensors(torch.device("cpu"))
    first = (torch.rand(3), random.random(), np.random.rand())
    S.set_rng_state_tensors(saved, torch.device("cpu"))
    second = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(first[0], second[0]) and first[1:] == second[1:]


@pytest.fixture
def no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("checkpoints must not pickle")

    monkeypatch.setattr(torch, "save", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "dump", refuse)


def _resume_cfg(synth_root, tiny_mlm):
    # grad accumulation over an epoch boundary (80 texts / 8 = 10 micro-batches = 5 steps),
    # momentum encoders + queue (buffers), validation mid-run, dropout on, ED/EC negatives
    raw = tiny_train_dict(
        synth_root,
        tiny_mlm,
        optim={"steps": 6, "grad_accum": 2, "clip_grad": 1.0},
        data={"val_split": "val"},
        val_every=3,
    )
    raw["model"].update(momentum=True, queue_size=16)
    return config_from_mapping(raw)


def test_stop_and_resume_is_bit_identical_to_an_uninterrupted_run(
    tmp_path, synth_root, tiny_mlm, no_pickle
):
    cfg = _resume_cfg(synth_root, tiny_mlm)
    full = train(cfg, tmp_path / "full", quiet=True)
    assert full["finished"] and full["steps"] == 6

    part = train(cfg, tmp_path / "split", quiet=True, max_steps=3)
    assert part["steps"] == 3 and not part["finished"] and part["model"] is None
    state = json.loads((tmp_path / "split/checkpoint/train_state.json").read_text())
    assert state["step"] == 3 and state["data_position"]["micro_batch"] == 6
    # a record written after the checkpoint (the kill came later) is dropped on resume
    with open(tmp_path / "split/log.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "loss": -1.0}) + "\n")
    done = train(cfg, tmp_path / "split", resume=True, quiet=True)
    assert done["finished"] and done["steps_run"] == 3

    a = load_file(str(tmp_path / "full/model/model.safetensors"))
    b = load_file(str(tmp_path / "split/model/model.safetensors"))
    assert a.keys() == b.keys() and any("queue" in k for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key

    logs = [
        [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in ("full", "split")
    ]
    assert [r["step"] for r in logs[1]] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(*logs, strict=True):
        assert ra["loss"] == rb["loss"] and ra.get("val/rsum") == rb.get("val/rsum")
    assert "val/t2i_R@1" in logs[0][2] and "val/rsum" in logs[0][5]


def test_resume_refuses_a_changed_model_and_a_fresh_run_refuses_to_overwrite(
    tmp_path, synth_root, tiny_mlm
):
    raw = tiny_train_dict(synth_root, None, optim={"steps": 2})
    raw["model"].update(use_ed=False, use_ec=False)
    train(config_from_mapping(raw), tmp_path, quiet=True, max_steps=1)
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        train(config_from_mapping(raw), tmp_path, quiet=True)
    raw["model"]["embed_dim"] = 16
    with pytest.raises(ConfigError, match="'model'"):
        train(config_from_mapping(raw), tmp_path, resume=True, quiet=True)
    # a crash between the renames of a later save: resume still finds the last good one
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    raw["model"]["embed_dim"] = 32
    out = train(config_from_mapping(raw), tmp_path, resume=True, quiet=True)
    assert out["finished"] and out["steps_run"] == 1
    shutil.rmtree(tmp_path / "model")


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_resume_from_damaged_weights_is_one_line_naming_the_file(tmp_path, synth_root, damage):
    raw = tiny_train_dict(synth_root, None, optim={"steps": 2})
    raw["model"].update(use_ed=False, use_ec=False)
    train(config_from_mapping(raw), tmp_path, quiet=True, max_steps=1)
    weights = tmp_path / "checkpoint" / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        weights.unlink()
    state_before = (tmp_path / "checkpoint" / S.STATE_JSON).read_text()
    with pytest.raises(ConfigError) as exc:
        train(config_from_mapping(raw), tmp_path, resume=True, quiet=True)
    message = str(exc.value)
    assert str(weights) in message and "\n" not in message
    assert ("is truncated" if damage == "truncated" else "has no") in message
    assert (tmp_path / "checkpoint" / S.STATE_JSON).read_text() == state_before  # untouched


def test_the_train_state_goes_through_the_atomic_writer(tmp_path, monkeypatch):
    written = []
    real = S.atomic_write_bytes
    monkeypatch.setattr(S, "atomic_write_bytes", lambda p, d: (written.append(p.name), real(p, d)))
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    from vilem.model import checkpoint

    monkeypatch.setattr(checkpoint, "save_model", lambda m, folder: folder.mkdir(parents=True))
    rng = [S.rng_state_tensors(torch.device("cpu"))]
    S.write_checkpoint(tmp_path, model, optimizer, rng, {"step": 1})
    assert S.STATE_TENSORS in written
    meta, tensors = S.read_checkpoint(tmp_path / S.CHECKPOINT)
    assert meta["step"] == 1 and any(k.startswith("optimizer.") for k in tensors)
