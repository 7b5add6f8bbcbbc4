"""Unusable output locations: each is refused with one line naming the path before any work (no
metrics computed, nothing trained), and nothing already there is touched."""

from __future__ import annotations

import os

import pytest
from faults_build import write
from faults_cases import Case, check, params


def no_work(ctx, outcome):
    assert "rsum" not in outcome.stdout and "trained" not in outcome.stdout, outcome.stdout


def _read_only(ctx):
    """A read-only folder holding a previous result: a read-only tmpfs (root ignores chmod), a
    chmod 0555 folder for other users, else (root without mount) a path under a file."""
    if os.geteuid() != 0:
        folder = ctx.dir / "ro"
        write(folder / "result.json", (ctx.prev / "result.json").read_bytes())
        folder.chmod(0o555)
        ctx.cleanups.append(lambda: folder.chmod(0o755))
        return folder
    try:
        folder = ctx.tmpfs("ro", "256k")
    except pytest.skip.Exception:
        return ctx.prev / "result.json"  # as root without mount: a "folder" that is a file
    write(folder / "result.json", (ctx.prev / "result.json").read_bytes())
    ctx.remount_read_only(folder)
    return folder


def _eval(*, out=None, emb=None, cache=None):
    def setup(ctx):
        argv = ctx.eval("synthetic", ctx.base.synthetic, out=None)
        if out is not None:
            argv += ["--out", out(ctx)]
        if emb is not None:
            argv += ["--save-embeddings", emb(ctx)]
        if cache is not None:
            argv.remove("--no-cache")
            argv += ["--cache-dir", cache(ctx)]
        return argv

    return setup


def _ro_out(ctx):
    folder = _read_only(ctx)
    return _eval(out=lambda c: folder / "result.json")(ctx)


def _ro_cache(ctx):
    folder = _read_only(ctx)
    return _eval(cache=lambda c: folder / "cache", out=lambda c: c.prev / "result.json")(ctx)


def _command(*argv):
    return lambda ctx: [
        str(a).format(dir=ctx.dir, recipe=ctx.base.recipe, syn=ctx.base.synthetic) for a in argv
    ]


def _bench_spec(ctx):
    return ["bench", ctx.bench_spec(), "--out", ctx.prev / "result.json" / "bench", "--quiet"]


PREV = "prev/result.json"
CASES = [
    Case("out-is-directory", "--out names an existing folder (the previous embeddings)",
         "refuses before any work: names the path", _eval(out=lambda c: c.prev / "emb"),
         words=("prev/emb", ("directory", "folder")), then=no_work),
    Case("out-parent-is-file", "--out prev/result.json/r.json (its parent is a file)",
         "refuses before any work: names the path",
         _eval(out=lambda c: c.prev / "result.json" / "r.json"),
         words=(PREV, ("not a directory", "not a folder", "is a file")), then=no_work),
    Case("out-read-only-folder", "--out in a read-only folder",
         "refuses before any work: names the path", _ro_out,
         words=("result.json", ("read-only", "permission", "not a folder", "not a directory",
                                "cannot write")),
         then=no_work),
    Case("emb-is-file", "--save-embeddings names an existing file",
         "refuses before any work: names the path", _eval(emb=lambda c: c.prev / "result.json"),
         words=(PREV, ("not a directory", "not a folder", "is a file")), then=no_work),
    Case("emb-parent-is-file", "--save-embeddings under a file",
         "refuses before any work: names the path",
         _eval(emb=lambda c: c.prev / "result.json" / "emb"),
         words=(PREV, ("not a directory", "not a folder", "is a file")), then=no_work),
    Case("cache-dir-under-file", "--cache-dir under a file", "refuses before any work: names it",
         _eval(cache=lambda c: c.prev / "result.json" / "cache",
               out=lambda c: c.prev / "result.json"),
         words=(PREV, "cache"), then=no_work),
    Case("cache-dir-read-only", "--cache-dir in a read-only folder",
         "refuses before any work: names it", _ro_cache, words=("cache",), then=no_work),
    Case("leaderboard-out-directory", "vilem leaderboard --out names a folder",
         "refuses: names the path",
         _command("leaderboard", "{dir}/prev", "--out", "{dir}/prev/emb"),
         words=("prev/emb", ("directory", "folder"))),
    Case("report-out-is-file", "vilem report --out names a file", "refuses: names the path",
         _command("report", "{dir}/prev", "--out", "{dir}/prev/result.json"),
         words=(PREV, ("not a directory", "not a folder", "is a file", "exists"))),
    Case("train-out-is-file", "vilem train --out names a file", "refuses before training",
         _command("train", "--config", "{recipe}", "--out", "{dir}/prev/result.json", "--quiet"),
         words=(PREV,), then=no_work),
    Case("bench-out-under-file", "vilem bench --out under a file", "refuses before any cell runs",
         _bench_spec, words=(PREV,), then=no_work),
    Case("data-root-under-file", "vilem data synthetic --root under a file",
         "refuses before generating",
         _command("data", "synthetic", "--root", "{dir}/prev/result.json/syn"),
         words=(PREV,)),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_output_fault(case, ctx, vilem):
    check(case, ctx, vilem)
