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

    def filename(self) -> str:
        return f"{self.model}/{self.dataset}__{self.task}.json"


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

    def cells(self) -> list[Cell]:
        """The matrix in a stable order (model-major), minus excluded cells."""
        out = []
        for m in self.models:
            for d in self.datasets:
                for t in self.tasks:
                    cell = Cell(m.name, d.name, t)
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
        "mlm", "quick"}  # fmt: skip
_MODEL_KEYS = {"spec", "train", "overrides", "init", "setting"}
_DATASET_KEYS = {"dataset", "split", "root", "options"}
_QUICK_KEYS = {"train_overrides", "datasets", "bootstrap", "mlm", "models"}


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
