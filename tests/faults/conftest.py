"""Session fixtures of the fault catalogue: the CLI runner and a base folder built once (tiny
synthetic data, a previous result / embeddings / checkpoint, a tiny stopped training run), and
a per-case folder that starts with copies of the previous outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from faults_build import make_coco, make_flickr, make_msrvtt, mp4_bytes, tiny_recipe
from faults_runner import Vilem, case_env

TINY_SYNTHETIC = {"images_train": 8, "images_val": 2, "images_test": 4, "videos_train": 2,
                  "videos_val": 2, "videos_test": 3, "frames": 4}  # fmt: skip
EVAL_FAST = ["--bootstrap", "0", "--workers", "0", "--quiet"]


@dataclass
class Base:
    """What the session built once, under ``root``."""

    root: Path
    synthetic: Path  # a tiny synthetic data root
    prev: Path  # result.json, emb/ (items.npy, texts.npy, index.json), ckpt/ (a ViLEM model)
    train_run: Path  # a tiny ITC-only run stopped at step 1 of 3 (checkpoint/ inside)
    recipe: Path  # its recipe YAML
    mp4: bytes  # a good 3-frame MP4


@dataclass
class Ctx:
    """One case's folder and what its setup adds to the run."""

    dir: Path
    base: Base
    env: dict[str, str] = field(default_factory=dict)
    words: list = field(default_factory=list)  # key words only known at setup (paths)
    cleanups: list = field(default_factory=list)  # run after the case (unmounts)

    @property
    def prev(self) -> Path:
        return self.dir / "prev"

    def synthetic(self, name: str = "syn") -> Path:
        """A private copy of the tiny synthetic root."""
        target = self.dir / name
        shutil.copytree(self.base.synthetic, target, symlinks=True)
        return target

    def coco(self, fmt: str = "karpathy") -> Path:
        return make_coco(self.dir / "coco", fmt)

    def flickr(self, fmt: str = "karpathy") -> Path:
        return make_flickr(self.dir / "flickr30k", fmt)

    def msrvtt(self) -> Path:
        return make_msrvtt(self.dir / "msrvtt", self.base.mp4)

    def eval(
        self,
        dataset: str,
        root: Path,
        *more,
        out: Path | str | None = "prev",
        model: str = "random",
    ) -> list:
        """``eval`` argv; ``out="prev"`` aims the result and embeddings at the previous ones,
        which a failing run must leave alone; a succeeding case writes ``new.json``."""
        argv = ["eval", "--model", model, "--dataset", dataset, "--root", root, *EVAL_FAST]
        if out == "prev":
            argv += ["--out", self.prev / "result.json", "--save-embeddings", self.prev / "emb"]
        elif out is not None:
            argv += ["--out", out]
        if "--cache-dir" not in more:
            argv.append("--no-cache")
        return argv + list(more)

    def tmpfs(self, name: str, size: str = "1m") -> Path:
        """A small tmpfs mounted at ``dir/name`` (unmounted after the case), or skip."""
        target = self.dir / name
        target.mkdir()
        reason = _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)])
        if reason:
            pytest.skip(f"cannot mount a tmpfs here: {reason}")
        self.cleanups.append(lambda: subprocess.run(["umount", "-l", str(target)], check=False))
        return target

    def remount_read_only(self, target: Path) -> None:
        reason = _mount(["-o", "remount,ro", str(target)])
        if reason:
            pytest.skip(f"cannot remount read-only: {reason}")

    def bench_spec(self, models: str = "{r: {spec: random}}", tasks: str = "[retrieval]") -> Path:
        """A bench spec of random models on the tiny synthetic data, results in ``dir/bench``."""
        spec = self.dir / "spec.yaml"
        spec.write_text(
            f"name: t\nout: {self.dir}/bench\nbootstrap: 0\nmodels: {models}\n"
            f"datasets: {{s: {{dataset: synthetic, root: {self.base.synthetic}}}}}\n"
            f"tasks: {tasks}\n"
        )
        return spec

    def train_run(self) -> Path:
        target = self.dir / "run"
        shutil.copytree(self.base.train_run, target)
        return target


def _mount(args: list[str]) -> str | None:
    """None when ``mount ARGS`` worked, else why not."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "needs root and mount(8)"
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    return done.stderr.strip() or f"mount exit {done.returncode}"


@pytest.fixture(scope="session")
def vilem(tmp_path_factory):
    runner = Vilem(tmp_path_factory.mktemp("vilem-logs"))
    yield runner
    runner.close()


def _run_ok(vilem: Vilem, argv: list, cwd: Path) -> None:
    outcome = vilem.run(argv, cwd)
    assert outcome.rc == 0, f"building the fixtures failed: {argv}\n{outcome}"


@pytest.fixture(scope="session")
def base(tmp_path_factory, vilem) -> Base:
    from vilem.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("faults-base")
    synthetic = root / "synthetic"
    generate(synthetic, SyntheticConfig(**TINY_SYNTHETIC), seed=0, workers=1)
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(synthetic)))
    mp4 = mp4_bytes()
    prev = root / "prev"
    prev.mkdir()
    _run_ok(vilem, ["eval", "--model", "random", "--dataset", "synthetic", "--root", synthetic,
                    "--out", prev / "result.json", "--save-embeddings", prev / "emb",
                    "--no-cache", *EVAL_FAST], root)  # fmt: skip
    train_run = root / "run"
    _run_ok(vilem, ["train", "--config", recipe, "--out", train_run, "--max-steps", "1",
                    "--quiet"], root)  # fmt: skip
    assert json.loads((train_run / "checkpoint" / "train_state.json").read_text())["step"] == 1
    # the run's checkpoint holds a ViLEM model folder (model.safetensors + config.json)
    (prev / "ckpt").mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy2(train_run / "checkpoint" / name, prev / "ckpt" / name)
    return Base(root, synthetic, prev, train_run, recipe, mp4)


@pytest.fixture
def ctx(tmp_path, base) -> Ctx:
    shutil.copytree(base.prev, tmp_path / "prev")
    case = Ctx(tmp_path, base)
    yield case
    for cleanup in reversed(case.cleanups):
        cleanup()


__all__ = ["Base", "Ctx", "EVAL_FAST", "case_env"]
