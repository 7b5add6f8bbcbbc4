"""Bad flags: out-of-range integers, unknown names, incompatible combinations. Each is an
argparse usage error or one ``vilem: error:`` line naming the flag, before any work."""

from __future__ import annotations

import pytest
from faults_cases import Case, check, params


def eval_with(*more, dataset="synthetic"):
    def setup(ctx):
        argv = ctx.eval(dataset, ctx.base.synthetic, *more)
        return _last_wins(argv, more)

    return setup


def _last_wins(argv: list, more: tuple) -> list:
    """Drop the default ``--workers 0`` / ``--bootstrap 0`` when the case sets that flag."""
    for flag in ("--workers", "--bootstrap"):
        if flag in more:
            i = argv.index(flag)
            del argv[i : i + 2]
    return argv


def command(*argv):
    return lambda ctx: [a.format(syn=ctx.base.synthetic, dir=ctx.dir) for a in argv]


def _train_lm_steps(ctx):
    return ["train-lm", "--root", ctx.base.synthetic, "--out", ctx.dir / "mlm", "--steps", "0"]


CASES = [
    Case("flag-frames-zero", "--frames 0", "usage error naming --frames",
         eval_with("--frames", "0", dataset="synthetic-video"), usage=True, words=("--frames",)),
    Case("flag-frames-negative", "--frames -3", "usage error naming --frames",
         eval_with("--frames", "-3", dataset="synthetic-video"), usage=True, words=("--frames",)),
    Case("flag-batch-size-zero", "--batch-size 0", "usage error naming --batch-size",
         eval_with("--batch-size", "0"), usage=True, words=("--batch-size",)),
    Case("flag-workers-negative", "--workers -1", "usage error naming --workers",
         eval_with("--workers", "-1"), usage=True, words=("--workers",)),
    Case("flag-bootstrap-negative", "--bootstrap -1", "usage error naming --bootstrap",
         eval_with("--bootstrap", "-1"), usage=True, words=("--bootstrap",)),
    Case("flag-batch-size-not-int", "--batch-size many", "usage error: invalid int value",
         eval_with("--batch-size", "many"), usage=True, words=("--batch-size", "many")),
    Case("flag-unknown-task", "--task nope", "usage error: invalid choice, lists the tasks",
         eval_with("--task", "nope"), usage=True, words=("nope", "retrieval")),
    Case("flag-unknown-sampling", "--sampling jumpy", "usage error: invalid choice",
         eval_with("--sampling", "jumpy"), usage=True, words=("jumpy", "uniform")),
    Case("flag-unknown-model", "--model randon", "refuses: did you mean 'random'",
         command("eval", "--model", "randon", "--dataset", "synthetic", "--root", "{syn}",
                 "--no-cache"), words=("randon", "did you mean 'random'")),
    Case("flag-unknown-dataset", "--dataset flikr30k", "refuses: did you mean 'flickr30k'",
         command("eval", "--model", "random", "--dataset", "flikr30k", "--no-cache"),
         words=("flikr30k", "did you mean 'flickr30k'")),
    Case("flag-unknown-split", "--split tset", "refuses: did you mean 'test'",
         eval_with("--split", "tset"), words=("tset", "did you mean 'test'")),
    Case("flag-save-embeddings-probe", "--save-embeddings with --task probe",
         "refuses: --save-embeddings needs --task retrieval", eval_with("--task", "probe"),
         usage=True, words=("--save-embeddings", "retrieval")),
    Case("flag-proofread-random", "--task proofread with a model without ED/EC heads",
         "refuses: the task needs a ViLEM model with heads",
         command("eval", "--model", "random", "--dataset", "synthetic", "--root", "{syn}",
                 "--task", "proofread", "--no-cache", "--workers", "0", "--quiet",
                 "--out", "{dir}/prev/result.json"), words=("proofread", "heads")),
    Case("flag-data-option-malformed", "--data-option seed (no =VALUE)",
         "refuses: expects KEY=VALUE", eval_with("--data-option", "seed"),
         words=("--data-option", "key=value")),
    Case("flag-train-lm-steps-zero", "vilem train-lm --steps 0", "usage error naming --steps",
         _train_lm_steps, usage=True, words=("--steps",)),
    Case("flag-unknown-command", "vilem evaluate", "usage error: invalid choice",
         command("evaluate", "--model", "random"), usage=True, words=("evaluate",)),
    Case("flag-stray-argument", "an extra positional after eval's flags",
         "usage error: unrecognized arguments", eval_with("surplus"), usage=True,
         words=("surplus",)),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_flag_fault(case, ctx, vilem):
    check(case, ctx, vilem)
