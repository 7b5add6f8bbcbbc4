"""A shared machine: the main job's training step (the small ViLEM recipe) and one evaluation
cell, each in a fresh process (``contention_child.py``), alone and beside one competing
CPU-bound process (a pure-Python busy loop, one core), with the thread settings the ``vilem``
command applies (``vilem.threads.configure``: a fixed count; idle threads sleep where the
CPUs were busy at start, as beside the competitor, and spin where idle). For reference,
the same with the libraries' defaults (the state before the fix), one round each; the training
step with the opt-in count that follows the load (``VILEM_ADAPTIVE_THREADS=1``); and the
ITC-only step alone with and without the settings, which must not slow the baseline.

The runner reports wall and CPU time beside the competitor as ratios to the same run alone; the
variants take turns round by round, so both see the same background load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import interleaved

CHILD = Path(__file__).with_name("contention_child.py")
WORK_ARGS = {"train": ["--work", "train", "--steps", "6"], "eval": ["--work", "eval"]}
# before the fix a contended step took 2-13 s: fewer of them
DEFAULTS_ARGS = {"train": ["--work", "train", "--steps", "3"], "eval": ["--work", "eval"]}
FIXED = ("alone", "competitor")


def _env(setup: str) -> dict[str, str]:
    """The child's environment: as this process has it (configured), or without anything
    ``vilem.threads`` sets (``--threads N`` of the runner still pins the count)."""
    from vilem.threads import ADAPTIVE_VAR, COUNT_VARS, MARK, PASSIVE

    env = dict(os.environ)
    env.pop(ADAPTIVE_VAR, None)  # the child's --setup says whether the count follows the load
    if setup == "none":
        for key in (*PASSIVE, *COUNT_VARS, MARK, "GOMP_SPINCOUNT"):
            env.pop(key, None)
        if os.environ.get("VILEM_PERF_THREADS"):
            env["OMP_NUM_THREADS"] = os.environ["VILEM_PERF_THREADS"]
    return env


def run_child(args: list[str], root: Path, setup: str, competitor: bool) -> dict:
    """One child run, beside a busy-loop process when ``competitor``; its JSON report."""
    spinner = None
    if competitor:
        spinner = subprocess.Popen([sys.executable, str(CHILD), "--compete", "python"])
        time.sleep(0.5)  # running before the child starts
    cmd = [sys.executable, str(CHILD), *args, "--root", str(root), "--setup", setup]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=_env(setup), check=False, timeout=1800
        )
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _bench(benchmark, args: list[str], root: Path, setup: str, competitor: bool) -> dict:
    report = benchmark.pedantic(
        run_child, args=(args, root, setup, competitor), rounds=1, iterations=1
    )
    # the runner uses the child's own per-call timing (start-up and model building excluded)
    benchmark.extra_info.update(report)
    benchmark.extra_info["competitor"] = competitor
    return report


@pytest.mark.benchmark(group="shared_machine")
@interleaved(FIXED, rounds=3)
def test_shared_train(benchmark, synthetic_root, variant, round_):
    _bench(benchmark, WORK_ARGS["train"], synthetic_root, "vilem", variant == "competitor")


@pytest.mark.benchmark(group="shared_machine")
@interleaved(FIXED, rounds=2)
def test_shared_eval(benchmark, synthetic_root, variant, round_):
    _bench(benchmark, WORK_ARGS["eval"], synthetic_root, "vilem", variant == "competitor")


@pytest.mark.benchmark(group="shared_machine")
@interleaved(FIXED, rounds=2)
def test_shared_governed(benchmark, synthetic_root, variant, round_):
    _bench(benchmark, WORK_ARGS["train"], synthetic_root, "governed", variant == "competitor")


@pytest.mark.benchmark(group="shared_machine")
@interleaved(tuple(f"{w}_{c}" for w in ("train", "eval") for c in FIXED), rounds=1)
def test_shared_defaults(benchmark, synthetic_root, variant, round_):
    work, _, competitor = variant.partition("_")
    _bench(benchmark, DEFAULTS_ARGS[work], synthetic_root, "none", competitor == "competitor")


@pytest.mark.benchmark(group="shared_machine")
@interleaved(("configured", "defaults"), rounds=4)
def test_shared_itc_alone(benchmark, synthetic_root, variant, round_):
    args = ["--work", "train", "--recipe", "small-itc", "--steps", "8"]
    _bench(benchmark, args, synthetic_root, "vilem" if variant == "configured" else "none", False)
