"""Runs a benchmark matrix: check everything (``Runner.preflight``), prepare (train the MLM and
models a spec asks for), then evaluate every cell into ``<out>/results/<model>/<dataset>__<task>
.json``. A cell is skipped only when its ok result was measured as it would be now (the same
model request and protocol), unless ``rerun``; otherwise it runs again and the bench says why. A
failing cell is recorded as failed and the rest go on; a failure never replaces an ok result
(it is written beside it, ``*.failed.json``). Lock files keep two runs on one folder from doing
the same cell or model: the second reports it as in progress (pid), never as failed.

A spec with ``seeds`` trains each ``train:`` entry once per seed into ``<out>/models/<model>/
seed<k>/`` and writes its cells to ``<out>/results/<model>/seed<k>/``; evaluation (bootstrap seed,
probes, frames) uses the spec's ``seed`` for every training seed, so all are scored alike."""

from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vilem.bench.spec import BenchSpec, Cell, ModelEntry
from vilem.errors import ConfigError, VilemError
from vilem.eval.engine import protocol
from vilem.io import atomic_write_json, read_json
from vilem.registry import closest
from vilem.results import (
    DatasetRecord,
    ModelRecord,
    Result,
    describe_differences,
    differences,
    digest,
    load_result,
    typed,
    write_result,
)

REQUEST_FILE = "bench_request.json"  # what a bench-trained model was trained from


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


class Busy(VilemError):
    """A cell or model another live run is working on: reported as in progress, not failed."""

    def __init__(self, what: str, lock: Path):
        self.holder = lock_holder(lock)
        super().__init__(f"{what} is in progress in another run ({self.holder})")


def lock_holder(path: Path) -> str:
    """``pid N`` (``on HOST`` when another host) of the process holding a lock file."""
    try:
        host, pid = path.read_text().split()
    except (OSError, ValueError):
        return "pid unknown"
    return f"pid {pid}" + ("" if host == socket.gethostname() else f" on {host}")


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, flush=True)


def failed_path(path: Path) -> Path:
    """Where a failure goes when an ok result of the cell must not be replaced."""
    return path.with_name(path.name.removesuffix(".json") + ".failed.json")


class Runner:
    def __init__(
        self,
        spec: BenchSpec,
        rerun: bool = False,
        quiet: bool = False,
        device: str | None = None,
        baseline: str | None = None,
    ):
        """``device``: where both training and evaluation run; None evaluates on the CPU and
        trains where each recipe says (its ``device``, ``auto`` by default). ``baseline``: the
        model later tables compare with (checked before any work)."""
        self.spec, self.rerun, self.quiet = spec, rerun, quiet
        self.train_device, self.device = device, device or "cpu"
        self.baseline = baseline
        self.out = Path(spec.out)
        self.results = self.out / "results"
        self._splits: dict[str, Any] = {}
        self._models: dict[tuple[str, int | None], Any] = {}
        self._train_errors: dict[tuple[str, int | None], Exception] = {}
        self._requests: dict[tuple[str, int | None], dict[str, Any]] = {}

    # ------------------------------------------------------------------ pre-flight
    def preflight(self) -> None:
        """Everything a typo could make fail, checked before any work: the baseline, every
        dataset (adapter options, root, split), the MLM corpus, every recipe with its overrides
        and every model spec. Raises one ConfigError/DataError naming the spec entry."""
        names = [m.name for m in self.spec.models]
        if self.baseline is not None and self.baseline not in names:
            raise ConfigError(
                f"--baseline: no model {self.baseline!r} in {self.spec.source}"
                f"{closest(self.baseline, names)}; models: {', '.join(names)}"
            )
        for d in self.spec.datasets:
            self._checked(f"datasets.{d.name}", lambda d=d: self.split(d.name))
        for entry in self.spec.models:
            for seed in self.spec.train_seeds(entry):
                self._checked(f"models.{entry.name}", lambda e=entry, s=seed: self.request(e, s))
            if entry.spec and entry.spec.startswith("py:"):
                from vilem.models.py import import_target

                self._checked(
                    f"models.{entry.name}.spec",
                    lambda s=entry.spec: import_target(s.removeprefix("py:")),
                )

    def _checked(self, where: str, fn: Any) -> Any:
        try:
            return fn()
        except VilemError as exc:
            raise type(exc)(f"{self.spec.source}: {where}: {exc}") from exc
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{self.spec.source}: {where}: {exc}") from exc

    def request(self, entry: ModelEntry, seed: int | None = None) -> dict[str, Any]:
        """What producing ``entry``'s model means, recorded in its results: the spec, or the
        recipe, its overrides and a digest of the resolved training config (and of the model it
        starts from). A result is reused only while this is unchanged."""
        key = (entry.name, seed)
        if key in self._requests:
            return self._requests[key]
        if entry.spec:
            out: dict[str, Any] = {"spec": entry.spec}
        else:
            from vilem.train.config import load_config

            cfg = load_config(entry.train, self._overrides(entry, seed))
            out = {"train": entry.train, "overrides": list(entry.overrides)}
            out["config"] = digest(cfg.to_dict() | {"init_from": None, "mlm_path": None})
            negatives = cfg.model.negatives
            if self.spec.mlm and not cfg.model.itc_only and negatives.kind == "mlm":
                out["mlm"] = digest(self.mlm_request())  # its negatives come from that MLM
            if entry.init is not None:
                out["init"] = self.request(self.spec.model(entry.init), seed)["config"]
        self._requests[key] = out
        return out

    def _overrides(self, entry: ModelEntry, seed: int | None) -> list[str]:
        overrides = list(entry.overrides) + [f"seed={self.spec.seed if seed is None else seed}"]
        if self.train_device is not None:  # --device reaches training too
            overrides.append(f"device={self.train_device}")
        return overrides

    # ------------------------------------------------------------------ preparation
    def mlm_dir(self) -> Path:
        return self.out / "models" / "_mlm"

    def mlm_request(self) -> dict[str, Any]:
        """What the spec's masked LM is trained from: its settings (corpus included) and seed."""
        return {"mlm": self.spec.mlm, "seed": self.spec.seed}

    def ensure_mlm(self) -> Path | None:
        """Train the spec's masked LM (for MLM negatives) once; reused by every recipe while
        its settings are unchanged (an MLM of other settings is moved aside and retrained, and
        so are the models trained on its negatives)."""
        if not self.spec.mlm:
            return None
        target, request = self.mlm_dir(), self.mlm_request()
        if (target / "config.json").is_file() and self._same_request(
            target, request, "the masked LM"
        ):
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
        lock_path = target.with_suffix(".lock")
        with CellLock(lock_path) as lock:
            if not lock.acquire():
                raise Busy("the masked LM", lock_path)
            train_lm(
                texts, target, quiet=self.quiet, seed=self.spec.seed, val_corpus=held_out, **opts
            )
            atomic_write_json(target / REQUEST_FILE, request)
        return target

    def model_dir(self, name: str, seed: int | None = None) -> Path:
        """``<out>/models/<name>``, or ``.../<name>/seed<k>`` for training seed ``k``."""
        folder = self.out / "models" / name
        return folder if seed is None else folder / f"seed{seed}"

    def ensure_trained(self, entry: ModelEntry, mlm: Path | None, seed: int | None = None) -> str:
        """Train ``entry`` with training seed ``seed`` (None: the spec's ``seed``, single-seed
        layout), resuming an interrupted run, unless its final model exists and was trained from
        the same request; returns the model spec to evaluate. An ``init`` entry starts from the
        same seed's model. A model trained from another recipe or overrides is moved to
        ``<dir>.previous`` and trained again."""
        if entry.spec:
            return entry.spec
        from vilem.train.config import load_config
        from vilem.train.loop import train

        out_dir = self.model_dir(entry.name, seed)
        final, request = out_dir / "model", self.request(entry, seed)
        which = entry.name if seed is None else f"{entry.name} seed {seed}"
        if (final / "config.json").is_file() and self._same_request(out_dir, request, which):
            return f"vilem:{final}"
        overrides = self._overrides(entry, seed)
        if mlm is not None:
            overrides.append(f"mlm_path={mlm}")
        if entry.init is not None:
            init_spec = self.ensure_trained(self.spec.model(entry.init), mlm, seed)
            overrides.append(f"init_from={init_spec.partition(':')[2]}")
        cfg = load_config(entry.train, overrides)
        _say(self.quiet, f"[bench] training {which} ({entry.train})")
        lock_path = out_dir.with_suffix(".lock")
        with CellLock(lock_path) as lock:
            if not lock.acquire():
                raise Busy(f"training {which}", lock_path)
            resume = (out_dir / "checkpoint").is_dir()
            train(cfg, out_dir, resume=resume, quiet=self.quiet)
            atomic_write_json(out_dir / REQUEST_FILE, request)
        return f"vilem:{final}"

    def _same_request(self, out_dir: Path, request: dict[str, Any], which: str) -> bool:
        """Whether the finished model (or MLM) in ``out_dir`` came from ``request`` (one trained
        before requests were recorded counts as the same); if not, move it aside."""
        path = out_dir / REQUEST_FILE
        if not path.is_file():
            return True
        try:
            saved = read_json(path, "training request")
        except VilemError:
            saved = None
        if saved == request:
            return True
        change = describe_differences(differences(saved or {}, request))
        _say(self.quiet, f"[bench] retraining {which}: its recipe changed ({change})")
        previous = out_dir.with_name(out_dir.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        out_dir.rename(previous)
        return False

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

    def record(self, cell: Cell, spec: str | None) -> ModelRecord:
        """The model part of ``cell``'s result (fingerprint and config are added by evaluation)."""
        entry = self.spec.model(cell.model)
        log = self.model_dir(entry.name, cell.seed) / "log.jsonl"
        return ModelRecord(
            name=entry.name,
            spec=spec,
            setting=entry.setting,
            train_seed=cell.seed,
            train_log=os.path.relpath(log, self.out) if log.is_file() else None,
            request=self.request(entry, cell.seed),
        )

    def cell_options(self, cell: Cell, cache_dir: Path | None = None):
        """The spec's evaluation options, with the dataset's re-ranking and item->text ranking
        for retrieval."""
        opts = self.spec.eval_options(cache_dir=cache_dir)
        d = self.spec.dataset(cell.dataset)
        if cell.task != "retrieval":
            return opts
        opts.i2t_ranking, opts.rerank = d.i2t_ranking, d.rerank
        if d.rerank == "qb-norm":
            from vilem.data import load_split

            bank = load_split(d.dataset, d.querybank_split, root=d.root, **d.options)
            opts.querybank = bank.texts
            opts.querybank_label = f"{d.dataset}/{d.querybank_split} captions"
        return opts

    def planned(self, cell: Cell) -> Result:
        """The result ``cell`` would produce, without its numbers: what a recorded result's
        protocol is compared against before it is reused."""
        d, split = self.spec.dataset(cell.dataset), self.split(cell.dataset)
        opts = self.cell_options(cell)
        return Result(
            model=self.record(cell, self.spec.model(cell.model).spec),
            dataset=typed(DatasetRecord, split.describe() | {"key": d.name}),
            task=cell.task,
            protocol=protocol(None, split, opts, d.options),
            metrics={},
        )

    def run_cell(self, cell: Cell, model_spec: str) -> Result | None:
        """Evaluate ``cell``; None when its task does not apply to the model."""
        from vilem.eval.engine import can_proofread, evaluate

        entry = self.spec.model(cell.model)
        model = self.model(entry, model_spec, cell.seed)
        if cell.task == "proofread" and not can_proofread(model):
            return None
        d = self.spec.dataset(cell.dataset)
        opts = self.cell_options(cell, cache_dir=self.out / "cache")
        return evaluate(
            model, self.split(cell.dataset), cell.task, opts,
            record=self.record(cell, model_spec), dataset_key=d.name, data_options=d.options,
        )  # fmt: skip

    def run(self) -> BenchSummary:
        start = time.perf_counter()
        summary = BenchSummary()
        self.preflight()
        cells = self.spec.cells()
        todo = []
        for c in cells:
            done, why = (False, None) if self.rerun else self.finished(c)
            if done:
                summary.skipped.append(c.filename())
                continue
            todo.append(c)
            if why:
                _say(self.quiet, f"[bench] rerunning {c.filename()}: {why}")
        _say(self.quiet, f"[bench] {self.spec.name}: {len(cells)} cells, {len(todo)} to run "
                         f"-> {self.results}")  # fmt: skip
        mlm = None
        if any(self.spec.model(c.model).train for c in todo):
            try:
                mlm = self.ensure_mlm()
            except Busy as exc:  # trained models wait for it; the others run
                _say(self.quiet, f"[bench] {exc}: its models are left for that run")
                for c in todo:
                    if self.spec.model(c.model).train:
                        self._train_errors[(c.model, c.seed)] = exc
        specs: dict[tuple[str, int | None], str] = {}
        for i, cell in enumerate(todo, 1):
            self._run_one(cell, mlm, specs, summary, (i, len(todo), start))
        summary.seconds = time.perf_counter() - start
        return summary

    def _run_one(self, cell, mlm, specs, summary: BenchSummary, where: tuple) -> None:
        """Train ``cell``'s model if needed, evaluate it, write its result. ``where``: (this
        cell's number, the cells to run, the run's start time) for the progress line."""
        entry = self.spec.model(cell.model)
        key = (entry.name, cell.seed)
        if key not in specs and key not in self._train_errors:
            try:
                specs[key] = self.ensure_trained(entry, mlm, cell.seed)
            except Exception as exc:  # recorded per cell below; the matrix goes on
                self._train_errors[key] = exc
        error = self._train_errors.get(key)
        if isinstance(error, Busy):
            summary.busy.append(f"{cell.filename()} ({error.holder})")
            _say(self.quiet, f"[bench] busy   {cell.filename()}: {error}")
            return
        path = self.results / cell.filename()
        lock_path = path.with_name(path.name + ".lock")
        with CellLock(lock_path) as lock:
            if not lock.acquire():
                summary.busy.append(f"{cell.filename()} ({lock_holder(lock_path)})")
                return
            t0 = time.perf_counter()
            try:
                if error is not None:
                    raise RuntimeError(f"training failed: {_describe(error)}")
                result = self.run_cell(cell, specs[key])
            except Exception as exc:
                result = self._failed(cell, exc)
            if result is None:
                summary.not_applicable.append(cell.filename())
                return
            self._write(path, result)
            (summary.done if result.ok else summary.failed).append(cell.filename())
            done, n, start = where
            took, total = time.perf_counter() - t0, time.perf_counter() - start
            eta = f", ETA {total / done * (n - done) / 60:.1f} min" if done < n else ""
            status = "ok    " if result.ok else "FAILED"
            _say(self.quiet, f"[bench] {done}/{n} {status} {cell.filename()} ({took:.1f} s{eta})"
                             + ("" if result.ok else f": {result.error}"))  # fmt: skip

    def _write(self, path: Path, result: Result) -> None:
        """Write a cell's result; a failure never replaces an ok result (it goes beside it)."""
        if result.ok:
            write_result(path, result)
            failed_path(path).unlink(missing_ok=True)
            return
        try:
            previous_ok = load_result(path).ok
        except VilemError:
            previous_ok = False
        write_result(failed_path(path) if previous_ok else path, result)

    def finished(self, cell: Cell) -> tuple[bool, str | None]:
        """Whether ``cell`` has an ok result measured as it would be now (same model request,
        same protocol); when not, why it is run again (None: it was never run or it failed)."""
        path = self.results / cell.filename()
        if not path.is_file():
            return False, None
        try:
            recorded = load_result(path)
        except VilemError:
            return False, "its result file is not readable"
        if not recorded.ok:
            return False, None
        planned = self.planned(cell)
        if recorded.model.request is not None and recorded.model.request != planned.model.request:
            diff = differences(recorded.model.request, planned.model.request)
            return False, f"the model changed ({describe_differences(diff)})"
        diff = differences(recorded.benchmark(), planned.benchmark())
        if diff:
            return False, f"the protocol changed ({describe_differences(diff)})"
        return True, None

    def _failed(self, cell: Cell, exc: Exception) -> Result:
        try:
            result = self.planned(cell)
        except Exception:  # the data itself is what failed: record what the spec says
            d = self.spec.dataset(cell.dataset)
            result = Result(
                model=ModelRecord(name=cell.model, spec=self.spec.model(cell.model).spec,
                                  train_seed=cell.seed),
                dataset=DatasetRecord(name=d.dataset, split=d.split, key=d.name),
                task=cell.task,
                protocol=None,
            )  # fmt: skip
        result.status, result.error = "failed", _describe(exc)
        result.extra = {"traceback": traceback.format_exc(limit=8)}
        return result


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, VilemError) else f"{type(exc).__name__}: {exc}"
