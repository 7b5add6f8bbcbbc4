"""The comparisons a report makes: which pairs (model vs its baseline), their paired deltas on
every compared table (retrieval, probes), and the words for them.

A pair is declared (``build_report(pairs=...)``, ``vilem report --pair MODEL:BASELINE``) or
follows from the baseline: every other model against it, except chance models (``setting:
chance``); a fine-tuned model whose start is not the baseline is compared with the baseline's own
fine-tune when there is exactly one (``vilem-video`` vs ``itc-video``, not vs ``itc``).

Deltas are the leaderboard's: ``model - baseline`` on a table's main metric (or a probe
category), paired over queries, pooled over the training seeds both have
(``compare.pooled_paired_delta``). The words never call a positive difference whose interval
includes 0 a loss: it is "no significant difference".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vilem.errors import ConfigError
from vilem.eval.tasks import TASKS
from vilem.metrics.info import find_metric
from vilem.registry import closest
from vilem.report.compare import Delta, modality, pooled_paired_delta
from vilem.report.lineage import FINE_TUNED, chance_models, fine_tune_parents, setting_of
from vilem.report.tables import Row, Table, build_tables, models_in
from vilem.results import Result

SIG_MARK = "†"


@dataclass(frozen=True)
class Pair:
    model: str
    baseline: str

    @property
    def label(self) -> str:
        return f"{self.model} − {self.baseline}"


def check_pairs(records: Sequence[Result], pairs: Sequence[tuple[str, str]]) -> list[Pair]:
    """Declared pairs as ``Pair``; ConfigError for a name no result has or a model compared
    with itself. Repeats are dropped."""
    names = models_in(records)
    out: list[Pair] = []
    for model, baseline in pairs:
        for name in (model, baseline):
            if name not in names:
                raise ConfigError(
                    f"unknown model {name!r} in pair {model}:{baseline}{closest(name, names)}; "
                    f"models in the results: {', '.join(names)}"
                )
        if model == baseline:
            raise ConfigError(f"pair {model}:{baseline} compares a model with itself")
        if Pair(model, baseline) not in out:
            out.append(Pair(model, baseline))
    return out


def default_pairs(records: Sequence[Result], baseline: str | None) -> list[Pair]:
    """Every model against ``baseline`` (see the module docstring); none without a baseline."""
    if baseline is None:
        return []
    chance, parents = chance_models(records), fine_tune_parents(records)
    settings = {r.model.name: setting_of(r) for r in records}
    base_tunes = [c for c, p in parents.items() if p == baseline]
    out = []
    for name in models_in(records):
        if name == baseline or name in chance:
            continue
        ref = baseline
        tuned = settings.get(name) == FINE_TUNED and parents.get(name) not in (None, baseline)
        if tuned and len(base_tunes) == 1:
            ref = base_tunes[0]
        out.append(Pair(name, ref))
    # the method against the baseline first, then fine-tunes, then the baseline's own fine-tunes
    return sorted(out, key=lambda p: (p.model in base_tunes, settings.get(p.model) == FINE_TUNED,
                                      p.model))  # fmt: skip


# ----------------------------------------------------------------------------- deltas


@dataclass
class Comparisons:
    """The pairs' deltas on every compared table (one per dataset, split, task and protocol),
    each computed once."""

    records: Sequence[Result]
    pairs: list[Pair]
    tables: list[Table] = field(default_factory=list)
    _cache: dict[tuple, Delta | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        compared = [t for t, spec in TASKS.items() if spec.compared]
        records = list(self.records)
        self.tables = [t for t in build_tables(records) if t.task in compared] if records else []

    @staticmethod
    def row(table: Table, name: str) -> Row | None:
        return next((r for r in table.rows if r.name == name and r.status == "ok"), None)

    def delta(self, pair: Pair, table: Table, metric: str | None = None) -> Delta | None:
        """``pair.model - pair.baseline`` on ``metric`` (the table's main metric by default);
        None when either has no finished result in the table."""
        metric = metric or table.main or ""
        key = (pair, id(table), metric)
        if key not in self._cache:
            mine, theirs = self.row(table, pair.model), self.row(table, pair.baseline)
            both = mine is not None and theirs is not None
            self._cache[key] = pooled_paired_delta(mine.runs, theirs.runs, metric) if both else None
        return self._cache[key]

    def columns(self) -> list[Table]:
        """The tables where some pair has a delta on the main metric: per task, image data
        before video data."""
        tasks = {t: i for i, t in enumerate(TASKS)}

        def key(t: Table) -> tuple:
            first = next((r.record for r in t.rows if r.record is not None), None)
            return tasks.get(t.task, len(tasks)), first is not None and modality(first) == "video"

        found = [t for t in self.tables if any(self.delta(p, t) is not None for p in self.pairs)]
        return sorted(found, key=key)

    def pairs_in(self, table: Table) -> list[Pair]:
        return [p for p in self.pairs if self.delta(p, table) is not None]


# ----------------------------------------------------------------------------- words


def _num(x: float, digits: int = 1) -> str:
    return f"{x:+.{digits}f}".replace("-", "−")


def format_delta(d: Delta | None, digits: int = 1) -> str:
    """``+2.1 [−4.3, +8.3]``; bold with ``†`` when the interval excludes 0; ``—`` for none."""
    if d is None or d.value is None:
        return "—"
    if d.lo is None or d.hi is None:
        return f"{_num(d.value, digits)} [n/a]"
    text = f"{_num(d.value, digits)} [{_num(d.lo, digits)}, {_num(d.hi, digits)}]"
    return f"**{text} {SIG_MARK}**" if d.significant else text


def verdict(d: Delta) -> str:
    """``significantly better``, ``significantly worse``, ``no significant difference`` or
    ``untested`` (no interval): the metric's direction decides better and worse."""
    if d.value is None or d.significant is None:
        return "untested"
    if not d.significant:
        return "no significant difference"
    return "significantly better" if d.better else "significantly worse"


def metric_label(metric: str) -> str:
    if metric == "macro":
        return "probe macro"
    if metric.startswith("acc_"):
        return metric[4:].replace("_bal", " (word-balanced)")
    spec = find_metric(metric)
    return spec.display if spec else metric


def column_label(table: Table, metric: str | None = None) -> str:
    where = f"{table.dataset}/{table.split}" if table.split else table.dataset
    text = f"{where} {metric_label(metric or table.main or '')}"
    return text + (f" [{table.variant}]" if table.variant else "")


def summary_line(comps: Comparisons, pair: Pair, columns: list[Table]) -> str:
    """One sentence per pair: where it is significantly better or worse, where not."""
    groups: dict[str, list[str]] = {}
    for t in columns:
        d = comps.delta(pair, t)
        if d is None or d.value is None:
            continue
        plain = format_delta(d).replace("**", "").replace(f" {SIG_MARK}", "")
        text = f"{column_label(t)} ({plain})"
        groups.setdefault(verdict(d), []).append(text)
    order = ("significantly better", "significantly worse", "no significant difference",
             "untested")  # fmt: skip
    parts = [f"{v} on {', '.join(groups[v])}" for v in order if v in groups]
    if not parts:
        return f"**{pair.label}**: no table where both have a finished result."
    text = "; ".join(parts)
    return f"**{pair.label}**: {text[0].upper()}{text[1:]}."
