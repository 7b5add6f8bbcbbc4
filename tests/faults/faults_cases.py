"""A catalogue case and the checks every case gets.

A case prepares its folder (``setup(ctx) -> argv``), runs ``python -m vilem ARGV`` once and
asserts: the exit code; for a failure exactly one ``vilem: error: ...`` line on stderr (or
argparse's usage block and one ``error:`` line) holding the case's key words; no traceback
anywhere; every file that was in the case folder before the run (the previous result,
embeddings and checkpoint, and the inputs) byte-identical afterwards; and for a failure no temp
file left behind. ``then(ctx, outcome)`` adds case-specific checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from faults_runner import (
    Outcome,
    assert_unchanged,
    case_env,
    error_line,
    has,
    new_files,
    snapshot,
)


@dataclass(frozen=True)
class Case:
    id: str
    fault: str  # the input or fault, as the docs table says it
    does: str  # what vilem does about it
    setup: Callable[[Any], list]
    code: int = 2
    words: tuple = ()  # in the error line; a tuple inside means "one of these"
    usage: bool = False  # an argparse error is acceptable
    then: Callable[[Any, Outcome], None] | None = None
    timeout: float = 60
    may_change: tuple[str, ...] = ()  # files (relative to the case folder) allowed to change

    def param(self):
        return pytest.param(self, id=self.id)


def params(cases: list[Case]) -> list:
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids repeat"
    return [c.param() for c in cases]


def check(case: Case, ctx, vilem) -> Outcome:
    argv = case.setup(ctx)
    before = snapshot(ctx.dir)
    outcome = vilem.run(argv, ctx.dir, case_env(ctx.dir, ctx.env), timeout=case.timeout)
    print(f"[{case.id}] rc={outcome.rc} {outcome.seconds:.2f}s :: {outcome.stderr.strip()[-300:]}")
    assert outcome.rc == case.code, f"exit code {outcome.rc}, expected {case.code}\n{outcome}"
    if case.code == 0:
        assert "Traceback" not in outcome.stderr + outcome.stdout, str(outcome)
        assert "vilem: error:" not in outcome.stderr, str(outcome)
    else:
        line = error_line(outcome, usage=case.usage)
        has(line, *case.words, *ctx.words)
    kept = {k: v for k, v in before.items() if k not in case.may_change}
    assert_unchanged(kept, snapshot(ctx.dir))
    if case.code != 0:
        debris = [p for p in new_files(before, ctx.dir) if ".tmp" in p]
        assert not debris, f"temp files left behind: {debris}"
    if case.then is not None:
        case.then(ctx, outcome)
    return outcome
