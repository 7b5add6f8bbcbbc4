"""The catalogue is what docs/reliability.md lists, and ``python -m vilem`` from the fork server
behaves as the plain interpreter does."""

from __future__ import annotations

import re
from pathlib import Path

from faults_catalogue import all_ids
from faults_runner import popen

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def test_docs_list_every_case_and_no_other():
    ids = all_ids()
    assert len(ids) >= 60 and len(ids) == len(set(ids))
    listed = re.findall(r"\| `([a-z0-9-]+)` \|$", DOC.read_text(encoding="utf-8"), re.M)
    assert sorted(listed) == sorted(ids)


def test_fork_server_runs_match_plain_subprocess_runs(ctx, vilem):
    """One good and one bad run, each by both routes: same exit code, stdout and stderr."""
    good = ctx.eval("synthetic", ctx.base.synthetic, out=None)
    bad = ctx.eval("synthetic", ctx.base.synthetic, "--split", "tset", out=None)
    plain = [popen(argv, ctx.dir) for argv in (good, bad)]
    plain = [(*p.communicate(timeout=120), p.returncode) for p in plain]
    plain = [(rc, out, err) for out, err, rc in plain]
    forked = vilem.run_many([(good, ctx.dir, None), (bad, ctx.dir, None)])
    for (rc, out, err), f in zip(plain, forked, strict=True):
        assert (rc, out, err) == (f.rc, f.stdout, f.stderr)
    assert plain[0][0] == 0 and plain[1][0] == 2
