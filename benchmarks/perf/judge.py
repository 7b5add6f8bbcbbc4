"""The judging half of the performance suite: results of one pytest-benchmark run by variant,
and the checks (a measured figure against a target) that ``run_perf.py`` applies to them.

Every figure is a ratio of a candidate to a reference measured in the same run; the variants of
an interleaved case take turns round by round (``conftest.interleaved``), and a ratio is the
median over rounds of the ratio within a round.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GIB = 1 << 30


class Missing(Exception):
    """A benchmark a check needs has no result (skipped, failed or not run)."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


_ROUND = re.compile(r"^(?P<base>.+)\[(?P<variant>.+)-r\d+\]$")


def variant_key(test_name: str) -> str:
    """``test_x[variant-r3]`` (one round of an interleaved case) -> ``test_x[variant]``."""
    match = _ROUND.match(test_name)
    return f"{match['base']}[{match['variant']}]" if match else test_name


class Results:
    """The benchmarks of one run by variant (the rounds of an interleaved case pooled), with
    the outcome of the tests that left no benchmark."""

    def __init__(self, benchmarks: list[dict[str, Any]], outcomes: dict[str, dict[str, str]]):
        self.by_key: dict[str, list[dict[str, Any]]] = {}
        for bench in benchmarks:
            self.by_key.setdefault(variant_key(bench["name"]), []).append(bench)
        self.outcomes: dict[str, list[dict[str, str]]] = {}
        for name, outcome in outcomes.items():
            self.outcomes.setdefault(variant_key(name), []).append(outcome)

    def _get(self, key: str) -> list[dict[str, Any]]:
        outcomes = self.outcomes.get(key, [])
        failed = [o for o in outcomes if o["outcome"] == "failed"]
        if failed:  # one failed round makes the variant unusable
            raise Missing(f"error: {failed[0]['reason'] or 'failed'}")
        if key in self.by_key:
            return self.by_key[key]
        if not outcomes:
            raise Missing("not run")
        raise Missing(f"skipped: {outcomes[0]['reason']}")

    @staticmethod
    def _time(bench: dict[str, Any], stat: str, field: str | None = None) -> float:
        """A benchmark's time, or the number ``field`` of its extra_info (e.g. CPU seconds). A
        child-process benchmark reports its own timing of the call under ``seconds``."""
        extra = bench.get("extra_info", {})
        if field is not None:
            return float(extra[field])
        return float(extra["seconds"]) if "seconds" in extra else float(bench["stats"][stat])

    def seconds(self, key: str, field: str | None = None) -> float:
        """The fastest round of the variant (or the smallest ``field`` over its rounds)."""
        return min(self._time(b, "min", field) for b in self._get(key))

    def median(self, key: str, field: str | None = None) -> float:
        """The median over the variant's rounds of its time (or of ``field``)."""
        return float(statistics.median(self._time(b, "min", field) for b in self._get(key)))

    def per_round(self, key: str, field: str | None = None) -> dict[int, float]:
        """Round index -> time (or ``field``) in that round, for an interleaved variant; {}
        for a variant that was not interleaved."""
        out = {}
        for bench in self._get(key):
            match = _ROUND.match(bench["name"])
            if match is None:
                return {}
            out[int(bench["name"].rsplit("-r", 1)[1][:-1])] = self._time(bench, "min", field)
        return out

    def paired(
        self,
        fn: Callable[..., float],
        keys: list[str],
        how: str = "paired",
        fields: list[str | None] | None = None,
    ) -> float:
        """``fn`` of the variants' times (or of their ``fields``, one per key). ``paired``: the
        median over rounds of ``fn`` of the values of one round (variants that took turns saw
        the same machine state), falling back to ``min`` for variants that were not
        interleaved; ``min``: ``fn`` of the fastest rounds."""
        fields = fields or [None] * len(keys)
        if how == "paired":
            rounds = [self.per_round(k, f) for k, f in zip(keys, fields, strict=True)]
            common = set.intersection(*(set(r) for r in rounds)) if all(rounds) else set()
            if common:
                return float(statistics.median(fn(*(r[i] for r in rounds)) for i in common))
        return fn(*(self.seconds(k, f) for k, f in zip(keys, fields, strict=True)))

    def ratio(
        self, num: str, den: str, how: str = "paired", fields: tuple[str | None, ...] = (None, None)
    ) -> float:
        return self.paired(lambda a, b: a / b, [num, den], how, list(fields))

    def rounds(self, key: str) -> int:
        return sum(int(b["stats"]["rounds"]) for b in self._get(key))

    def extras(self, key: str) -> list[dict[str, Any]]:
        """extra_info of every round of the variant."""
        return [b.get("extra_info", {}) for b in self._get(key)]

    def extra(self, key: str) -> dict[str, Any]:
        """extra_info of the variant's fastest round."""
        return min(self._get(key), key=lambda b: self._time(b, "min")).get("extra_info", {})


@dataclass
class Check:
    label: str
    target: str  # as printed; "" for an informational figure
    measure: Callable[[Results, str], float]  # (results, "paired" or "min") -> value
    fmt: Callable[[float], str]
    ok: Callable[[float], bool] | None = None  # None: informational, no verdict


@dataclass
class Case:
    name: str
    title: str
    tests: tuple[str, ...]
    checks: list[Check]
    details: Callable[[Results], dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)


def fmt_x(value: float) -> str:
    return f"{value:.2f}x"


def fmt_gib(value: float) -> str:
    return f"{value / GIB:.2f} GiB ({value / (1 << 20):.0f} MiB)"


def ratio(
    num: str, den: str, fields: tuple[str | None, ...] = (None, None)
) -> Callable[[Results, str], float]:
    return lambda r, how: r.ratio(num, den, how, fields)


def judge(case: Case, results: Results) -> dict[str, Any]:
    """Every check of a case: value, printed figure, target and status."""
    rows = []
    for check in case.checks:
        row: dict[str, Any] = {"check": check.label, "target": check.target}
        try:
            value = check.measure(results, "paired")
            fastest = check.measure(results, "min")
        except Missing as exc:
            row.update(value=None, figure=exc.status, status=exc.status.split(":")[0])
        else:
            row.update(value=value, figure=check.fmt(value), min_based=fastest)
            if check.ok is None:
                row["status"] = "info"
            else:
                row["status"] = "met" if check.ok(value) else "MISSED"
        rows.append(row)
    details: dict[str, Any] | str | None = None
    if case.details is not None:
        try:
            details = case.details(results)
        except Missing as exc:
            details = exc.status
    return {
        "case": case.name,
        "title": case.title,
        "checks": rows,
        "details": details,
        "notes": case.notes,
    }
