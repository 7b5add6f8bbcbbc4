"""Bad checkpoints for ``--model vilem:DIR`` and ``vilem train --resume``: pickle files are
refused unread, damaged or missing weights and configs are one line naming the file, and a
damaged training checkpoint is reported, never deleted or overwritten."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
from faults_build import pickle_bomb, write
from faults_cases import Case, check, params


def _not_unpickled(ctx, outcome):
    assert not (ctx.dir / "UNPICKLED").exists(), "a pickle file was loaded"


def _model(mutate):
    """``eval --model vilem:bad`` where ``bad`` is a copy of the previous checkpoint, mutated."""

    def setup(ctx):
        bad = ctx.dir / "bad"
        shutil.copytree(ctx.prev / "ckpt", bad)
        target = mutate(ctx, bad) or bad
        return ctx.eval("synthetic", ctx.base.synthetic, model=f"vilem:{target}")

    return setup


def _pickle_only(ctx, bad):
    for f in bad.iterdir():
        f.unlink()
    write(bad / "pytorch_model.bin", pickle_bomb(ctx.dir / "UNPICKLED"))


def _pickle_file(ctx, bad):
    return write(ctx.dir / "model.pt", pickle_bomb(ctx.dir / "UNPICKLED"))


def _weights(data_of):
    def mutate(ctx, bad):
        path = bad / "model.safetensors"
        path.write_bytes(data_of(path.read_bytes()))

    return mutate


def _remove(name):
    return lambda ctx, bad: (bad / name).unlink()


def _config(change):
    def mutate(ctx, bad):
        path = bad / "config.json"
        if isinstance(change, bytes):
            path.write_bytes(change)
        else:
            data = json.loads(path.read_text())
            change(data)
            path.write_text(json.dumps(data))

    return mutate


def _wider(data):
    data["model"]["embed_dim"] = 24


def _resume(mutate=None, *overrides, resume=True):
    """``vilem train --resume`` on a copy of the stopped tiny run, its checkpoint ``mutate``d."""

    def setup(ctx):
        run = ctx.train_run()
        if mutate is not None:
            mutate(run / "checkpoint")
        return ["train", "--config", ctx.base.recipe, "--out", run, "--quiet",
                *(["--resume"] if resume else []), *overrides]  # fmt: skip

    return setup


def _truncate(name):
    def mutate(folder):
        path = folder / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])

    return mutate


def _delete(name):
    return lambda folder: (folder / name).unlink()


def _no_final_model(ctx, outcome):
    assert not (ctx.dir / "run" / "model").exists(), "a final model appeared"


def _init_from_pickle(ctx):
    folder = write(ctx.dir / "pk" / "pytorch_model.bin", pickle_bomb(ctx.dir / "UNPICKLED")).parent
    return ["train", "--config", ctx.base.recipe, "--out", ctx.dir / "newrun", "--quiet",
            f"init_from={folder}"]  # fmt: skip


HUGE_HEADER = struct.pack("<Q", 1 << 40)
W = "model.safetensors"
CASES = [
    Case("ckpt-pickle-only", "a folder holding only pytorch_model.bin (a malicious pickle)",
         "refuses without unpickling: only safetensors are read", _model(_pickle_only),
         words=("pytorch_model.bin", "pickle"), then=_not_unpickled),
    Case("ckpt-pickle-file", "--model vilem:model.pt (a malicious pickle)",
         "refuses without unpickling", _model(_pickle_file), words=("model.pt", "pickle"),
         then=_not_unpickled),
    Case("ckpt-garbage-weights", "model.safetensors overwritten with junk",
         "refuses: cannot read the weights, names the file",
         _model(_weights(lambda b: bytes(range(256)) * 8)), words=(W,)),
    Case("ckpt-truncated-weights", "model.safetensors cut to a third", "refuses: names the file",
         _model(_weights(lambda b: b[: len(b) // 3])), words=(W,)),
    Case("ckpt-huge-header", "model.safetensors whose header claims 1 TiB",
         "refuses: names the file", _model(_weights(lambda b: HUGE_HEADER + b[8:])), words=(W,)),
    Case("ckpt-zero-byte-weights", "model.safetensors of 0 bytes", "refuses: names the file",
         _model(_weights(lambda b: b"")), words=(W,)),
    Case("ckpt-missing-weights", "a checkpoint folder without model.safetensors",
         "refuses: names the missing file", _model(_remove(W)), words=(W,)),
    Case("ckpt-missing-config", "a checkpoint folder without config.json",
         "refuses: names the missing file", _model(_remove("config.json")), words=("config.json",)),
    Case("ckpt-malformed-config", "config.json cut off", "refuses: not valid JSON",
         _model(_config(b'{"format": "vilem-chec')), words=("config.json", "json")),
    Case("ckpt-foreign-config", "config.json of another tool", "refuses: not a vilem checkpoint",
         _model(_config(b'{"architectures": ["BertModel"]}')), words=("config.json",)),
    Case("ckpt-config-mismatch", "config.json says embed_dim 24, the weights have 16",
         "refuses: the weights do not match, nothing half-loaded", _model(_config(_wider)),
         words=(("match", "shape"),)),
    Case("ckpt-missing-folder", "--model vilem:DIR for a DIR that does not exist",
         "refuses: checkpoint folder not found",
         lambda ctx: ctx.eval("synthetic", ctx.base.synthetic, model=f"vilem:{ctx.dir}/nope"),
         words=("nope", "not found")),
    Case("resume-truncated-weights", "--resume from a checkpoint whose weights are cut short",
         "refuses: names the file; the checkpoint is kept as it was", _resume(_truncate(W)),
         words=(W,), then=_no_final_model),
    Case("resume-missing-weights", "--resume from a checkpoint without model.safetensors",
         "refuses: names the file; the checkpoint is kept", _resume(_delete(W)), words=(W,),
         then=_no_final_model),
    Case("resume-truncated-state", "--resume with train_state.safetensors cut short",
         "refuses: names the file; the checkpoint is kept",
         _resume(_truncate("train_state.safetensors")), words=("train_state.safetensors",),
         then=_no_final_model),
    Case("resume-malformed-state-json", "--resume with train_state.json cut off",
         "refuses: names the file", _resume(lambda f: (f / "train_state.json").write_text('{"ve')),
         words=("train_state.json",), then=_no_final_model),
    Case("resume-config-changed", "--resume with the seed changed",
         "refuses: the config differs from the checkpoint's", _resume(None, "seed=5"),
         words=("resume", "seed"), then=_no_final_model),
    Case("resume-flag-missing", "train into a folder holding a checkpoint, without --resume",
         "refuses: pass --resume or another --out", _resume(None, resume=False),
         words=("--resume",), then=_no_final_model),
    Case("init-from-pickle", "init_from= a folder holding only a pickle",
         "refuses without unpickling",
         _init_from_pickle,
         words=("pk", ("pickle", "safetensors")), then=_not_unpickled),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_checkpoint_fault(case, ctx, vilem):
    check(case, ctx, vilem)
