"""Synthetic result records for the report tests, built as vilem.results.Result."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vilem.results import DatasetRecord, ModelRecord, Protocol, Result, write_result


def _recalls(ranks: list[int], direction: str) -> dict[str, float]:
    n = len(ranks)
    out = {f"{direction}_R@{k}": 100.0 * sum(r <= k for r in ranks) / n for k in (1, 5, 10)}
    ordered = sorted(ranks)
    mid = n // 2
    out[f"{direction}_medr"] = float(
        ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    )
    out[f"{direction}_meanr"] = sum(ranks) / n
    return out


def make(
    name: str,
    dataset: str,
    split: str,
    modality: str,
    task: str,
    metrics: dict[str, float],
    *,
    intervals: dict[str, list[float]] | None = None,
    extra: dict[str, Any] | None = None,
    per_query: dict[str, list] | None = None,
    status: str = "ok",
    error: str | None = None,
    protocol: Protocol | None = None,
) -> Result:
    """A Result; ``extra`` may hold ``train_seed`` and ``setting`` (they go to the model)."""
    extra = dict(extra or {})
    model = ModelRecord(
        name=name, spec=name, fingerprint=f"fp-{name}",
        train_seed=extra.pop("train_seed", None), setting=extra.pop("setting", None),
        train_log=extra.pop("train_log", None),
    )  # fmt: skip
    counts = {"items": 10, "texts": 10, "skipped_items": 0}
    return Result(
        model=model,
        dataset=DatasetRecord(dataset, split, modality=modality, revision="r1", counts=counts),
        task=task,
        protocol=protocol or Protocol(preprocessing={}, device="cpu"),
        status=status,
        error=error,
        metrics=metrics,
        intervals=intervals or {},
        per_query=per_query,
        extra=extra,
    )


def retrieval(
    name: str,
    t2i: list[int] | None = None,
    i2t: list[int] | None = None,
    *,
    metrics: dict[str, float] | None = None,
    dataset: str = "synthetic",
    split: str = "test",
    modality: str = "image",
    per_query: bool = True,
    intervals: dict[str, list[float]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Result:
    """A retrieval record; metrics follow from the ranks unless given."""
    t2i = t2i if t2i is not None else [1] * 10
    i2t = i2t if i2t is not None else t2i
    if metrics is None:
        metrics = {**_recalls(t2i, "t2i"), **_recalls(i2t, "i2t")}
        metrics["rsum"] = sum(metrics[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10))
    pq = {"t2i_ranks": list(t2i), "i2t_ranks": list(i2t)} if per_query else None
    return make(
        name, dataset, split, modality, "retrieval", metrics,
        intervals=intervals, extra=extra, per_query=pq,
    )  # fmt: skip


def probe(
    name: str,
    correct: dict[str, list[int]],
    *,
    dataset: str = "synthetic",
    modality: str = "image",
    per_query: bool = True,
    extra: dict[str, Any] | None = None,
) -> Result:
    """A probe record from per-category 0/1 outcomes."""
    metrics = {f"acc_{c}": 100.0 * sum(v) / len(v) for c, v in correct.items()}
    metrics["macro"] = sum(metrics.values()) / len(metrics)
    flat = [x for v in correct.values() for x in v]
    metrics["overall"] = 100.0 * sum(flat) / len(flat)
    cats = [c for c, v in correct.items() for _ in v]
    pq = {"correct": flat, "category": cats} if per_query else None
    return make(name, dataset, "test", modality, "probe", metrics, extra=extra, per_query=pq)


def failed(name: str, task: str = "retrieval", dataset: str = "synthetic") -> Result:
    return make(
        name, dataset, "test", "image", task, {},
        status="failed", error="RuntimeError: CUDA out of memory",
    )  # fmt: skip


def save(folder: Path, records: list[Result]) -> Path:
    """Write each record as <model>/<dataset>__<task>.json under ``folder`` (in a seed<k>/
    subfolder for a record with a training seed, as the multi-seed bench does)."""
    for r in records:
        seed = r.model.train_seed
        where = folder / r.model.name if seed is None else folder / r.model.name / f"seed{seed}"
        write_result(where / f"{r.dataset.name}__{r.task}.json", r)
    return folder


@pytest.fixture(autouse=True)
def _no_git_lookup(monkeypatch):
    # make_result asks git for the commit; the tests do not need it and run faster without
    monkeypatch.setattr("vilem.results.git_state", lambda cwd=None: {"commit": None, "dirty": None})


@pytest.fixture
def rec() -> SimpleNamespace:
    """Record builders: rec.retrieval, rec.probe, rec.failed, rec.make, rec.save."""
    return SimpleNamespace(retrieval=retrieval, probe=probe, failed=failed, make=make, save=save)
