"""``vilem migrate``: rewrite the schema-1 results of a bench folder as schema 2, with the
protocol record taken from the spec that produced them (its frames, sampling, bootstrap, seed,
recall Ks and precision, each dataset's key and options, each model's request). Numbers are
copied unchanged; what version 1 never recorded (the model's preprocessing, the video decoding
record) stays unknown (None), and ``extra.migrated`` says where the protocol came from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vilem.bench.runner import Runner
from vilem.bench.spec import BenchSpec, Cell
from vilem.errors import DataError, VilemError
from vilem.eval.engine import protocol as settings_protocol
from vilem.results import Result, load_result, write_result


def _cell(spec: BenchSpec, results: Path, path: Path) -> Cell:
    """The spec cell a result file is: ``<model>[/seed<k>]/<dataset>__<task>.json``."""
    rel = path.relative_to(results).parts
    seed = None
    if len(rel) == 3 and rel[1].startswith("seed") and rel[1][4:].isdigit():
        seed = int(rel[1][4:])
    elif len(rel) != 2:
        raise DataError(f"{path}: not laid out as <model>[/seed<k>]/<dataset>__<task>.json")
    dataset, sep, task = path.stem.partition("__")
    names = {m.name for m in spec.models}, {d.name for d in spec.datasets}
    if not sep or rel[0] not in names[0] or dataset not in names[1]:
        raise DataError(f"{path}: no cell of spec {spec.source} is written there")
    return Cell(rel[0], dataset, task, seed)


def migrate_result(old: Result, spec: BenchSpec, cell: Cell, runner: Runner) -> Result:
    """``old`` (schema 1) with the protocol ``spec`` gives ``cell``."""
    d = spec.dataset(cell.dataset)
    protocol = dataclasses.replace(
        settings_protocol(None, None, spec.eval_options(), d.options, old.dataset.modality),
        text_max_len=old.model.config.get("model", {}).get("text", {}).get("max_len"),
        device="cpu",  # the bench evaluates on the CPU unless --device says otherwise
    )
    model = dataclasses.replace(
        old.model, request=runner.request(spec.model(cell.model), cell.seed)
    )
    dataset = dataclasses.replace(old.dataset, key=d.name)
    extra = old.extra | {"migrated": {"from_schema": 1, "spec": spec.source}}
    return dataclasses.replace(
        old, model=model, dataset=dataset, protocol=protocol, extra=extra, schema_version=2
    )


def migrate(results: Path, spec: BenchSpec, dry_run: bool = False) -> tuple[int, int]:
    """Migrate every schema-1 result under ``results``; (migrated, already version 2)."""
    runner = Runner(spec, quiet=True)
    paths = sorted(p for p in Path(results).rglob("*.json") if p.is_file())
    if not paths:
        raise DataError(f"no result files under {results}")
    todo, current = [], 0
    for path in paths:  # everything is checked before anything is written
        old = load_result(path)
        if old.schema_version != 1:
            current += 1
            continue
        try:
            todo.append((path, migrate_result(old, spec, _cell(spec, results, path), runner)))
        except VilemError as exc:
            raise type(exc)(f"{path}: {exc}") from exc
    if not dry_run:
        for path, new in todo:
            write_result(path, new)
    return len(todo), current
