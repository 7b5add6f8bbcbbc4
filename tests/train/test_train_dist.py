"""DDP on CPU (gloo): one optimizer step on a global batch of 8 split 4 + 4 over two processes
updates the weights exactly as one process on all 8 does."""

from __future__ import annotations

import functools
import json
import os

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from train_helpers import tiny_train_dict

from vilem.train.config import config_from_mapping


def _no_dropout() -> None:
    # dropout masks depend on each process's batch, so they cannot match across layouts
    import transformers

    import vilem.model.towers as towers

    towers.BertConfig = functools.partial(
        transformers.BertConfig, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )


def _config(root, batch_size: int):
    raw = tiny_train_dict(
        root,
        None,
        # eps >> |grad| makes AdamW's first update ~ lr * grad / eps: proportional to the
        # gradient, so a gradient off by the world size shows (sign-like Adam would hide it)
        optim={
            "steps": 1,
            "batch_size": batch_size,
            "lr": 1000.0,
            "eps": 1000.0,
            "warmup_steps": 0,
            "weight_decay": 0.0,
        },
        data={"val_split": "val"},  # validated at the end, the encoding sharded over ranks
    )
    raw["model"].update(use_ed=False, use_ec=False)  # negatives differ per rank by design
    raw["device"] = "cpu"  # gloo processes on the CPU, also where a GPU is visible
    return config_from_mapping(raw)


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    _no_dropout()
    from vilem.dist import cleanup
    from vilem.train.loop import train

    try:
        train(_config(root, 8 // world), out, quiet=True)
    finally:
        cleanup()


def test_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path, synth_root, free_port):
    mp.spawn(_worker, args=(1, free_port(), str(synth_root), str(tmp_path / "one")), nprocs=1)
    mp.spawn(_worker, args=(2, free_port(), str(synth_root), str(tmp_path / "two")), nprocs=2)
    one = load_file(str(tmp_path / "one/model/model.safetensors"))
    two = load_file(str(tmp_path / "two/model/model.safetensors"))
    assert one.keys() == two.keys()
    for run in ("one", "two"):
        record = json.loads((tmp_path / run / "log.jsonl").read_text().splitlines()[-1])
        assert 0 <= record["val/rsum"] <= 600, run

    # the same initial weights: rebuild them with the same seed as the trainer does
    from vilem.model.vilem import ViLEM

    _no_dropout()
    torch.manual_seed(0)
    init = ViLEM(_config(synth_root, 8).model).state_dict()
    moved = 0
    for key in one:
        delta_one, delta_two = one[key] - init[key], two[key] - init[key]
        torch.testing.assert_close(delta_two, delta_one, atol=1e-5, rtol=1e-4, msg=key)
        moved += int(delta_one.abs().max() > 1e-4)
    assert moved > len(one) // 2  # the step really changed most tensors


@pytest.fixture(autouse=True)
def _restore_bert_config():
    import vilem.model.towers as towers

    original = towers.BertConfig
    yield
    towers.BertConfig = original


def test_more_processes_than_gpus_is_a_clear_config_error(monkeypatch):
    from vilem.dist import pick_device
    from vilem.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("auto", 0) == torch.device("cuda", 0)
    assert pick_device("cpu", 1) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"LOCAL_RANK 1\) would run on cuda:1, but 1 CUDA"):
        pick_device("auto", 1)
    with pytest.raises(ConfigError, match="cuda:3"):
        pick_device("cuda:3", 0)
