"""Runs a benchmark matrix: prepare (train the MLM and models a spec asks for), then evaluate every
cell into ``<out>/results/<model>/<dataset>__<task>.json``. Finished cells are skipped unless
``rerun``; a failing cell is recorded as failed and the rest go on; a per-cell lock file keeps two
runs on the same folder from doing (or overwriting) the same cell.

A spec with ``seeds`` trains each ``train:`` entry once per seed into ``<out>/models/<model>/
seed<k>/`` and writes its cells to ``<out>/results/<model>/seed<k>/``; evaluation (bootstrap seed,
probes, frames) uses the spec's ``seed`` for every training seed, so all are scored alike."""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vilem.bench.spec import BenchSpec, Cell, ModelEntry
from vilem.errors import VilemError
from vilem.results import load_result, make_result, write_result


@dataclass
class BenchSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished earlier
    failed: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # locked by another live run
    seconds: float = 0.0


class CellLock:
    """An O_EXCL lock file; a lock left by a dead process on this host is taken over."""

    def __init__(self, path: Path):
        self.path = path
        self.held = False

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                return False
            with os.fdopen(fd, "w") as f:
                f.write(f"{socket.gethostname()} {os.getpid()}\n")
            self.held = True
            return True
        return False

    def _stale(self) -> bool:
        try:
            host, pid = self.path.read_text().split()
        except (OSError, ValueError):
            return True
        if host != socket.gethostname():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> CellLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, flush=True)


class Runner:
    def __init__(
        self, spec: BenchSpec, rerun: bool = False, quiet: bool = False, device: str | None = None
    ):
        """``device``: where both training and evaluation run; None evaluates on the CPU and
        trains where each recipe says (its ``device``, ``auto`` by default)."""
        self.spec, self.rerun, self.quiet = spec, rerun, quiet
        self.train_device, self.device = device, device or "cpu"
        self.out = Path(spec.out)
        self.results = self.out / "results"
        self._splits: dict[str, Any] = {}
        self._models: dict[tuple[str, int | None], Any] = {}
        self._train_errors: dict[tuple[str, int | None], str] = {}

    # ------------------------------------------------------------------ preparation
    def mlm_dir(self) -> Path:
        return self.out / "models" / "_mlm"

    def ensure_mlm(self) -> Path | None:
        """Train the spec's masked LM (for MLM negatives) once; reused by every recipe."""
        if not self.spec.mlm:
            return None
        target = self.mlm_dir()
        if (target / "config.json").is_file():
            return target
        from vilem.data import load_split
        from vilem.train.lm import train_lm

        opts = dict(self.spec.mlm)
        corpus = opts.pop("corpus", {"dataset": "synthetic", "split": "train"})
        texts, held_out = [], []
        for part in corpus if isinstance(corpus, list) else [corpus]:
            args = (part.get("root"),)
            kwargs = part.get("options", {})
            split = load_split(part["dataset"], part.get("split", "train"), *args, **kwargs)
            texts += split.texts
            val = part.get("val_split", "val")
            if val:  # held-out captions: the LM's masked-token loss on them says if it converged
                held_out += load_split(part["dataset"], val, *args, **kwargs).texts
        _say(self.quiet, f"[bench] training the masked LM on {len(texts)} captions")
        with CellLock(target.with_suffix(".lock")) as lock:
            if not lock.acquire():
                raise VilemError(f"{target} is being trained by another run; try again later")
            train_lm(
                texts, target, quiet=self.quiet, seed=self.spec.seed, val_corpus=held_out, **opts
            )
        return target

    def model_dir(self, name: str, seed: int | None = None) -> Path:
        """``<out>/models/<name>``, or ``.../<name>/seed<k>`` for training seed ``k``."""
        folder = self.out / "models" / name
        return folder if seed is None else folder / f"seed{seed}"

    def ensure_trained(self, entry: ModelEntry, mlm: Path | None, seed: int | None = None) -> str:
        """Train ``entry`` with training seed ``seed`` (None: the spec's ``seed``, single-seed
        layout), resuming an interrupted run, unless its final model exists; returns the model
        spec to evaluate. An ``init`` entry starts from the same seed's model."""
        if entry.spec:
            return entry.spec
        from vilem.train.config import load_config
        from vilem.train.loop import train

        out_dir = self.model_dir(entry.name, seed)
        final = out_dir / "model"
        if (final / "config.json").is_file():
            return f"vilem:{final}"
        overrides = list(entry.overrides) + [f"seed={self.spec.seed if seed is None else seed}"]
        if mlm is not None:
            overrides.append(f"mlm_path={mlm}")
        if self.train_device is not None:  # --device reaches training too
            overrides.append(f"device={self.train_device}")
        if entry.init is not None:
            init_spec = self.ensure_trained(self.spec.model(entry.init), mlm, seed)
            overrides.append(f"init_from={init_spec.partition(':')[2]}")
        cfg = load_config(entry.train, overrides)
        which = entry.name if seed is None else f"{entry.name} seed {seed}"
        _say(self.quiet, f"[bench] training {which} ({entry.train})")
        with CellLock(out_dir.with_suffix(".lock")) as lock:
            if not lock.acquire():
                raise VilemError(f"model {which} is being trained by another run")
            resume = (out_dir / "checkpoint").is_dir()
            train(cfg, out_dir, resume=resume, quiet=self.quiet)
        return f"vilem:{final}"

    # ------------------------------------------------------------------ cells
    def split(self, name: str):
        if name not in self._splits:
            from vilem.data import load_split

            d = self.spec.dataset(name)
            self._splits[name] = load_split(d.dataset, d.split, root=d.root, **d.options)
        return self._splits[name]

    def model(self, entry: ModelEntry, spec: str, seed: int | None = None):
        key = (entry.name, seed)
        if key not in self._models:
            from vilem.models import load_model

            # cells are model-major, then seed: a finished model is not needed again
            self._models = {k: v for k, v in self._models.items() if k[0] == entry.name}
            self._models[key] = load_model(spec, device=self.device)
        return self._models[key]

    def run_cell(self, cell: Cell, model_spec: str) -> dict[str, Any]:
        from vilem.eval.engine import EvalOptions, can_proofread, evaluate

        entry = self.spec.model(cell.model)
        model = self.model(entry, model_spec, cell.seed)
        if cell.task == "proofread" and not can_proofread(model):
            return {"not_applicable": True}
        opts = EvalOptions(
            bootstrap=self.spec.bootstrap, seed=self.spec.seed, frames=self.spec.frames,
            quiet=True, cache_dir=self.out / "cache", num_workers=0,
        )  # fmt: skip
        info = {"spec": model_spec, "name": entry.name, **model.describe()}
        result = evaluate(model, info, self.split(cell.dataset), cell.task, opts)
        result["extra"]["setting"] = entry.setting
        if cell.seed is not None:
            result["extra"]["train_seed"] = cell.seed
        log = self.model_dir(entry.name, cell.seed) / "log.jsonl"
        if log.is_file():
            result["extra"]["train_log"] = os.path.relpath(log, self.out)
        return result

    def run(self) -> BenchSummary:
        start = time.perf_counter()
        summary = BenchSummary()
        cells = self.spec.cells()
        todo = [c for c in cells if self.rerun or not self._finished(c)]
        summary.skipped = [c.filename() for c in cells if c not in todo]
        _say(self.quiet, f"[bench] {self.spec.name}: {len(cells)} cells, {len(todo)} to run "
                         f"-> {self.results}")  # fmt: skip
        mlm = None
        if any(self.spec.model(c.model).train for c in todo):
            mlm = self.ensure_mlm()
        specs: dict[tuple[str, int | None], str] = {}
        for cell in todo:
            entry = self.spec.model(cell.model)
            key = (entry.name, cell.seed)
            if key not in specs and key not in self._train_errors:
                try:
                    specs[key] = self.ensure_trained(entry, mlm, cell.seed)
                except Exception as exc:  # recorded per cell below; the matrix goes on
                    self._train_errors[key] = _describe(exc)
            path = self.results / cell.filename()
            with CellLock(path.with_name(path.name + ".lock")) as lock:
                if not lock.acquire():
                    summary.busy.append(cell.filename())
                    continue
                t0 = time.perf_counter()
                try:
                    if key in self._train_errors:
                        raise RuntimeError(f"training failed: {self._train_errors[key]}")
                    result = self.run_cell(cell, specs[key])
                except Exception as exc:
                    result = self._failed(cell, exc)
                if result.get("not_applicable"):
                    summary.not_applicable.append(cell.filename())
                    continue
                write_result(path, result)
                ok = result["status"] == "ok"
                (summary.done if ok else summary.failed).append(cell.filename())
                _say(self.quiet, f"[bench] {'ok    ' if ok else 'FAILED'} {cell.filename()} "
                                 f"({time.perf_counter() - t0:.1f} s)"
                                 + ("" if ok else f": {result['error']}"))  # fmt: skip
        summary.seconds = time.perf_counter() - start
        return summary

    def _finished(self, cell: Cell) -> bool:
        path = self.results / cell.filename()
        if not path.is_file():
            return False
        try:
            return load_result(path)["status"] == "ok"
        except VilemError:
            return False

    def _failed(self, cell: Cell, exc: Exception) -> dict[str, Any]:
        d = self.spec.dataset(cell.dataset)
        return make_result(
            model={"spec": self.spec.model(cell.model).spec, "name": cell.model},
            dataset={"name": d.dataset, "split": d.split, "key": d.name},
            task=cell.task,
            metrics={},
            seed=self.spec.seed,
            status="failed",
            error=_describe(exc),
            extra={"traceback": traceback.format_exc(limit=8)}
            | ({} if cell.seed is None else {"train_seed": cell.seed}),
        )


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, VilemError) else f"{type(exc).__name__}: {exc}"
