"""Result records: one JSON file per cell (model x dataset x task), typed and schema-versioned.

A ``Result`` is written by evaluation and read, through ``Result.from_json`` / ``collect``, by
everything else (bench, leaderboard, report, compare, plots). Besides its numbers it carries a
``Protocol``: every evaluation setting that changes a number (frames and sampling, recall Ks,
bootstrap resamples, the probe/bootstrap seed, precision, ``--limit``/``--quick``, the adapter
options, the model's preprocessing). Two results are comparable only when their protocols agree:

- ``Result.benchmark()``: what every row of one leaderboard table shares (the dataset key,
  adapter, split, revision and counts, the task, and the protocol's evaluation settings);
- ``Result.row_protocol()``: what belongs to one model's evaluation (its preprocessing, text
  length, device type), so one row never mixes two of them;
- ``Result.identity()``: both, plus the model's name, fingerprint and training seed: one cell.

Schema version 2; version 1 files (no protocol) are still read, their protocol marked unknown.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from vilem.errors import DataError
from vilem.io import atomic_write_json, read_json
from vilem.metrics.info import RECALL_KS

SCHEMA = "vilem.result"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
STATUSES = ("ok", "failed")
_PACKAGES = ("vilem", "torch", "transformers", "timm", "numpy", "decord", "av")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_record() -> dict[str, Any]:
    """What besides the code and the inputs sets a number's last bits: the CPU, the instruction
    set torch's kernels dispatch to (AVX2 and AVX-512 round differently) and torch's thread
    count (``vilem.threads.describe``). Results record it, so numbers that differ across machines
    say why."""
    from vilem import threads

    out: dict[str, Any] = {"cpu": _cpu_name()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["isa"] = torch.backends.cpu.get_cpu_capability()
    return out | threads.describe()


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """The commit of the source tree and whether it had uncommitted changes."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


# ----------------------------------------------------------------------------- the parts


@dataclass
class ModelRecord:
    """The model a result measured."""

    name: str  # the row name in tables (a bench entry's name, else the spec)
    spec: str | None = None  # the registry spec it was loaded from (random, vilem:DIR, ...)
    fingerprint: str | None = None  # config + weights: what its embeddings depend on
    config: dict[str, Any] = field(default_factory=dict)
    setting: str | None = None  # a free label: zero-shot, fine-tuned, chance
    train_seed: int | None = None  # the training seed of a multi-seed bench
    train_log: str | None = None  # its training log, relative to the bench folder
    request: dict[str, Any] | None = None  # what the bench asked for (spec or recipe+overrides)


@dataclass
class DatasetRecord:
    """The data a result was measured on."""

    name: str  # the adapter
    split: str = ""
    key: str | None = None  # the bench spec's dataset key (None: the adapter name)
    modality: str | None = None
    revision: str | None = None  # content hash of the annotations / generator manifest
    counts: dict[str, int] = field(default_factory=dict)  # items, texts, skipped_items
    skipped_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    protocol: str | None = None  # how texts query items: sentence, multi, paragraph
    clip_window: str | None = None  # the video clip-window policy, in words

    @property
    def label(self) -> str:
        """What tables call this dataset: the spec key, else the adapter name."""
        return self.key or self.name


@dataclass
class Protocol:
    """Every evaluation setting that changes a number (see the module docstring)."""

    frames: int | None = None  # frames per video (None for images)
    sampling: str | None = None  # how the frames are placed (uniform, headtail, random)
    recall_ks: list[int] = field(default_factory=lambda: list(RECALL_KS))
    bootstrap: int = 1000  # resamples behind the 95% intervals (0: none)
    seed: int = 0  # bootstrap, probe and frame-sampling seed
    precision: str = "fp32"  # encoding precision: fp32, bf16, fp16
    limit: int | None = None  # only the first N items were evaluated (a quick look)
    quick: bool = False  # a --quick (toy-scale) bench run
    options: dict[str, Any] = field(default_factory=dict)  # the adapter options as given
    settings: dict[str, Any] = field(default_factory=dict)  # task-specific, e.g. re-ranking
    decoding: dict[str, Any] | None = None  # videos: backend, frames, sampling, clip window
    # the model's side of the evaluation (one row never mixes two of these)
    preprocessing: dict[str, Any] | None = None
    text_max_len: int | None = None
    device: str | None = None  # device type: cpu, cuda

    ROW_FIELDS = ("preprocessing", "text_max_len", "device")

    @property
    def toy(self) -> bool:
        """Whether this is a reduced run (--quick or --limit), not a benchmark number."""
        return self.quick or self.limit is not None


@dataclass
class ProofreadExample:
    """One proofreading example a report draws: the edited caption's tokens with each token's
    error probability and truth, the original tokens and the correction head's top-1."""

    tokens: list[str]
    error_prob: list[float]
    is_error: list[int]
    category: str = ""
    truth: str = ""  # the unedited caption
    media: str | None = None  # the image or video file, relative to the working folder
    modality: str = "image"
    original: list[str] | None = None  # the unedited token at each position
    correction: list[str] | None = None  # EC's top-1 at each position (None: no EC head)


# ----------------------------------------------------------------------------- the result


@dataclass
class Result:
    model: ModelRecord
    dataset: DatasetRecord
    task: str
    protocol: Protocol | None  # None: a version-1 file, protocol not recorded
    status: str = "ok"
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    per_query: dict[str, list] | None = None
    examples: list[ProofreadExample] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=lambda: package_versions())
    git: dict[str, Any] = field(default_factory=lambda: git_state())
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    schema_version: int = SCHEMA_VERSION
    # where it was read from (not written): the file and the results folder given to collect
    path: str | None = field(default=None, compare=False)
    source: str | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    # ---------------------------------------------------------------- identity
    def benchmark(self) -> dict[str, Any]:
        """What every row of one table shares; results that differ here are never compared."""
        ds = self.dataset
        out: dict[str, Any] = {
            "dataset": ds.label,
            "adapter": ds.name,
            "split": ds.split,
            "task": self.task,
            "revision": ds.revision,
            "items": ds.counts.get("items"),
            "texts": ds.counts.get("texts"),
            "protocol": ds.protocol,
            "clip_window": ds.clip_window,
        }
        if self.protocol is None:
            out["schema"] = "v1: evaluation settings not recorded"
            return out
        p = asdict(self.protocol)
        for name in Protocol.ROW_FIELDS:
            p.pop(name)
        return out | p

    def row_protocol(self) -> dict[str, Any]:
        """The model-side settings of the evaluation."""
        if self.protocol is None:
            return {}
        return {name: getattr(self.protocol, name) for name in Protocol.ROW_FIELDS}

    def identity(self) -> dict[str, Any]:
        """One cell: the model (name, fingerprint, training seed) under one full protocol."""
        return {
            "model": self.model.name,
            "fingerprint": self.model.fingerprint,
            "train_seed": self.model.train_seed,
            **self.benchmark(),
            **self.row_protocol(),
        }

    @property
    def toy(self) -> bool:
        return self.protocol is not None and self.protocol.toy

    # ---------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION}
        for f in fields(self):
            if f.name in ("path", "source", "schema_version"):
                continue
            value = getattr(self, f.name)
            if f.name == "per_query" and value is None:
                continue
            out[f.name] = asdict(value) if hasattr(value, "__dataclass_fields__") else value
        out["examples"] = [asdict(e) for e in self.examples]
        return out

    @classmethod
    def from_json(cls, data: Any, path: str | Path | None = None) -> Result:
        """A result from its JSON object (schema version 1 or 2); DataError saying why not."""
        where = f"{path}: " if path else ""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise DataError(f"{where}not a vilem result file (no 'schema': {SCHEMA!r})")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise DataError(
                f"{where}schema version {version!r}; this vilem reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        for key, kind in (("model", dict), ("dataset", dict), ("task", str), ("metrics", dict)):
            if not isinstance(data.get(key), kind):
                raise DataError(f"{where}field {key!r} is missing or not a {kind.__name__}")
        try:
            return cls._parse(data, version, path)
        except (TypeError, ValueError, KeyError) as exc:
            raise DataError(f"{where}malformed result: {exc}") from exc

    @classmethod
    def _parse(cls, data: dict[str, Any], version: int, path: str | Path | None) -> Result:
        raw_model, raw_ds = dict(data["model"]), dict(data["dataset"])
        extra = dict(data.get("extra") or {})
        examples = data.get("examples")
        if version == 1:  # fields that moved out of `extra` into typed places
            for key in ("setting", "train_seed", "train_log"):
                if key in extra:
                    raw_model.setdefault(key, extra.pop(key))
            examples = extra.pop("examples", [])
            for e in examples:
                e.setdefault("media", e.pop("image", None) or (e.pop("frames", None) or [None])[0])
                e.setdefault("modality", raw_ds.get("modality") or "image")
        name = raw_model.get("name") or raw_model.get("spec")
        if not isinstance(name, str) or not name:
            raise ValueError("field 'model' has neither 'name' nor 'spec'")
        if not isinstance(raw_ds.get("name"), str):
            raise ValueError("field 'dataset.name' is missing or not a string")
        if not isinstance(raw_ds.get("counts", {}), dict):
            raise ValueError("field 'dataset.counts' is not an object")
        status = data.get("status", "ok")
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r} (expected 'ok' or 'failed')")
        per_query = data.get("per_query")
        if per_query is not None and not isinstance(per_query, dict):
            raise ValueError("field 'per_query' is not an object")
        protocol = data.get("protocol")
        return cls(
            model=typed(ModelRecord, raw_model | {"name": name}),
            dataset=typed(DatasetRecord, raw_ds),
            task=data["task"],
            protocol=None if protocol is None else typed(Protocol, protocol),
            status=status,
            error=data.get("error"),
            metrics=data["metrics"],
            intervals=data.get("intervals") or {},
            per_query=per_query,
            examples=[typed(ProofreadExample, e) for e in examples or []],
            timings=data.get("timings") or {},
            extra=extra,
            versions=data.get("versions") or {},
            git=data.get("git") or {},
            created=str(data.get("created") or ""),
            schema_version=version,
            path=None if path is None else str(path),
        )


def typed(cls: type, raw: Any) -> Any:
    """``cls(**raw)`` keeping only its fields (unknown keys of newer writers are dropped)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{cls.__name__} is not an object")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able value (protocol identities in messages and keys)."""
    payload = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:12]


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The keys where two identity dicts disagree, with both values."""
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def describe_differences(diff: dict[str, tuple[Any, Any]], limit: int = 4) -> str:
    """``frames 8 -> 12, split test -> val``: a difference, shortly, for one-line messages."""
    parts = [f"{k} {_short(old)} -> {_short(new)}" for k, (old, new) in list(diff.items())[:limit]]
    more = len(diff) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


# ----------------------------------------------------------------------------- files


def write_result(path: str | Path, result: Result) -> None:
    atomic_write_json(path, result.to_json())


def load_result(path: str | Path) -> Result:
    """Read a result file; a foreign or malformed one raises DataError saying why."""
    return Result.from_json(read_json(path, "result file"), path)


@dataclass(frozen=True)
class Problem:
    """A file under a results folder that was skipped, and why."""

    path: str
    reason: str
    kind: str = "unreadable"  # "unreadable" (not a result) or "duplicate" (another file wins)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _preference(r: Result) -> tuple[bool, str, str]:
    # a finished run wins over a failed one, then the newest, then the last path
    return r.ok, r.created, r.path or ""


def collect(*results_dirs: str | Path) -> tuple[list[Result], list[Problem]]:
    """Read every ``*.json`` under each folder (recursively) as a ``Result``.

    Files that are not result files, malformed, or of an unknown schema version are listed in
    the problems and skipped. Of two files measuring the same cell (``Result.identity``, the
    creation time aside) the finished, newest one is kept and the other listed as a duplicate;
    results of different protocols are all kept (tables keep them apart). With several folders
    each result's ``source`` names the folder it came from.

    Raises:
        DataError: a folder does not exist or is not a folder.
    """
    problems: list[Problem] = []
    by_cell: dict[str, Result] = {}
    for root in map(Path, results_dirs):
        if not root.exists():
            raise DataError(f"results folder not found: {root}")
        if not root.is_dir():
            raise DataError(f"results path is not a folder: {root}")
        for path in sorted(root.rglob("*.json")):
            if not path.is_file():
                continue
            try:
                result = load_result(path)
            except DataError as exc:
                reason = " ".join(str(exc).replace(str(path), "").split()).strip(" :")
                problems.append(Problem(str(path), reason))
                continue
            except OSError as exc:
                problems.append(Problem(str(path), f"cannot be read: {exc.strerror or exc}"))
                continue
            result.source = str(root)
            key = digest([str(root), result.identity()])
            kept = by_cell.get(key)
            if kept is None:
                by_cell[key] = result
                continue
            keep, drop = sorted((kept, result), key=_preference, reverse=True)
            by_cell[key] = keep
            reason = f"duplicate of the same cell and protocol; using {keep.path}"
            problems.append(Problem(str(drop.path), reason, "duplicate"))
    return _drop_unseeded(list(by_cell.values()), problems)


def _drop_unseeded(
    results: list[Result], problems: list[Problem]
) -> tuple[list[Result], list[Problem]]:
    """A single-seed result next to per-seed results of the same cell is left out."""

    def cell(r: Result) -> str:
        return digest([r.source, r.model.name, r.benchmark(), r.row_protocol()])

    seeded = {cell(r) for r in results if r.model.train_seed is not None}
    keep = []
    for r in results:
        if r.model.train_seed is None and cell(r) in seeded:
            reason = "result without a training seed, next to per-seed results; using those"
            problems.append(Problem(str(r.path), reason, "duplicate"))
        else:
            keep.append(r)
    return keep, problems
