"""The ``vilem`` command. Flags are parsed here, once, into explicit values passed inward;
user errors (VilemError) end as one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vilem.config import nonnegative_int, positive_int
from vilem.errors import VilemError, one_line


def _cmd_datasets(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from vilem.data import DATASETS

    rows = []
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        rows.append([name, cls.modality, ", ".join(cls.splits), cls.description])
    print(tabulate(rows, headers=["dataset", "modality", "splits", "description"]))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from vilem.models import MODELS

    rows = []
    for name in MODELS.names():
        doc = (MODELS.get(name).__doc__ or "").strip().splitlines()
        rows.append([name, doc[0] if doc else ""])
    print(tabulate(rows, headers=["model", "spec"]))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    import time

    from vilem.data.synthetic import SyntheticConfig, generate

    root = Path(args.root)
    if args.force or not (root / "manifest.json").is_file():  # a complete root is only read
        from vilem.io import check_writable

        check_writable(root, "dir", "--root")
    start = time.perf_counter()
    manifest = generate(Path(args.root), SyntheticConfig(), seed=args.seed, force=args.force)
    took = time.perf_counter() - start
    print(f"synthetic data in {args.root} (seed {args.seed}, hash {manifest.get('content_hash')})")
    print(f"ready in {took:.1f} s")
    return 0


def _metrics_table(result: dict) -> str:
    from tabulate import tabulate

    rows = []
    intervals = result.get("intervals", {})
    for key, value in result["metrics"].items():
        if isinstance(value, (int, float)):
            ci = intervals.get(key)
            rows.append([key, f"{value:.2f}", f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""])
    return tabulate(rows, headers=["metric", "value", "95% CI"], disable_numparse=True)


def _cmd_eval(args: argparse.Namespace) -> int:
    from vilem.data import load_split
    from vilem.eval.engine import EvalOptions, evaluate
    from vilem.models import load_model
    from vilem.results import write_result

    _check_eval_outputs(args)
    opts = EvalOptions(
        batch_size=args.batch_size,
        num_workers=args.workers,
        frames=args.frames,
        sampling=args.sampling,
        skip_bad_media=args.skip_bad_media,
        bootstrap=args.bootstrap,
        seed=args.seed,
        cache_dir=None if args.no_cache else resolve_cache_dir(args.cache_dir),
        quiet=args.quiet,
    )
    from vilem.dist import cleanup, init_distributed

    # under torchrun each rank encodes its shard; rank 0 prints and writes the result
    info = init_distributed(args.device)
    try:
        split = load_split(args.dataset, args.split, root=args.root, **_options(args.data_option))
        model = load_model(args.model, device=str(info.device))
        model_info = {"spec": args.model, **model.describe()}
        result = evaluate(
            model, model_info, split, args.task, opts, save_embeddings_dir=args.save_embeddings
        )
    finally:
        cleanup()
    if not info.is_main:
        return 0
    counts = result["dataset"]["counts"]
    print(
        f"{args.model} on {args.dataset}/{args.split} ({counts['items']} items, "
        f"{counts['texts']} texts, {counts['skipped_items']} skipped) - {args.task}"
    )
    print(_metrics_table(result))
    if args.out:
        write_result(args.out, result)
        print(f"result written to {args.out}")
    return 0


def _check_eval_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, output flags that cannot be honoured or written."""
    from vilem.errors import ConfigError
    from vilem.io import check_writable

    if args.save_embeddings is not None and args.task != "retrieval":
        raise ConfigError(
            f"--save-embeddings needs --task retrieval (task {args.task!r} saves no embeddings)"
        )
    if args.out is not None:
        check_writable(args.out, "file", "--out")
    if args.save_embeddings is not None:
        check_writable(args.save_embeddings, "dir", "--save-embeddings")
    if not args.no_cache:
        try:
            check_writable(resolve_cache_dir(args.cache_dir), "dir", "--cache-dir")
        except VilemError as exc:
            raise type(exc)(f"{exc} (or pass --no-cache)") from exc


def _options(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` flags -> adapter options (values parsed as YAML scalars)."""
    import yaml

    from vilem.errors import ConfigError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--data-option expects KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def resolve_cache_dir(value: str | None) -> Path:
    from vilem.eval.cache import default_cache_dir

    return Path(value) if value else default_cache_dir()


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from vilem.eval.tasks import task_names

    p = sub.add_parser("eval", help="evaluate a model on a dataset split")
    p.add_argument("--model", required=True, help="model spec: random, hf-clip:DIR, vilem:DIR")
    p.add_argument("--dataset", required=True, help="dataset name (see `vilem datasets`)")
    p.add_argument("--root", help="dataset root (default: datasets/<name> or $VILEM_DATA/<name>)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--data-option", action="append", default=[], metavar="KEY=VALUE",
        help="adapter option, e.g. annotation=dataset_coco.json (repeatable)",
    )  # fmt: skip
    p.add_argument("--task", default="retrieval", choices=task_names())
    p.add_argument("--out", type=Path, help="write the JSON result here")
    p.add_argument("--save-embeddings", type=Path, metavar="DIR", help="write .npy embeddings")
    p.add_argument("--skip-bad-media", action="store_true", help="skip missing/corrupt media")
    p.add_argument(
        "--bootstrap", type=nonnegative_int, default=1000, help="resamples for 95%% CIs (0: off)"
    )
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--workers", type=nonnegative_int, default=2, help="data-loading processes")
    p.add_argument("--frames", type=positive_int, default=12, help="frames sampled per video")
    p.add_argument("--sampling", default="uniform", choices=("uniform", "headtail", "random"))
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    p.add_argument("--cache-dir", help="embedding cache (default: $VILEM_CACHE or ~/.cache/vilem)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vilem", description="Train and benchmark dual-encoder retrieval models (ViLEM)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("datasets", help="list dataset adapters").set_defaults(func=_cmd_datasets)
    sub.add_parser("models", help="list model builders").set_defaults(func=_cmd_models)
    p = sub.add_parser("data", help="generate or verify the embedded synthetic dataset")
    p.add_argument("name", choices=("synthetic",))
    p.add_argument(
        "--root", default=str(Path(os.environ.get("VILEM_DATA", "datasets")) / "synthetic")
    )
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--force", action="store_true", help="regenerate even if up to date")
    p.set_defaults(func=_cmd_data)
    _add_eval(sub)
    from vilem.bench import cli as bench_cli
    from vilem.report import cli as report_cli
    from vilem.train import cli as train_cli

    for mod in (train_cli, bench_cli, report_cli):
        mod.add_parsers(sub)
    return parser


def _is_override(arg: str) -> bool:
    return not arg.startswith("-") and "=" in arg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `key=value` overrides may follow options (`vilem train --config X --out Y lr=...`), which
    # plain argparse refuses once the positionals are consumed
    if extra and hasattr(args, "overrides") and all(_is_override(a) for a in extra):
        args.overrides = list(args.overrides or []) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except VilemError as exc:
        print(f"vilem: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vilem: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
