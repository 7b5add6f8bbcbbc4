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


def _cmd_cache(args: argparse.Namespace) -> int:
    from vilem.errors import ConfigError
    from vilem.eval.cache import cache_entries

    root = resolve_cache_dir(args.cache_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"the embedding cache {root} is a file, not a folder")
    entries = cache_entries(root)
    size = sum(p.stat().st_size for p in entries)
    arrays = sum(p.suffix == ".npy" for p in entries)
    others = len(list(root.iterdir())) - len(entries) if root.is_dir() else 0
    aside = f"; {others} other files there are not cache entries, left alone" if others else ""
    if args.action == "info":
        print(f"embedding cache: {root}" + ("" if root.is_dir() else " (not created yet)"))
        print(f"{arrays} entries, {size / 2**20:.1f} MiB{aside}")
        print("set $VILEM_CACHE or --cache-dir to move it; `vilem cache clear` empties it")
        return 0
    for p in entries:  # only the cache's own files: a mistyped folder loses nothing else
        p.unlink(missing_ok=True)
    print(f"removed {arrays} entries ({size / 2**20:.1f} MiB) from {root}{aside}")
    return 0


def _metrics_table(result) -> str:
    from tabulate import tabulate

    rows = []
    for key, value in result.metrics.items():
        if isinstance(value, (int, float)):
            ci = result.intervals.get(key)
            rows.append([key, f"{value:.2f}", f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""])
    return tabulate(rows, headers=["metric", "value", "95% CI"], disable_numparse=True)


EVAL_OUT = "runs/eval/{model}/{dataset}-{split}__{task}.json"


def eval_out_path(template: str, name: str, dataset: str, split: str, task: str) -> Path:
    """The result path ``template`` names (``{model}``, ``{dataset}``, ``{split}``, ``{task}``);
    the model name is made file-safe (``vilem:runs/x`` -> ``vilem-runs-x``)."""
    from vilem.errors import ConfigError

    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-.") or "model"
    try:
        return Path(template.format(model=safe, dataset=dataset, split=split, task=task))
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"--out template {template!r} is not valid: {exc}; "
            "use {model}, {dataset}, {split} and {task}"
        ) from exc


def _querybank(args: argparse.Namespace, options: dict) -> tuple[list[str] | None, str | None]:
    """QB-Norm's querybank: the captions of ``--querybank-split`` (training captions)."""
    if args.rerank != "qb-norm":
        return None, None
    from vilem.data import load_split
    from vilem.errors import ConfigError

    if args.querybank_split == args.split:
        raise ConfigError(
            f"--querybank-split {args.querybank_split} is the evaluated split: QB-Norm's "
            "querybank must be training captions, not the test queries"
        )
    bank = load_split(args.dataset, args.querybank_split, root=args.root, **dict(options))
    return bank.texts, f"{args.dataset}/{args.querybank_split} captions"


def _eval_options(args: argparse.Namespace, options: dict):
    from vilem.eval.engine import EvalOptions

    querybank, label = _querybank(args, options)
    return EvalOptions(
        rerank=args.rerank,
        i2t_ranking=args.i2t_ranking,
        querybank=querybank,
        querybank_label=label,
        batch_size=args.batch_size,
        num_workers=args.workers,
        frames=args.frames,
        sampling=args.sampling,
        skip_bad_media=args.skip_bad_media,
        bootstrap=args.bootstrap,
        seed=args.seed,
        recall_ks=tuple(args.recall_k),
        precision=args.precision,
        limit=args.limit,
        cache_dir=None if args.no_cache else resolve_cache_dir(args.cache_dir),
        quiet=args.quiet,
    )


def _cmd_eval(args: argparse.Namespace) -> int:
    from vilem.data import load_split
    from vilem.eval.engine import check_ranking_options, evaluate
    from vilem.models import load_model
    from vilem.results import ModelRecord, write_result

    name = args.name or args.model
    args.out = eval_out_path(str(args.out), name, args.dataset, args.split, args.task)
    _check_eval_outputs(args)
    check_ranking_options(args.task, args.rerank, args.i2t_ranking)  # before any data loads
    options = _options(args.data_option)
    opts = _eval_options(args, options)
    from vilem.dist import cleanup, init_distributed

    # under torchrun each rank encodes its shard; rank 0 prints and writes the result
    info = init_distributed(args.device)
    try:
        split = load_split(args.dataset, args.split, root=args.root, **dict(options))
        model = load_model(args.model, device=str(info.device))
        result = evaluate(
            model, split, args.task, opts,
            record=ModelRecord(name=name, spec=args.model),
            data_options=options,
            save_embeddings_dir=args.save_embeddings,
        )  # fmt: skip
    finally:
        cleanup()
    if not info.is_main:
        return 0
    counts = result.dataset.counts
    limited = f", first {opts.limit} only (--limit)" if opts.limit else ""
    print(
        f"{name} on {args.dataset}/{args.split} ({counts['items']} items, "
        f"{counts['texts']} texts, {counts['skipped_items']} skipped{limited}) - {args.task}"
    )
    print(_metrics_table(result))
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
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key] = value  # not YAML (a glob, an @file): the string as written
    return out


def resolve_cache_dir(value: str | None) -> Path:
    from vilem.eval.cache import default_cache_dir

    return Path(value) if value else default_cache_dir()


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from vilem.eval.engine import PRECISIONS, SAMPLINGS, EvalOptions
    from vilem.eval.rerank import RERANKERS
    from vilem.eval.tasks import task_names
    from vilem.metrics.ranking import I2T_RANKINGS

    d = EvalOptions()
    p = sub.add_parser("eval", help="evaluate a model on a dataset split")
    p.add_argument(
        "--model", required=True,
        help="model spec: random, hf-clip:DIR, vilem:DIR, py:module:attr (see `vilem models`)",
    )  # fmt: skip
    p.add_argument("--name", help="the model's name in the result and tables (default: the spec)")
    p.add_argument("--dataset", required=True, help="dataset name (see `vilem datasets`)")
    p.add_argument("--root", help="dataset root (default: datasets/<name> or $VILEM_DATA/<name>)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--data-option", action="append", default=[], metavar="KEY=VALUE",
        help="adapter option, e.g. annotation=dataset_coco.json (repeatable)",
    )  # fmt: skip
    p.add_argument("--task", default="retrieval", choices=task_names())
    p.add_argument(
        "--out", default=EVAL_OUT, metavar="FILE",
        help="where the JSON result goes; {model}, {dataset}, {split}, {task} are filled in",
    )  # fmt: skip
    p.add_argument("--save-embeddings", type=Path, metavar="DIR", help="write .npy embeddings")
    p.add_argument("--skip-bad-media", action="store_true", help="skip missing/corrupt media")
    p.add_argument(
        "--limit", type=positive_int, metavar="N",
        help="only the first N items, for a quick look (marked in the result)",
    )  # fmt: skip
    p.add_argument(
        "--recall-k", type=positive_int, nargs="+", default=list(d.recall_ks), metavar="K",
        help="the recall@K levels reported (RSUM sums them)",
    )  # fmt: skip
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS, help="encoding dtype")
    p.add_argument(
        "--rerank", choices=RERANKERS,
        help="re-rank retrieval with dual softmax or QB-Norm: reported as its own protocol "
        "(default: plain similarities)",
    )  # fmt: skip
    p.add_argument(
        "--i2t-ranking", default=d.i2t_ranking, choices=I2T_RANKINGS,
        help="item->text: rank each item's texts among all texts, or 'grouped': rank the items "
        "by their best text, as CLIP4Clip's multi-caption video->text (its own protocol)",
    )  # fmt: skip
    p.add_argument(
        "--querybank-split", default="train", metavar="SPLIT",
        help="QB-Norm's querybank: the captions of this split (never the evaluated one)",
    )  # fmt: skip
    p.add_argument(
        "--bootstrap", type=nonnegative_int, default=d.bootstrap,
        help="resamples for 95%% CIs (0: off)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument(
        "--workers", type=nonnegative_int, default=d.num_workers, help="data-loading processes"
    )
    p.add_argument("--frames", type=positive_int, default=d.frames, help="frames sampled per video")
    p.add_argument("--sampling", default=d.sampling, choices=SAMPLINGS)
    p.add_argument("--seed", type=nonnegative_int, default=d.seed)
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    p.add_argument("--cache-dir", help="embedding cache (default: $VILEM_CACHE or ~/.cache/vilem)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_eval)


def _no_default(value: object) -> bool:
    return value is None or value is False or value == argparse.SUPPRESS or value == []


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default, unless it has none or its text already says."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            _no_default(default)
            or "default" in text
            or action.option_strings == []
            and action.nargs == 0
        ):
            return text
        return f"{text} (default: %(default)s)".strip()

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and action.option_strings and not _no_default(action.default):
            action.help = "(default: %(default)s)"  # a bare option still shows its default
        return super()._format_action(action)


class _Parser(argparse.ArgumentParser):
    """argparse with a did-you-mean for a mistyped flag, printed with the (sub)command's own
    usage."""

    def unknown(self, extra: list[str]) -> None:
        from vilem.registry import closest

        known = sorted(self._option_string_actions)
        hints = [closest(a.split("=")[0], known) for a in extra if a.startswith("-")]
        self.error(f"unrecognized arguments: {' '.join(extra)}{''.join(h for h in hints if h)}")


def build_parser() -> argparse.ArgumentParser:
    from vilem import __version__

    parser = _Parser(
        prog="vilem", description="Train and benchmark dual-encoder retrieval models (ViLEM)."
    )
    parser.add_argument("--version", action="version", version=f"vilem {__version__}")
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
    p = sub.add_parser("cache", help="show or empty the embedding cache")
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--cache-dir", help="embedding cache (default: $VILEM_CACHE or ~/.cache/vilem)")
    p.set_defaults(func=_cmd_cache)
    from vilem.bench import cli as bench_cli
    from vilem.report import cli as report_cli
    from vilem.train import cli as train_cli

    for mod in (train_cli, bench_cli, report_cli):
        mod.add_parsers(sub)
    for command in sub.choices.values():  # every --help shows the defaults
        command.formatter_class = _Help
    return parser


def _is_override(arg: str) -> bool:
    return not arg.startswith("-") and "=" in arg


def _quiet_libraries() -> None:
    """No progress bars or advice from Hugging Face libraries: vilem prints its own progress."""
    for key, value in (
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
    ):
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    from vilem.threads import configure

    configure()  # before torch loads: threads = the CPUs we may use; how idle ones wait
    _quiet_libraries()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `key=value` overrides may follow options (`vilem train --config X --out Y lr=...`), which
    # plain argparse refuses once the positionals are consumed
    if extra and hasattr(args, "overrides") and all(_is_override(a) for a in extra):
        args.overrides = list(args.overrides or []) + extra
    elif extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].unknown(extra)
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
