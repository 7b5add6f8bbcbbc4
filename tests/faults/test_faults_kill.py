"""``kill -9`` in the middle of a write: ``VILEM_FAULT=kill-before-replace`` makes vilem SIGKILL
itself at the atomic-write point (temp file written and fsynced, target not yet replaced;
``kill-before-replace:NAME`` only for targets named NAME). The previous file must be
byte-identical, no temp file may pass for a result, and a rerun without the fault completes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from faults_cases import Case, params
from faults_runner import (
    assert_unchanged,
    case_env,
    new_files,
    snapshot,
    valid_json,
    visible_results,
)

KILLED = -9


def _hidden_or_tmp(rel: str) -> bool:
    parts = rel.split("/")
    return any(p.startswith(".") or ".tmp" in p for p in parts) or rel.endswith(".lock")


def killed_then_rerun(ctx, vilem, argv, fault, guarded, rerun=None):
    """Run ``argv`` with the fault: killed, ``guarded`` folders byte-identical, leftovers hidden
    or temporary; then ``rerun`` (default: the same argv) without it: exit 0."""
    before = {g: snapshot(g) for g in guarded}
    everything = snapshot(ctx.dir)
    env = case_env(ctx.dir, {"VILEM_FAULT": fault})
    outcome = vilem.run(argv, ctx.dir, env)
    assert outcome.rc == KILLED, f"expected death by SIGKILL\n{outcome}"
    assert "Traceback" not in outcome.stderr + outcome.stdout, str(outcome)
    for g in guarded:
        assert_unchanged(before[g], snapshot(g))
    leftovers = new_files(everything, ctx.dir)
    visible = [p for p in leftovers if not _hidden_or_tmp(p) and p.endswith((".json", ".npy"))]
    assert not visible, f"a half-written file looks like a result: {visible}"
    for path in visible_results(ctx.prev):
        valid_json(path)
    again = vilem.run(rerun or argv, ctx.dir)
    assert again.rc == 0, f"the rerun after the kill failed\n{again}"
    return again


def _eval_result(ctx, vilem):
    argv = ctx.eval("synthetic", ctx.base.synthetic, out=ctx.prev / "result.json")
    killed_then_rerun(ctx, vilem, argv, "kill-before-replace", [ctx.prev])
    assert valid_json(ctx.prev / "result.json")["schema"] == "vilem.result"


def _eval_embeddings(ctx, vilem):
    emb = ctx.prev / "emb"
    argv = ctx.eval("synthetic", ctx.base.synthetic, "--save-embeddings", emb, out=None)
    killed_then_rerun(ctx, vilem, argv, "kill-before-replace", [ctx.prev])
    index = valid_json(ctx.prev / "emb" / "index.json")
    assert np.load(ctx.prev / "emb" / "items.npy").shape[0] == len(index["items"])


def _train(fault: str):
    def run(ctx, vilem):
        out = ctx.train_run()
        argv = ["train", "--config", ctx.base.recipe, "--out", out, "--resume", "--quiet"]
        killed_then_rerun(ctx, vilem, [*argv, "--max-steps", "1"], fault,
                          [ctx.prev, out / "checkpoint"], rerun=argv)  # fmt: skip
        state = json.loads((out / "checkpoint" / "train_state.json").read_text())
        assert state["step"] == 3 and (out / "model" / "model.safetensors").is_file()
        assert not list(out.glob("*.tmp-*")) and not list(out.glob("*.old")), "debris left"
        lines = (out / "log.jsonl").read_text().splitlines()
        steps = [json.loads(line).get("step") for line in lines]
        assert steps == sorted(set(steps)), f"log.jsonl repeats steps: {steps}"

    return run


def _bench_cell(ctx, vilem):
    argv = ["bench", ctx.bench_spec(), "--quiet"]
    first = vilem.run(argv, ctx.dir)
    assert first.rc == 0, str(first)
    results = ctx.dir / "bench" / "results"
    killed_then_rerun(ctx, vilem, [*argv, "--rerun"], "kill-before-replace:s__retrieval.json",
                      [results])  # fmt: skip
    assert valid_json(results / "r" / "s__retrieval.json")["status"] == "ok"
    assert not list(results.rglob("*.lock")), "a lock outlived the rerun"


def _leaderboard(ctx, vilem):
    argv = ["leaderboard", ctx.prev, "--out", ctx.prev / "board.md"]
    first = vilem.run(argv, ctx.dir)
    assert first.rc == 0, str(first)
    killed_then_rerun(ctx, vilem, argv, "kill-before-replace", [ctx.prev])
    assert (ctx.prev / "board.md").read_text().strip()


def _kill(cid, fault, does, fn):
    return Case(cid, fault, f"dies by SIGKILL (exit -9); {does} (exit 0)", setup=fn, code=-9)


CASES = [
    _kill("kill-eval-result", "kill -9 while eval --out replaces a previous result",
          "previous result byte-identical, temp file hidden; a rerun completes", _eval_result),
    _kill("kill-eval-embeddings", "kill -9 while --save-embeddings replaces previous embeddings",
          "previous embeddings byte-identical; a rerun completes", _eval_embeddings),
    _kill("kill-train-first-write", "kill -9 at the first atomic write of a resumed training run",
          "checkpoint byte-identical; --resume completes, log has no repeated steps",
          _train("kill-before-replace")),
    _kill("kill-checkpoint-weights", "kill -9 while a checkpoint's model.safetensors is written",
          "previous checkpoint byte-identical; --resume completes, no debris",
          _train("kill-before-replace:model.safetensors")),
    _kill("kill-checkpoint-state", "kill -9 at a checkpoint's last file (train_state.json)",
          "previous checkpoint byte-identical (the partial folder is never used); --resume "
          "completes", _train("kill-before-replace:train_state.json")),
    _kill("kill-bench-cell", "kill -9 while vilem bench --rerun replaces a cell's result",
          "previous cell byte-identical; the dead run's lock is taken over by the rerun",
          _bench_cell),
    _kill("kill-leaderboard", "kill -9 while vilem leaderboard --out replaces its file",
          "previous file byte-identical; a rerun completes", _leaderboard),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_kill_during_write(case, ctx, vilem):
    case.setup(ctx, vilem)
