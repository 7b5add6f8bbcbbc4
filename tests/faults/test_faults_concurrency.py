"""Two runs at once on one folder: both finish (exit 0) or the second reports the cell as busy;
every result stays valid JSON and no temp file is left to pass for one."""

from __future__ import annotations

import re

import pytest
from faults_cases import Case, params
from faults_runner import valid_json, visible_results

SUMMARY = re.compile(r"(\d+) run, (\d+) already done, (\d+) failed, .* (\d+) in progress")


def _two_evals(ctx, vilem):
    out = ctx.prev / "result.json"
    runs = []
    for seed in ("1", "2"):
        argv = ctx.eval("synthetic", ctx.base.synthetic, "--seed", seed, "--cache-dir",
                        ctx.dir / "cache", out=out)  # fmt: skip
        runs.append((argv, ctx.dir, None))
    outcomes = vilem.run_many(runs)
    for o in outcomes:
        assert o.rc == 0 and "Traceback" not in o.stderr, str(o)
    result = valid_json(out)
    assert result["schema"] == "vilem.result" and result["protocol"]["seed"] in (1, 2)
    assert sorted(p.name for p in ctx.prev.iterdir()) == ["ckpt", "emb", "result.json"]


def _two_benches(ctx, vilem):
    spec = ctx.bench_spec("{r: {spec: random}, r1: {spec: 'random:1'}}", "[retrieval, probe]")
    outcomes = vilem.run_many([(["bench", spec, "--quiet"], ctx.dir, None)] * 2)
    counted = []
    for o in outcomes:
        assert o.rc == 0 and "Traceback" not in o.stderr + o.stdout, str(o)
        found = SUMMARY.search(o.stdout)
        assert found, o.stdout
        run, done, failed, busy = map(int, found.groups())
        assert failed == 0 and run + done + busy == 4, o.stdout
        counted.append(run)
    assert sum(counted) >= 4, "a cell was neither run nor finished"
    cells = visible_results(ctx.dir / "bench" / "results")
    assert len(cells) == 4 and all(valid_json(c)["status"] == "ok" for c in cells)
    assert not list((ctx.dir / "bench").rglob("*.lock")), "a lock was left behind"


def _two_trains(ctx, vilem):
    out = ctx.dir / "newrun"
    argv = ["train", "--config", ctx.base.recipe, "--out", out, "--quiet", "--max-steps", "1"]
    outcomes = vilem.run_many([(argv, ctx.dir, None)] * 2)
    codes = sorted(o.rc for o in outcomes)
    for o in outcomes:
        assert "Traceback" not in o.stderr + o.stdout, str(o)
    assert codes in ([0, 0], [0, 2]), [str(o) for o in outcomes]
    for o in outcomes:
        if o.rc == 2:
            lines = [x for x in o.stderr.splitlines() if x.strip()]
            assert len(lines) == 1 and lines[0].startswith("vilem: error:"), str(o)
    state = valid_json(out / "checkpoint" / "train_state.json")
    assert state["step"] == 1 and not list(out.glob("*.tmp-*"))


CASES = [
    Case("conc-eval-same-out", "two vilem eval at once writing the same --out (and one cache)",
         "both exit 0; the file is one whole result, no temp files", _two_evals),
    Case("conc-bench-same-folder", "two vilem bench at once on one results folder",
         "both exit 0; each cell is run once or reported busy/done; all results valid",
         _two_benches),
    Case("conc-train-same-out", "two vilem train at once into one --out",
         "both exit 0 or the second refuses in one line; one whole checkpoint", _two_trains),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_concurrent_runs(case, ctx, vilem):
    case.setup(ctx, vilem)
