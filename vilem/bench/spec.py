"""Benchmark-matrix specs: models x datasets x tasks, minus exclusions, read from YAML and checked
in full before any work starts (an unknown key, model, dataset or task names the closest valid one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vilem.errors import ConfigError
from vilem.registry import closest
from vilem.results import TASKS


@dataclass
class ModelEntry:
    name: str  # the row name in tables
    spec: str | None = None  # a registry spec (random, hf-clip:DIR, vilem:DIR) ...
    train: str | None = None  # ... or a training recipe (name or YAML path) to train first
    overrides: list[str] = field(default_factory=list)  # key=value overrides for the recipe
    init: str | None = None  # another trained entry whose weights initialise this one
    setting: str | None = None  # free label shown in reports, e.g. "zero-shot", "fine-tuned"
    seeds: list[int] | None = None  # training seeds of this entry (a subset of the spec's seeds)


@dataclass
class DatasetEntry:
    name: str  # the key in the spec, used in file names
    dataset: str  # registered adapter name
    split: str = "test"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # adapter options


@dataclass(frozen=True)
class Cell:
    model: str
    dataset: str
    task: str
    seed: int | None = None  # the training seed of a multi-seed spec; None: trained once

    def filename(self) -> str:
        folder = self.model if self.seed is None else f"{self.model}/seed{self.seed}"
        return f"{folder}/{self.dataset}__{self.task}.json"


@dataclass
class BenchSpec:
    name: str
    out: str  # results folder
    models: list[ModelEntry]
    datasets: list[DatasetEntry]
    tasks: list[str]
    exclude: list[dict[str, str]] = field(default_factory=list)
    seed: int = 0
    bootstrap: int = 1000
    frames: int = 8  # frames per video at evaluation
    mlm: dict[str, Any] | None = None  # train-lm settings for recipes that need an MLM
    quick: dict[str, Any] = field(default_factory=dict)  # what --quick changes
    seeds: list[int] | None = None  # train every `train:` entry once per seed; None: once
    compare: dict[str, str] | None = None  # model/baseline (+ video_*) for comparison.json

    def train_seeds(self, entry: ModelEntry) -> list[int | None]:
        """The training seeds ``entry`` runs with: ``[None]`` (once, as without ``seeds``) for
        untrained entries and single-seed specs."""
        if self.seeds is None or not entry.train:
            return [None]
        return list(entry.seeds if entry.seeds is not None else self.seeds)

    def cells(self) -> list[Cell]:
        """The matrix in a stable order (model-major, then seed), minus excluded cells."""
        out = []
        for m in self.models:
            for seed in self.train_seeds(m):
                for d in self.datasets:
                    for t in self.tasks:
                        cell = Cell(m.name, d.name, t, seed)
                        if not any(_matches(rule, cell) for rule in self.exclude):
                            out.append(cell)
        return out

    def model(self, name: str) -> ModelEntry:
        return next(m for m in self.models if m.name == name)

    def dataset(self, name: str) -> DatasetEntry:
        return next(d for d in self.datasets if d.name == name)


def _matches(rule: dict[str, str], cell: Cell) -> bool:
    return all(getattr(cell, key) == value for key, value in rule.items())


_TOP = {"name", "out", "models", "datasets", "tasks", "exclude", "seed", "bootstrap", "frames",
        "mlm", "quick", "seeds", "compare"}  # fmt: skip
_MODEL_KEYS = {"spec", "train", "overrides", "init", "setting", "seeds"}
_DATASET_KEYS = {"dataset", "split", "root", "options"}
_QUICK_KEYS = {"train_overrides", "datasets", "bootstrap", "mlm", "models", "seeds"}
_COMPARE_KEYS = {"model", "baseline", "video_model", "video_baseline"}


def _check_keys(raw: dict, allowed: set[str], where: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {key!r} in {where}{closest(str(key), sorted(allowed))}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _seed_list(value: Any, where: str) -> list[int]:
    """A non-empty list of unique ints (booleans are not seeds)."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of integers, e.g. [0, 1, 2]")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where} must hold integers, got {v!r}")
    if len(set(value)) != len(value):
        dups = sorted({v for v in value if value.count(v) > 1})
        raise ConfigError(f"{where} lists seed(s) {dups} more than once")
    return [int(v) for v in value]


def _check_seeds(
    models: list[ModelEntry], full: list[int] | None, seeds: list[int] | None, source: str
) -> None:
    """Per-model seeds: only on trained entries of a multi-seed spec, a subset of its ``full``
    seeds (narrowed to ``seeds``, the ones --quick keeps), and covered by the seeds of the entry
    they initialise from."""
    by_name = {m.name: m for m in models}
    for m in models:
        if m.seeds is None:
            continue
        where = f"{source}: models.{m.name}.seeds"
        if full is None or seeds is None:
            raise ConfigError(f"{where} needs a top-level 'seeds' list")
        if not m.train:
            raise ConfigError(f"{where}: only trained entries ('train') take seeds")
        m.seeds = _seed_list(m.seeds, where)
        extra = [s for s in m.seeds if s not in full]
        if extra:
            raise ConfigError(f"{where}: seed(s) {extra} are not in the spec's seeds {full}")
        m.seeds = [s for s in m.seeds if s in seeds]
        if not m.seeds:
            raise ConfigError(f"{where}: none of its seeds is in quick.seeds {seeds}")
    if seeds is None:
        return
    for m in models:
        init = by_name.get(m.init or "")
        if not m.train or init is None or not init.train:
            continue
        missing = [s for s in (m.seeds or seeds) if s not in (init.seeds or seeds)]
        if missing:
            raise ConfigError(
                f"{source}: models.{m.name} initialises from {init.name}, which has no "
                f"seed(s) {missing}"
            )


def _parse_compare(value: Any, names: list[str], source: str) -> dict[str, str] | None:
    if value is None:
        return None
    value = _mapping(value, f"{source}: compare")
    _check_keys(value, _COMPARE_KEYS, f"{source}: compare")
    for key in ("model", "baseline"):
        if key not in value:
            raise ConfigError(f"{source}: compare needs {key!r} (a model name)")
    if ("video_model" in value) != ("video_baseline" in value):
        raise ConfigError(f"{source}: compare needs both 'video_model' and 'video_baseline'")
    for key, name in value.items():
        if str(name) not in names:
            raise ConfigError(
                f"{source}: compare.{key} names unknown model {name!r}{closest(str(name), names)}"
            )
    return {k: str(v) for k, v in value.items()}


def _fill_out(value: Any, out: str) -> Any:
    """Replace ``{out}`` in every string of a spec with the results folder."""
    if isinstance(value, str):
        return value.replace("{out}", out)
    if isinstance(value, list):
        return [_fill_out(v, out) for v in value]
    if isinstance(value, dict):
        return {k: _fill_out(v, out) for k, v in value.items()}
    return value


def parse_spec(
    raw: Any, source: str = "spec", quick: bool = False, out: str | None = None
) -> BenchSpec:
    """Validate a spec mapping; with ``quick``, apply its ``quick`` section first. ``out``
    overrides the spec's results folder; ``{out}`` in any string stands for that folder."""
    raw = _mapping(raw, source)
    if out is None:
        out = str(raw.get("out", f"runs/bench/{raw.get('name', 'bench')}"))
        out = out.rstrip("/") + ("-quick" if quick else "")
    raw = _fill_out(raw, out)
    _check_keys(raw, _TOP, source)
    quick_section = _mapping(raw.get("quick", {}), f"{source}: quick")
    _check_keys(quick_section, _QUICK_KEYS, f"{source}: quick")
    models_raw = _mapping(raw.get("models"), f"{source}: models")
    datasets_raw = _mapping(raw.get("datasets"), f"{source}: datasets")
    # compare names are checked against every model, so --quick may drop some of them
    compare = _parse_compare(raw.get("compare"), [str(n) for n in models_raw], source)
    full_seeds = None if raw.get("seeds") is None else _seed_list(raw["seeds"], f"{source}: seeds")
    seeds = full_seeds
    if "seeds" in quick_section:
        if full_seeds is None:
            raise ConfigError(f"{source}: quick.seeds needs a top-level 'seeds' list")
        quick_seeds = _seed_list(quick_section["seeds"], f"{source}: quick.seeds")
        extra = [s for s in quick_seeds if s not in full_seeds]
        if extra:
            raise ConfigError(f"{source}: quick.seeds {extra} are not in the spec's seeds")
        if quick:
            seeds = quick_seeds
    if quick and "models" in quick_section:
        keep = quick_section["models"]
        models_raw = {k: v for k, v in models_raw.items() if k in keep}
    models = []
    for name, entry in models_raw.items():
        entry = _mapping(entry or {}, f"{source}: models.{name}")
        _check_keys(entry, _MODEL_KEYS, f"{source}: models.{name}")
        if bool(entry.get("spec")) == bool(entry.get("train")):
            raise ConfigError(f"{source}: models.{name} needs exactly one of 'spec' or 'train'")
        overrides = [str(o) for o in entry.get("overrides", [])]
        if quick and entry.get("train"):
            overrides += [str(o) for o in quick_section.get("train_overrides", [])]
        models.append(ModelEntry(name=str(name), **{**entry, "overrides": overrides}))
    names = [m.name for m in models]
    for m in models:
        if m.init is not None and m.init not in names:
            raise ConfigError(
                f"{source}: models.{m.name}.init names unknown model {m.init!r}"
                f"{closest(m.init, names)}"
            )
        if m.spec:
            _check_model_spec(m.spec, f"{source}: models.{m.name}.spec")
    _check_seeds(models, full_seeds, seeds, source)
    datasets = []
    quick_data = quick_section.get("datasets", {}) if quick else {}
    for name, entry in datasets_raw.items():
        entry = _mapping(entry, f"{source}: datasets.{name}")
        _check_keys(entry, _DATASET_KEYS, f"{source}: datasets.{name}")
        if "dataset" not in entry:
            raise ConfigError(f"{source}: datasets.{name} needs 'dataset' (an adapter name)")
        patch = _mapping(quick_data.get(name, {}), f"{source}: quick.datasets.{name}")
        _check_keys(patch, _DATASET_KEYS - {"dataset"}, f"{source}: quick.datasets.{name}")
        merged = {**entry, **patch, "options": {**entry.get("options", {}),
                                                **patch.get("options", {})}}  # fmt: skip
        datasets.append(DatasetEntry(name=str(name), **merged))
    from vilem.data import DATASETS

    for d in datasets:
        if d.dataset not in DATASETS:
            raise ConfigError(
                f"{source}: datasets.{d.name}: unknown dataset {d.dataset!r}"
                f"{closest(d.dataset, DATASETS.names())}"
            )
        splits = DATASETS.get(d.dataset).splits
        if d.split not in splits:
            raise ConfigError(
                f"{source}: datasets.{d.name}: {d.dataset} has no split {d.split!r}"
                f"{closest(d.split, list(splits))}"
            )
    tasks = [str(t) for t in raw.get("tasks", ["retrieval"])]
    for t in tasks:
        if t not in TASKS:
            raise ConfigError(f"{source}: unknown task {t!r}{closest(t, list(TASKS))}")
    exclude = raw.get("exclude", []) or []
    for i, rule in enumerate(exclude):
        _check_keys(_mapping(rule, f"{source}: exclude[{i}]"), {"model", "dataset", "task"},
                    f"{source}: exclude[{i}]")  # fmt: skip
    mlm = raw.get("mlm")
    if quick and mlm is not None:
        mlm = {**mlm, **quick_section.get("mlm", {})}
    spec = BenchSpec(
        name=str(raw.get("name", Path(source).stem)),
        out=out,
        models=models,
        datasets=datasets,
        tasks=tasks,
        exclude=list(exclude),
        seed=int(raw.get("seed", 0)),
        bootstrap=int(
            quick_section.get("bootstrap", raw.get("bootstrap", 1000))
            if quick
            else raw.get("bootstrap", 1000)
        ),  # fmt: skip
        frames=int(raw.get("frames", 8)),
        mlm=mlm,
        quick=quick_section,
        seeds=seeds,
        compare=compare,
    )
    return spec


def _check_model_spec(spec: str, where: str) -> None:
    from vilem.models import MODELS

    name = spec.partition(":")[0]
    if name not in MODELS:
        raise ConfigError(f"{where}: unknown model {name!r}{closest(name, MODELS.names())}")


def load_spec(path: str | Path, quick: bool = False, out: str | None = None) -> BenchSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"benchmark spec not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"benchmark spec {path} is not valid YAML: {exc}") from exc
    return parse_spec(raw, source=str(path), quick=quick, out=out)
