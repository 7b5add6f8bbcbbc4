"""``vilem train`` and ``vilem train-lm``: parse flags once into typed values, then call the
library (``vilem.train.loop.train``, ``vilem.train.lm.train_lm``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vilem.config import nonnegative_int, positive_float, positive_int
from vilem.io import check_writable


def _cmd_train(args: argparse.Namespace) -> int:
    from vilem.dist import cleanup, init_distributed
    from vilem.train.config import load_config, resolve_config_path
    from vilem.train.loop import train

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / resolve_config_path(args.config).stem
    check_writable(out, "dir", "--out")
    info = init_distributed(cfg.device)
    try:
        summary = train(cfg, out, resume=args.resume, quiet=args.quiet, max_steps=args.max_steps)
    finally:
        cleanup()
    if info.is_main:
        last = {k: v for k, v in summary["last_log"].items() if isinstance(v, float)}
        memory = summary["peak_mem_gib"]
        print(
            f"trained {summary['steps']}/{summary['total_steps']} steps "
            f"({summary['samples_per_s']:.1f} samples/s"
            + (f", peak CUDA memory {memory:.2f} GiB" if memory is not None else "")
            + f") into {out}"
        )
        if last:
            print(json.dumps({k: round(v, 4) for k, v in last.items()}))
        if summary["model"]:
            root = f" --root {cfg.data.root}" if cfg.data.root else ""
            print(
                f"model: {summary['model']}\nevaluate: vilem eval --model vilem:{summary['model']}"
                f" --dataset {cfg.data.dataset}{root} --split test"
            )
    return 0


def _cmd_train_lm(args: argparse.Namespace) -> int:
    from vilem.data import load_split
    from vilem.train.lm import train_lm

    check_writable(args.out, "dir", "--out")
    split = load_split(args.dataset, args.split, args.root)
    out = train_lm(
        split.texts,
        args.out,
        tokenizer_path=args.tokenizer,
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        quiet=args.quiet,
    )
    info = json.loads((out / "vilem_lm.json").read_text())
    print(
        f"masked LM trained on {info['corpus_texts']} captions of {args.dataset}/{args.split}: "
        f"loss {info['first_loss']:.2f} -> {info['final_loss']:.2f} in {info['seconds']:.0f} s; "
        f"saved to {out}"
    )
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``train-lm`` to the ``vilem`` command."""
    p = subparsers.add_parser(
        "train",
        help="train a ViLEM / ITC dual encoder (works under torchrun)",
        description="Train from a YAML recipe (a file or a packaged name such as small-vilem), "
        "with key.sub=value overrides, e.g. optim.lr=3e-4 model.beta=0.5.",
    )
    p.add_argument("--config", required=True, help="recipe YAML file or packaged recipe name")
    p.add_argument("--out", help="output folder (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="stop (checkpointed) after this many steps in this call; resume later",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=_cmd_train)

    q = subparsers.add_parser(
        "train-lm",
        help="train the small masked LM that writes ViLEM's negatives",
        description="Train a small random-init BERT masked LM on a dataset's captions and save "
        "it as a transformers folder (point mlm_path at it).",
    )
    q.add_argument("--dataset", default="synthetic")
    q.add_argument("--root", default=None, help="dataset root (default: datasets/<name>)")
    q.add_argument("--split", default="train")
    q.add_argument("--out", required=True, help="output folder, e.g. runs/mlm-synthetic")
    q.add_argument("--tokenizer", default=None, help="tokenizer folder (default: packaged MiniLM)")
    q.add_argument("--steps", type=positive_int, default=600)
    q.add_argument("--batch-size", type=positive_int, default=64)
    q.add_argument("--lr", type=positive_float, default=1e-3)
    q.add_argument("--hidden", type=positive_int, default=128)
    q.add_argument("--layers", type=positive_int, default=2)
    q.add_argument("--heads", type=positive_int, default=2)
    q.add_argument("--seed", type=nonnegative_int, default=0)
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_cmd_train_lm)
