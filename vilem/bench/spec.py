"""Benchmark-matrix specs: models x datasets x tasks, minus exclusions, read from YAML and checked
in full before any work starts (an unknown key, model, dataset or task names the closest valid one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vilem.config import from_dict, read_yaml
from vilem.errors import ConfigError
from vilem.eval.engine import PRECISIONS, SAMPLINGS, EvalOptions
from vilem.eval.rerank import RERANKERS
from vilem.metrics.ranking import I2T_RANKINGS
from vilem.registry import closest

_EVAL = EvalOptions()  # the defaults `vilem eval` has too


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
    rerank: str | None = None  # re-rank its retrieval: dsl or qb-norm (its own protocol)
    querybank_split: str = "train"  # QB-Norm's querybank: this split's captions
    i2t_ranking: str = "all-texts"  # or "grouped": CLIP4Clip's item->text (its own protocol)


@dataclass
class _ModelFields:  # a models.<name> entry as written
    spec: str | None = None
    train: str | None = None
    overrides: list[str] = field(default_factory=list)
    init: str | None = None
    setting: str | None = None
    seeds: Any = None


@dataclass
class _DatasetFields:  # a datasets.<name> entry as written
    dataset: str | None = None
    split: str = "test"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    rerank: str | None = None
    querybank_split: str = "train"
    i2t_ranking: str = "all-texts"


@dataclass
class _DatasetPatch:  # quick.datasets.<name>: what --quick changes of a dataset
    split: str | None = None
    root: str | None = None
    options: dict[str, Any] | None = None


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
    seed: int = _EVAL.seed
    bootstrap: int = _EVAL.bootstrap
    frames: int = _EVAL.frames  # frames per video at evaluation
    sampling: str = _EVAL.sampling
    recall_ks: list[int] = field(default_factory=lambda: list(_EVAL.recall_ks))
    precision: str = _EVAL.precision
    mlm: dict[str, Any] | None = None  # train-lm settings for recipes that need an MLM
    quick: dict[str, Any] = field(default_factory=dict)  # what --quick changes
    seeds: list[int] | None = None  # train every `train:` entry once per seed; None: once
    compare: dict[str, Any] | None = None  # model/baseline (+ video_*) for comparison.json
    notes: list[str] = field(default_factory=list)  # Markdown paragraphs for its report
    is_quick: bool = False  # this is the --quick (toy-scale) version
    source: str = "spec"  # the spec file

    def eval_options(self, cache_dir: Path | None = None, quiet: bool = True) -> EvalOptions:
        """How every cell is evaluated (the same for every training seed)."""
        return EvalOptions(
            bootstrap=self.bootstrap, seed=self.seed, frames=self.frames,
            sampling=self.sampling, recall_ks=tuple(self.recall_ks), precision=self.precision,
            quick=self.is_quick, cache_dir=cache_dir, quiet=quiet, num_workers=0,
        )  # fmt: skip

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


@dataclass
class QuickCfg:
    """What ``--quick`` changes: fewer models, shorter training, smaller data."""

    train_overrides: list[str] = field(default_factory=list)  # added to every trained entry
    datasets: dict[str, Any] = field(default_factory=dict)  # per dataset: root/split/options
    bootstrap: int | None = None
    mlm: dict[str, Any] = field(default_factory=dict)  # laid over the spec's mlm settings
    models: list[str] | None = None  # keep only these
    seeds: Any = None  # a subset of the spec's seeds


@dataclass
class CompareCfg:
    model: str | None = None
    baseline: str | None = None
    video_model: str | None = None
    video_baseline: str | None = None
    ablations: list[str] | None = None  # models also compared with baseline and model


@dataclass
class SpecFile:
    """A spec file as written, before the matrix is resolved (see ``parse_spec``)."""

    name: str | None = None
    out: str | None = None
    models: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=lambda: ["retrieval"])
    exclude: list[dict[str, str]] | None = None
    seed: int = _EVAL.seed
    bootstrap: int = _EVAL.bootstrap
    frames: int = _EVAL.frames
    sampling: str = _EVAL.sampling
    recall_ks: list[int] = field(default_factory=lambda: list(_EVAL.recall_ks))
    precision: str = _EVAL.precision
    mlm: dict[str, Any] | None = None
    quick: QuickCfg = field(default_factory=QuickCfg)
    seeds: Any = None  # checked by _seed_list (its messages say what a seed list is)
    compare: CompareCfg | None = None
    notes: list[str] = field(default_factory=list)  # paragraphs under the report's title


@dataclass
class _ExcludeRule:
    model: str | None = None
    dataset: str | None = None
    task: str | None = None


def _parse(cls: type, raw: Any, where: str, source: str) -> Any:
    """``from_dict`` with the spec file named in the message."""
    try:
        return from_dict(cls, raw, where)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


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


@dataclass
class _MLMSettings:
    """The ``mlm:`` keys: ``train_lm``'s keywords but those the bench supplies (texts from
    ``corpus``, the output folder, the spec's seed). Only given keys reach ``train_lm``, so its
    own defaults stay the only ones."""

    corpus: Any = None  # one {dataset, split, ...} mapping or a list of them (_CorpusPart)
    tokenizer_path: str | None = None
    hidden: int | None = None
    layers: int | None = None
    heads: int | None = None
    steps: int | None = None
    dropout: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    max_len: int | None = None
    eval_points: int | None = None


@dataclass
class _CorpusPart:
    dataset: str | None = None
    split: str = "train"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    val_split: str | None = "val"


def _check_mlm(mlm: dict[str, Any], source: str) -> dict[str, Any]:
    """The masked LM's settings checked before any work (known keys and types, positive sizes
    and rate, dropout in [0, 1), a corpus of known datasets); returns them with their values
    converted as the config reader converts them (``lr: 1e-3`` is a float); a key set to null
    is left out (``train_lm``'s default)."""
    settings = _parse(_MLMSettings, mlm, "mlm", source)
    given = {key: getattr(settings, key) for key in mlm if getattr(settings, key) is not None}
    for key, value in given.items():
        if key == "dropout" and not 0 <= value < 1:
            raise ConfigError(f"{source}: mlm.dropout must be in [0, 1), got {value!r}")
        if isinstance(value, int | float) and key != "dropout" and value <= 0:
            raise ConfigError(f"{source}: mlm.{key} must be positive, got {value!r}")
    corpus = mlm.get("corpus", {"dataset": "synthetic"})
    parts = corpus if isinstance(corpus, list) else [corpus]
    if not parts:
        raise ConfigError(f"{source}: mlm.corpus lists no dataset")
    for i, raw in enumerate(parts):
        where = "mlm.corpus" + (f"[{i}]" if isinstance(corpus, list) else "")
        part = _parse(_CorpusPart, raw, where, source)
        if part.dataset is None:
            raise ConfigError(f"{source}: {where} needs 'dataset' (an adapter name)")
        _require_dataset(part.dataset, f"{source}: {where}")
    return given


def _require_dataset(name: str, where: str) -> None:
    """Refuse an adapter name that is not registered (``py:`` adapters load with the split)."""
    from vilem.data import DATASETS

    if not name.startswith("py:") and name not in DATASETS:
        raise ConfigError(f"{where}: unknown dataset {name!r}{closest(name, DATASETS.names())}")


def _parse_compare(cmp: CompareCfg | None, names: list[str], source: str) -> dict | None:
    if cmp is None:
        return None
    for key in ("model", "baseline"):
        if getattr(cmp, key) is None:
            raise ConfigError(f"{source}: compare needs {key!r} (a model name)")
    if (cmp.video_model is None) != (cmp.video_baseline is None):
        raise ConfigError(f"{source}: compare needs both 'video_model' and 'video_baseline'")
    value = {k: v for k, v in vars(cmp).items() if v is not None}
    for key, name in value.items():
        for one in name if key == "ablations" else [name]:
            if one not in names:
                raise ConfigError(
                    f"{source}: compare.{key} names unknown model {one!r}{closest(one, names)}"
                )
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


def _resolve_seeds(spec: SpecFile, quick: bool, source: str) -> tuple[list | None, list | None]:
    """(the spec's seeds, the seeds this run trains: quick.seeds under --quick)."""
    full = None if spec.seeds is None else _seed_list(spec.seeds, f"{source}: seeds")
    if spec.quick.seeds is None:
        return full, full
    if full is None:
        raise ConfigError(f"{source}: quick.seeds needs a top-level 'seeds' list")
    quick_seeds = _seed_list(spec.quick.seeds, f"{source}: quick.seeds")
    extra = [s for s in quick_seeds if s not in full]
    if extra:
        raise ConfigError(f"{source}: quick.seeds {extra} are not in the spec's seeds")
    return full, quick_seeds if quick else full


def _models(spec: SpecFile, quick: bool, source: str) -> list[ModelEntry]:
    raw = spec.models
    if quick and spec.quick.models is not None:
        raw = {k: v for k, v in raw.items() if k in spec.quick.models}
    models = []
    for name, entry in raw.items():
        entry = _parse(_ModelFields, entry or {}, f"models.{name}", source)
        if bool(entry.spec) == bool(entry.train):
            raise ConfigError(f"{source}: models.{name} needs exactly one of 'spec' or 'train'")
        if quick and entry.train:
            entry.overrides += spec.quick.train_overrides
        models.append(ModelEntry(name=str(name), **vars(entry)))
    names = [m.name for m in models]
    for m in models:
        if m.init is not None and m.init not in names:
            raise ConfigError(
                f"{source}: models.{m.name}.init names unknown model {m.init!r}"
                f"{closest(m.init, names)}"
            )
        if m.spec:
            _check_model_spec(m.spec, f"{source}: models.{m.name}.spec")
    return models


def _datasets(spec: SpecFile, quick: bool, source: str) -> list[DatasetEntry]:
    from vilem.data import DATASETS

    patches = spec.quick.datasets if quick else {}
    datasets = []
    for name, raw in spec.datasets.items():
        entry = _parse(_DatasetFields, raw, f"datasets.{name}", source)
        if entry.dataset is None:
            raise ConfigError(f"{source}: datasets.{name} needs 'dataset' (an adapter name)")
        patch = _parse(_DatasetPatch, patches.get(name, {}), f"quick.datasets.{name}", source)
        merged = {**vars(entry), **{k: v for k, v in vars(patch).items() if v is not None}}
        merged["options"] = {**entry.options, **(patch.options or {})}
        d = DatasetEntry(name=str(name), **merged)
        _choice(d.i2t_ranking, I2T_RANKINGS, f"datasets.{d.name}.i2t_ranking", source)
        if d.rerank is not None:
            _choice(d.rerank, RERANKERS, f"datasets.{d.name}.rerank", source)
            if d.rerank == "qb-norm" and d.querybank_split == d.split:
                raise ConfigError(
                    f"{source}: datasets.{d.name}: the querybank_split is the evaluated split; "
                    "QB-Norm's querybank must be training captions"
                )
        if d.dataset.startswith("py:"):  # imported and checked when the split is loaded
            datasets.append(d)
            continue
        _require_dataset(d.dataset, f"{source}: datasets.{d.name}")
        adapter = DATASETS.get(d.dataset)
        if d.split not in adapter.splits:
            raise ConfigError(
                f"{source}: datasets.{d.name}: {d.dataset} has no split {d.split!r}"
                f"{adapter.split_hint(d.split)}"
            )
        datasets.append(d)
    return datasets


def parse_spec(
    raw: Any, source: str = "spec", quick: bool = False, out: str | None = None
) -> BenchSpec:
    """Validate a spec mapping; with ``quick``, apply its ``quick`` section first. ``out``
    overrides the spec's results folder; ``{out}`` in any string stands for that folder."""
    from vilem.eval.tasks import get_task

    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping, got {type(raw).__name__}")
    if out is None:
        out = str(raw.get("out", f"runs/bench/{raw.get('name', 'bench')}"))
        out = out.rstrip("/") + ("-quick" if quick else "")
    spec = _parse(SpecFile, _fill_out(raw, out), "", source)
    # compare names are checked against every model, so --quick may drop some of them
    compare = _parse_compare(spec.compare, [str(n) for n in spec.models], source)
    full_seeds, seeds = _resolve_seeds(spec, quick, source)
    models = _models(spec, quick, source)
    _check_seeds(models, full_seeds, seeds, source)
    datasets = _datasets(spec, quick, source)
    for t in spec.tasks:
        try:
            get_task(t)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {str(exc).split(';')[0]}") from None
    exclude = spec.exclude or []
    for i, rule in enumerate(exclude):
        _parse(_ExcludeRule, rule, f"exclude[{i}]", source)
    mlm = spec.mlm
    if quick and mlm is not None:
        mlm = {**mlm, **spec.quick.mlm}
    if mlm is not None:
        mlm = _check_mlm(mlm, source)
    bootstrap = spec.bootstrap
    if quick and spec.quick.bootstrap is not None:
        bootstrap = spec.quick.bootstrap
    bench = BenchSpec(
        name=spec.name or Path(source).stem,
        out=out,
        models=models,
        datasets=datasets,
        tasks=list(spec.tasks),
        exclude=list(exclude),
        seed=spec.seed,
        bootstrap=bootstrap,
        frames=spec.frames,
        sampling=_choice(spec.sampling, SAMPLINGS, "sampling", source),
        recall_ks=_recall_ks(spec.recall_ks, source),
        precision=_choice(spec.precision, PRECISIONS, "precision", source),
        mlm=mlm,
        quick=raw.get("quick") or {},
        seeds=seeds,
        compare=compare,
        notes=_notes(spec.notes, source),
        is_quick=quick,
        source=source,
    )
    try:  # the evaluation settings every cell shares, checked before any work
        bench.eval_options()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    _check_not_empty(bench)
    return bench


def _check_not_empty(bench: BenchSpec) -> None:
    """A matrix with no cell is a mistake (a missing section, an exclusion that matches all),
    not a benchmark that succeeded."""
    if bench.cells():
        return
    empty = [k for k in ("models", "datasets", "tasks") if not getattr(bench, k)]
    why = f"it has no {' and no '.join(empty)}" if empty else "`exclude` removes every cell"
    quick = " (with --quick)" if bench.is_quick else ""
    raise ConfigError(f"{bench.source}: the benchmark matrix has no cells{quick}: {why}")


def _notes(value: list[str], source: str) -> list[str]:
    if not all(n.strip() for n in value):  # the typed reader checked list[str]
        raise ConfigError(f"{source}: notes must be a list of non-empty strings (paragraphs)")
    return [n.strip() for n in value]


def _recall_ks(value: list[int], source: str) -> list[int]:
    if not value or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in value):
        raise ConfigError(f"{source}: recall_ks must be a list of positive integers, got {value}")
    return sorted(set(value))


def _choice(value: str, choices: tuple[str, ...], key: str, source: str) -> str:
    if value not in choices:
        raise ConfigError(
            f"{source}: {key} {value!r} is not one of {', '.join(choices)}"
            f"{closest(str(value), list(choices))}"
        )
    return value


def _check_model_spec(spec: str, where: str) -> None:
    from vilem.models import MODELS

    name = spec.partition(":")[0]
    if name not in MODELS:
        raise ConfigError(f"{where}: unknown model {name!r}{closest(name, MODELS.names())}")


PACKAGED = Path(__file__).resolve().parent.parent / "specs"  # default, seeds, ablations


def spec_path(name: str | Path) -> Path:
    """A spec file: the path given, else a packaged spec of that name (``default``)."""
    path = Path(name)
    if path.is_file() or path.is_dir():
        return path
    packaged = sorted(p.stem for p in PACKAGED.glob("*.yaml"))
    if str(name) in packaged:
        return PACKAGED / f"{name}.yaml"
    raise ConfigError(
        f"benchmark spec not found: {path}{closest(str(name), packaged)}; "
        f"packaged specs: {', '.join(packaged)}"
    )


def load_spec(path: str | Path, quick: bool = False, out: str | None = None) -> BenchSpec:
    path = spec_path(path)
    raw = read_yaml(path, "benchmark spec")
    return parse_spec(raw, source=str(path), quick=quick, out=out)
