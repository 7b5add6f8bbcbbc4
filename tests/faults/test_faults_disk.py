"""A full disk: a small tmpfs mounted for the case (root and mount(8) needed, else skipped),
filled to the last byte. A write that cannot finish is one line naming the path and the
reason, and the previous file is byte-identical."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
from faults_cases import Case, check, params


def fill(folder, leave: int = 0) -> None:
    """Write zeros into ``folder`` until the file system is full, then free ``leave`` bytes
    (a page is enough for a 4 KiB pre-flight probe, not for the real write)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


def _full(size, copy, tail, leave=0):
    def setup(ctx):
        small = ctx.tmpfs("small", size)
        for name in copy:
            source = ctx.prev / name if name != "run" else ctx.base.train_run
            target = small / name
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        argv = tail(ctx, small)
        fill(small, leave)
        return argv

    return setup


def _eval(what):
    def tail(ctx, small):
        argv = ctx.eval("synthetic", ctx.base.synthetic, out=None)
        return argv + (["--out", small / "result.json"] if what == "out" else
                       ["--save-embeddings", small / "emb"])  # fmt: skip

    return tail


def _resume(ctx, small):
    return ["train", "--config", ctx.base.recipe, "--out", small / "run", "--resume", "--quiet"]


NO_SPACE = ("no space", "enospc")
CASES = [
    Case("disk-full-result", "eval --out over a previous result on a full file system",
         "refuses in one line (no space left), previous result byte-identical, no temp file",
         _full("512k", ["result.json"], _eval("out")), words=("result.json", NO_SPACE)),
    Case("disk-full-embeddings", "--save-embeddings over previous ones on a full file system",
         "refuses in one line, previous embeddings byte-identical",
         _full("512k", ["emb"], _eval("emb")), words=("emb", NO_SPACE)),
    Case("disk-full-checkpoint", "a resumed training run checkpointing onto a full file system",
         "refuses in one line, the previous checkpoint byte-identical, no partial folder",
         _full("24m", ["run"], _resume), words=(NO_SPACE,)),
    Case("disk-nearly-full-embeddings", "--save-embeddings with one page left",
         "refuses in one line, previous embeddings byte-identical, no temp file",
         _full("512k", ["emb"], _eval("emb"), leave=4096), words=("emb", NO_SPACE)),
    Case("disk-nearly-full-checkpoint", "a resumed run whose checkpoint write runs out of space",
         "refuses in one line, the previous checkpoint byte-identical, the partial one removed",
         _full("24m", ["run"], _resume, leave=8192), words=(NO_SPACE,),
         may_change=("small/run/log.jsonl",)),  # the failed step's record; --resume trims it
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_full_disk(case, ctx, vilem):
    check(case, ctx, vilem)
