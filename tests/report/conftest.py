"""Synthetic result records for the report tests, built with vilem.results.make_result."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vilem.results import make_result, write_result


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
) -> dict[str, Any]:
    """A retrieval record; metrics follow from the ranks unless given."""
    t2i = t2i if t2i is not None else [1] * 10
    i2t = i2t if i2t is not None else t2i
    if metrics is None:
        metrics = {**_recalls(t2i, "t2i"), **_recalls(i2t, "i2t")}
        metrics["rsum"] = sum(metrics[f"{d}_R@{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10))
    rec = make_result(
        model={"spec": name, "config": {}, "fingerprint": f"fp-{name}"},
        dataset={"name": dataset, "split": split, "modality": modality, "revision": "r1"},
        task="retrieval",
        metrics=metrics,
        intervals=intervals,
        extra=extra,
    )
    if per_query:
        rec["per_query"] = {"t2i_ranks": list(t2i), "i2t_ranks": list(i2t)}
    return rec


def probe(
    name: str,
    correct: dict[str, list[int]],
    *,
    dataset: str = "synthetic",
    modality: str = "image",
    per_query: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A probe record from per-category 0/1 outcomes."""
    metrics = {f"acc_{c}": 100.0 * sum(v) / len(v) for c, v in correct.items()}
    metrics["macro"] = sum(metrics.values()) / len(metrics)
    flat = [x for v in correct.values() for x in v]
    metrics["overall"] = 100.0 * sum(flat) / len(flat)
    rec = make_result(
        model={"spec": name, "config": {}, "fingerprint": f"fp-{name}"},
        dataset={"name": dataset, "split": "test", "modality": modality, "revision": "r1"},
        task="probe",
        metrics=metrics,
        extra=extra,
    )
    if per_query:
        rec["per_query"] = {"correct": flat, "category": [c for c, v in correct.items() for _ in v]}
    return rec


def failed(name: str, task: str = "retrieval", dataset: str = "synthetic") -> dict[str, Any]:
    return make_result(
        model={"spec": name, "config": {}, "fingerprint": f"fp-{name}"},
        dataset={"name": dataset, "split": "test", "modality": "image", "revision": "r1"},
        task=task,
        metrics={},
        status="failed",
        error="RuntimeError: CUDA out of memory",
    )


def save(folder: Path, records: list[dict[str, Any]]) -> Path:
    """Write each record as <model>/<dataset>__<task>.json under ``folder`` (in a seed<k>/
    subfolder for a record with ``extra.train_seed``, as the multi-seed bench does)."""
    for r in records:
        name = r["model"].get("name") or r["model"]["spec"]
        seed = r.get("extra", {}).get("train_seed")
        where = folder / name if seed is None else folder / name / f"seed{seed}"
        write_result(where / f"{r['dataset']['name']}__{r['task']}.json", r)
    return folder


@pytest.fixture(autouse=True)
def _no_git_lookup(monkeypatch):
    # make_result asks git for the commit; the tests do not need it and run faster without
    monkeypatch.setattr("vilem.results.git_state", lambda cwd=None: {"commit": None, "dirty": None})


@pytest.fixture
def rec() -> SimpleNamespace:
    """Record builders: rec.retrieval, rec.probe, rec.failed, rec.save."""
    return SimpleNamespace(retrieval=retrieval, probe=probe, failed=failed, save=save)
