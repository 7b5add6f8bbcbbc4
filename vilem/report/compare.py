"""Comparing result cells: paired bootstrap differences between two models evaluated on the same
queries. Which way a metric is better comes from the metric registry (``vilem.metrics.info``);
each task's main metric and per-query recipe from the task registry (``vilem.eval.tasks``).

A difference is *paired*: every resample draws one set of query indices and scores both models on
it, so the interval reflects how much the gap, not each score, depends on the query sample.

Runs trained with several seeds (``model.train_seed``) are pooled: a value is the mean over seeds
and its interval comes from a two-level bootstrap that resamples seeds, then each drawn seed's
queries; a pooled difference pairs the two models seed by seed and query by query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vilem import metrics as M
from vilem.eval.tasks import TASKS
from vilem.metrics import higher_is_better
from vilem.metrics.paired import Paired
from vilem.results import Result, describe_differences, differences

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Delta:
    """``model - baseline`` on one metric, with a paired bootstrap 95% interval when possible.

    Attributes:
        metric: the metric compared.
        value: the difference of the recorded values; None when either record lacks the metric.
        lo, hi: 95% percentile interval of the difference; None when it cannot be computed.
        higher_is_better: the metric's direction, so ``better`` means better, not larger.
        note: why the interval (or the value) is missing, or how it was computed.
        n_seeds: training seeds the difference is averaged over (None: one run each).
    """

    metric: str
    value: float | None
    lo: float | None
    hi: float | None
    higher_is_better: bool
    note: str = ""
    n_seeds: int | None = None

    @property
    def significant(self) -> bool | None:
        """True when the interval excludes 0; None when there is no interval."""
        if self.lo is None or self.hi is None:
            return None
        return not (self.lo <= 0.0 <= self.hi)

    @property
    def better(self) -> bool | None:
        """Whether the model's point estimate is better than the baseline's."""
        if self.value is None:
            return None
        return self.value > 0 if self.higher_is_better else self.value < 0

    @property
    def verdict(self) -> str:
        """``beats`` (significantly better), ``worse`` (significantly worse), ``tie`` (interval
        contains 0) or ``unknown`` (no interval, or no value)."""
        if self.value is None or self.significant is None:
            return "unknown"
        if not self.significant:
            return "tie"
        return "beats" if self.better else "worse"


def _inputs(record: Result, metric: str, a: dict, b: dict) -> Paired:
    """The paired-delta recipe of ``record``'s task applied to two per-query blocks
    (``vilem.eval.tasks``), under ``record``'s protocol (both runs share it: ``protocol_note``
    refuses a pair whose protocols differ)."""
    recipe = TASKS[record.task].paired if record.task in TASKS else None
    if recipe is None:
        raise ValueError(f"no per-query recipe for task {record.task!r}")
    return recipe(metric, a, b, record.protocol)


def _metric_value(record: Result, metric: str) -> float | None:
    value = record.metrics.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def protocol_note(a: Result, b: Result) -> str | None:
    """Why two results cannot be paired (their protocols differ), or None."""
    diff = differences(a.benchmark(), b.benchmark())
    diff.pop("dataset", None)  # spec keys may differ for the same data
    return f"protocols differ ({describe_differences(diff)})" if diff else None


def paired_delta(
    model: Result,
    baseline: Result,
    metric: str,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Delta:
    """``model - baseline`` on ``metric`` for two ok records of the same (dataset, split, task).

    The interval comes from each record's ``per_query`` block (retrieval: ``t2i_ranks`` and
    ``i2t_ranks``; probe: ``correct`` and ``category``); without it, or when the two runs did not
    score the same queries, the interval is None and ``note`` says why.
    """
    direction = higher_is_better(metric)
    va, vb = _metric_value(model, metric), _metric_value(baseline, metric)
    if va is None or vb is None:
        who = "the model" if va is None else "the baseline"
        return Delta(metric, None, None, None, direction, f"{who} has no {metric}")
    value = va - vb
    rev_a, rev_b = model.dataset.revision, baseline.dataset.revision
    if rev_a and rev_b and rev_a != rev_b:
        note = f"dataset revisions differ ({rev_a} vs {rev_b}): not the same queries"
        return Delta(metric, value, None, None, direction, note)
    note = protocol_note(model, baseline)
    if note:
        return Delta(metric, value, None, None, direction, note)
    pa, pb = model.per_query, baseline.per_query
    if not isinstance(pa, dict) or not isinstance(pb, dict):
        missing = " and ".join(
            w for w, p in (("the model", pa), ("the baseline", pb)) if not isinstance(p, dict)
        )
        return Delta(metric, value, None, None, direction, f"no per-query results for {missing}")
    try:
        parts_a, parts_b, fn = _inputs(model, metric, pa, pb)
    except ValueError as exc:
        return Delta(metric, value, None, None, direction, str(exc))
    # the value stays the recorded difference; the bootstrap supplies only the interval
    _, lo, hi = M.paired_bootstrap_delta(parts_a, parts_b, fn, B=resamples, seed=seed)
    return Delta(metric, value, lo, hi, direction)


# ----------------------------------------------------------------------------- several seeds


def train_seed(record: Result) -> int | None:
    """The training seed a multi-seed bench run recorded (``model.train_seed``), else None."""
    value = record.model.train_seed
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seed_order(record: Result) -> tuple[bool, int]:
    s = train_seed(record)
    return s is None, s or 0


def _by_seed(records: Sequence[Result]) -> dict[int | None, Result]:
    ok = (r for r in records if r.ok)
    return {train_seed(r): r for r in sorted(ok, key=_seed_order)}


def _seed_pairs(
    models: Sequence[Result], baselines: Sequence[Result]
) -> list[tuple[int | None, Result, Result]]:
    """(seed, model record, baseline record) for the seeds both have. A run without a training
    seed (an untrained model, or a single-seed bench) stands for every seed of the other side."""
    a, b = _by_seed(models), _by_seed(baselines)
    sa, sb = sorted(set(a) - {None}), sorted(set(b) - {None})
    if sa and sb:
        return [(s, a[s], b[s]) for s in sa if s in b]
    if sb:
        return [(s, a[None], b[s]) for s in sb] if None in a else []
    if sa:
        return [(s, a[s], b[None]) for s in sa] if None in b else []
    return [(None, a[None], b[None])] if None in a and None in b else []


# One seed's input to the two-level bootstrap: the per-query parts of each model scored (all
# resampled with the same indices) and the quantities estimated, as functions of those parts.
_SeedInput = tuple[tuple[tuple[np.ndarray, ...], ...], list[Callable[[tuple], float]]]


def _two_level(inputs: list[_SeedInput], resamples: int, seed: int) -> np.ndarray:
    """(resamples, quantities) replicates: each resample draws len(inputs) seeds with
    replacement and, for every drawn seed, one set of query indices (per part) applied to all of
    that seed's models; a replicate is the mean over the drawn seeds."""
    rng = np.random.default_rng(seed)
    n = len(inputs)
    out = np.zeros((resamples, len(inputs[0][1])))
    for b, drawn in enumerate(rng.integers(0, n, size=(resamples, n))):
        for s in drawn:
            models, fns = inputs[s]
            idx = [rng.integers(0, len(p), len(p)) for p in models[0]]
            parts = tuple(tuple(p[i] for p, i in zip(m, idx, strict=True)) for m in models)
            out[b] += [fn(parts) for fn in fns]
    return out / n


def _seed_only(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, quantities) replicates of the mean of ``values`` (seeds, quantities) over
    seeds drawn with replacement."""
    rng = np.random.default_rng(seed)
    n = len(values)
    return values[rng.integers(0, n, size=(resamples, n))].mean(axis=1)


def _ci(replicates: np.ndarray) -> list[float]:
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return [float(lo), float(hi)]


def _recipes(
    runs: Sequence[Result], names: Sequence[str]
) -> tuple[list[str], list[_SeedInput]]:
    """The metrics every run has a per-query recipe for, on one set of parts per run (one task's
    recipes share them), and each run's two-level bootstrap input for those metrics."""
    found = []
    for r in runs:
        pq, parts, fns = r.per_query, None, {}
        for m in names if isinstance(pq, dict) else ():
            try:
                p, _, fn = _inputs(r, m, pq, pq)
            except ValueError:
                continue
            parts = p if parts is None else parts
            if [len(x) for x in p] == [len(x) for x in parts]:
                fns[m] = fn
        found.append((parts, fns))
    shared = [m for m in names if all(m in fns for _, fns in found)]
    inputs: list[_SeedInput] = [
        ((parts,), [lambda x, fn=fns[m]: fn(x[0]) for m in shared]) for parts, fns in found
    ]
    return shared, inputs


def pool_records(
    records: Sequence[Result],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Result:
    """One record for the ok runs of one cell trained with different seeds.

    Each metric is the mean over seeds (metrics some seed lacks are dropped); its 95% interval
    comes from a two-level bootstrap (seeds, then each drawn seed's queries from its
    ``per_query`` block), or from resampling seeds alone where a seed has no per-query recipe
    for the metric. A single run is returned as it is. The pooled record copies the first seed's
    fields, without ``per_query``, and lists the pooled seeds in ``extra.seeds``.

    Raises:
        ValueError: the runs were measured under different protocols.
    """
    runs = sorted((r for r in records if r.ok), key=_seed_order)
    if len(runs) < 2:
        return runs[0] if runs else records[0]
    first = runs[0]
    for r in runs[1:]:
        if note := protocol_note(first, r):
            raise ValueError(f"cannot pool {first.model.name}'s seeds: {note}")
    names = [
        m
        for m in first.metrics
        if all((v := _metric_value(r, m)) is not None and np.isfinite(v) for r in runs)
    ]
    values = np.array([[_metric_value(r, m) for m in names] for r in runs], dtype=np.float64)
    values = values.reshape(len(runs), len(names))
    recipe, inputs = _recipes(runs, names)
    intervals: dict[str, list[float]] = {}
    if recipe:
        reps = _two_level(inputs, resamples, seed)
        intervals.update({m: _ci(reps[:, j]) for j, m in enumerate(recipe)})
    rest = [j for j, m in enumerate(names) if m not in recipe]
    if rest:
        reps = _seed_only(values[:, rest], resamples, seed)
        intervals.update({names[j]: _ci(reps[:, i]) for i, j in enumerate(rest)})
    return replace(
        first,
        model=replace(first.model, train_seed=None),
        metrics={m: float(v) for m, v in zip(names, values.mean(axis=0), strict=True)},
        intervals={m: intervals[m] for m in names},
        per_query=None,
        extra={**first.extra, "seeds": [train_seed(r) for r in runs]},
    )


def pooled_paired_delta(
    models: Sequence[Result],
    baselines: Sequence[Result],
    metric: str,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Delta:
    """``model - baseline`` on ``metric``, averaged over the training seeds both have.

    ``models`` and ``baselines`` are the runs (one per training seed) of one cell. The value is
    the mean over common seeds of the recorded per-seed differences. Its 95% interval is a
    two-level paired bootstrap: each resample draws seeds with replacement and, for every drawn
    seed, one set of query indices scored for both models (the same probes and test split);
    without per-query results it resamples the per-seed differences alone. With one seed in
    common this is ``paired_delta`` of that pair.
    """
    direction = higher_is_better(metric)
    pairs = _seed_pairs(models, baselines)
    if not pairs:
        return Delta(metric, None, None, None, direction, "no finished training seed in common")
    if len(pairs) == 1:
        return replace(paired_delta(pairs[0][1], pairs[0][2], metric, resamples, seed), n_seeds=1)
    n = len(pairs)
    diffs = []
    for s, a, b in pairs:
        va, vb = _metric_value(a, metric), _metric_value(b, metric)
        if va is None or vb is None:
            who = "the model" if va is None else "the baseline"
            return Delta(
                metric, None, None, None, direction, f"{who} has no {metric} (seed {s})", n
            )
        diffs.append(va - vb)
    value = float(np.mean(diffs))
    inputs: list[_SeedInput] = []
    try:
        for s, a, b in pairs:
            rev_a, rev_b = a.dataset.revision, b.dataset.revision
            if rev_a and rev_b and rev_a != rev_b:
                note = f"dataset revisions differ at seed {s}: not the same queries"
                return Delta(metric, value, None, None, direction, note, n)
            if note := protocol_note(a, b):
                return Delta(metric, value, None, None, direction, f"{note} at seed {s}", n)
            pa, pb = a.per_query, b.per_query
            if not isinstance(pa, dict) or not isinstance(pb, dict):
                raise ValueError(f"no per-query results at seed {s}")
            parts_a, parts_b, fn = _inputs(a, metric, pa, pb)
            inputs.append(((parts_a, parts_b), [lambda x, fn=fn: fn(x[0]) - fn(x[1])]))
    except ValueError as exc:
        lo, hi = _ci(_seed_only(np.array(diffs)[:, None], resamples, seed)[:, 0])
        return Delta(metric, value, lo, hi, direction, f"{exc}; interval over seeds only", n)
    lo, hi = _ci(_two_level(inputs, resamples, seed)[:, 0])
    return Delta(metric, value, lo, hi, direction, n_seeds=n)


# ----------------------------------------------------------------------------- comparison.json


def modality(record: Result) -> str:
    """``image`` or ``video``: the dataset block's modality (evaluated results record it), else
    the registered adapter's, else ``image``."""
    ds = record.dataset
    if ds.modality in ("image", "video"):
        return str(ds.modality)
    from vilem.data import DATASETS
    from vilem.errors import VilemError

    try:
        return str(DATASETS.get(ds.name).modality)
    except (VilemError, KeyError, AttributeError):
        return "image"


def _delta_entry(d: Delta) -> dict[str, Any]:
    entry = {
        "delta": d.value,
        "ci": None if d.lo is None or d.hi is None else [d.lo, d.hi],
        "significant": d.significant,
        "n_seeds": d.n_seeds or 1,
    }
    return entry | ({"note": d.note} if d.note else {})


@dataclass(frozen=True)
class _Cells:
    """A benchmark's finished runs per (model, dataset, split, task), and per modality the
    (dataset, split) a comparison reads."""

    groups: dict[tuple[str, str, str, str], list[Result]]
    where: dict[str, tuple[str, str] | None]

    @classmethod
    def of(cls, records: Sequence[Result], model: str) -> _Cells:
        groups: dict[tuple[str, str, str, str], list[Result]] = {}
        for r in records:
            if r.ok:
                key = (r.model.name, r.dataset.label, r.dataset.split, r.task)
                groups.setdefault(key, []).append(r)

        def place(kind: str) -> tuple[str, str] | None:
            # (no retrieval result, dataset, split): datasets with the model's retrieval come first
            mine = sorted(
                {(k[3] != "retrieval", k[1], k[2]) for k, rs in groups.items()
                 if k[0] == model and modality(rs[0]) == kind}
            )  # fmt: skip
            return (mine[0][1], mine[0][2]) if mine else None

        return cls(groups, {"image": place("image"), "video": place("video")})

    def runs(self, name: str, kind: str, task: str) -> list[Result]:
        at = self.where[kind]
        return self.groups.get((name, *at, task), []) if at else []

    def seeds(self, name: str) -> set[int | None]:
        return {train_seed(r) for k, rs in self.groups.items() if k[0] == name for r in rs}


def _delta(
    cells: _Cells,
    name: str,
    base: str,
    kind: str,
    task: str,
    metric: str,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    mine, theirs = cells.runs(name, kind, task), cells.runs(base, kind, task)
    if not mine or not theirs:
        who = " and ".join(n for n, rs in ((name, mine), (base, theirs)) if not rs)
        note = f"no finished {task} result of {who} on {kind} data"
        return {"delta": None, "ci": None, "significant": None, "n_seeds": 0, "note": note}
    first = mine[0]
    for r in [*mine[1:], *theirs]:
        if note := protocol_note(first, r):
            return {"delta": None, "ci": None, "significant": None, "n_seeds": 0, "note": note}
    return _delta_entry(pooled_paired_delta(mine, theirs, metric, resamples, seed))


def _deltas(
    cells: _Cells,
    model: str,
    baseline: str,
    video_model: str | None,
    video_baseline: str | None,
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """The ``deltas`` block of ``comparison``."""

    def delta(name: str, base: str, kind: str, task: str, metric: str) -> dict[str, Any]:
        return _delta(cells, name, base, kind, task, metric, resamples, seed)

    deltas = {
        "image_rsum": delta(model, baseline, "image", "retrieval", "rsum"),
        "image_probe_macro": delta(model, baseline, "image", "probe", "macro"),
        "video_zero_shot_rsum": delta(model, baseline, "video", "retrieval", "rsum"),
    }
    for kind in ("image", "video"):
        found = {m for r in cells.runs(model, kind, "probe") for m in r.metrics}
        for m in sorted(m for m in found if m.startswith("acc_")):
            deltas[f"{kind}_probe_{m[4:]}"] = delta(model, baseline, kind, "probe", m)
    if video_model is not None and video_baseline is not None:
        deltas["video_finetuned_rsum"] = delta(
            video_model, video_baseline, "video", "retrieval", "rsum"
        )
    return deltas


def _model_only(
    cells: _Cells, model: str, kind: str, metric: str, resamples: int, seed: int
) -> dict[str, Any]:
    """One ``model_only`` entry of ``comparison``: the model's pooled proofreading ``metric``."""
    mine = cells.runs(model, kind, "proofread")
    if not mine:
        note = f"no finished proofread result of {model} on {kind} data"
        return {"value": None, "ci": None, "n_seeds": 0, "note": note}
    try:
        pooled = pool_records(mine, resamples, seed)
    except ValueError as exc:
        return {"value": None, "ci": None, "n_seeds": len(mine), "note": str(exc)}
    ci = pooled.intervals.get(metric)
    ci = [float(c) for c in ci] if isinstance(ci, (list, tuple)) and len(ci) == 2 else None
    return {"value": _metric_value(pooled, metric), "ci": ci, "n_seeds": len(mine)}


MODEL_ONLY = (  # (key, data kind, proofreading metric) of comparison's model_only block
    ("image_ed_f1", "image", "ed_f1"),
    ("image_ec_accuracy", "image", "ec_accuracy"),
    ("image_ed_flag_colour_binding", "image", "ed_flag_colour_binding"),
    ("image_ed_flag_colour_absent", "image", "ed_flag_colour_absent"),
    ("video_ed_f1", "video", "ed_f1"),
)
ABLATION_DELTAS = (("image_rsum", "retrieval", "rsum"), ("image_probe_macro", "probe", "macro"))


def _ablations(
    cells: _Cells, names: Sequence[str], model: str, baseline: str, resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Per ablation: its image deltas against the baseline and against the full model (paired
    over the training seeds they share), and its own image ED F1 / EC accuracy."""

    def deltas(name: str, other: str) -> dict[str, Any]:
        return {
            key: _delta(cells, name, other, "image", task, metric, resamples, seed)
            for key, task, metric in ABLATION_DELTAS
        }

    return {
        name: {
            "seeds": sorted(s for s in cells.seeds(name) if s is not None),
            f"minus_{baseline}": deltas(name, baseline),
            f"minus_{model}": deltas(name, model),
            "model_only": {
                key: _model_only(cells, name, kind, metric, resamples, seed)
                for key, kind, metric in MODEL_ONLY[:2]
            },
        }
        for name in names
    }


def comparison(
    records: Sequence[Result],
    model: str,
    baseline: str,
    video_model: str | None = None,
    video_baseline: str | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    ablations: Sequence[str] = (),
) -> dict[str, Any]:
    """The headline comparison of a benchmark, as ``comparison.json`` holds it.

    ``deltas`` (``model - baseline``, pooled over common training seeds with
    ``pooled_paired_delta``): ``image_rsum``, ``image_probe_macro``, ``video_zero_shot_rsum``,
    ``image_probe_<category>`` and ``video_probe_<category>`` per probe category, and with a
    video pair ``video_finetuned_rsum`` (``video_model - video_baseline``). ``model_only``: the
    model's proofreading ``image_ed_f1``, ``image_ec_accuracy``, the ED head's detection rate
    of colour edits whose new colour is on another object (``image_ed_flag_colour_binding``) or
    absent (``..._absent``), and ``video_ed_f1`` (pooled means). ``ablations`` (with names):
    each one's ``image_rsum`` and ``image_probe_macro`` deltas against the baseline
    (``minus_<baseline>``) and the full model (``minus_<model>``), and its ED F1 / EC accuracy.
    Image and video data are told apart by ``modality``; with several datasets of one
    kind, the first by name where the model has a retrieval result is used. ``toy`` is true
    where a compared model's results come from a reduced run (--quick or --limit).
    """
    cells = _Cells.of(records, model)
    deltas = _deltas(cells, model, baseline, video_model, video_baseline, resamples, seed)
    common = cells.seeds(model) & cells.seeds(baseline)
    out: dict[str, Any] = {
        "baseline": baseline,
        "model": model,
        "seeds": sorted(s for s in common if s is not None),
    }
    if video_model is not None:
        out |= {"video_baseline": video_baseline, "video_model": video_model}
    out["datasets"] = {k: "/".join(v) if v else None for k, v in cells.where.items()}
    named = {model, baseline, video_model, video_baseline, *ablations}
    # a --quick or --limit run: its deltas are a smoke test, not a benchmark's finding
    out["toy"] = any(r.toy for k, rs in cells.groups.items() if k[0] in named for r in rs)
    out["deltas"] = deltas
    out["model_only"] = {
        name: _model_only(cells, model, kind, metric, resamples, seed)
        for name, kind, metric in MODEL_ONLY
    }
    if ablations:
        out["ablations"] = _ablations(cells, ablations, model, baseline, resamples, seed)
    return out
