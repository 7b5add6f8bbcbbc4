"""One workload of the main job in a fresh process, timed in wall and CPU seconds; and the
competing CPU-bound process the shared-machine case runs beside it.

Run by ``test_contention_perf.py``; prints one JSON line.

    python benchmarks/perf/contention_child.py --work train --root DATA --steps 6
    python benchmarks/perf/contention_child.py --work eval --root DATA
    python benchmarks/perf/contention_child.py --compete python      # spins until killed
    python benchmarks/perf/contention_child.py --compete torch       # a 2-thread matmul loop

Workloads: ``train`` is the training step of the small recipe (forward, backward, clip, AdamW;
full ViLEM, or ``--recipe small-itc``), built as ``test_model_perf.py`` builds it; ``eval`` is
one evaluation cell as ``vilem bench`` runs it: retrieval with 1,000 bootstrap resamples of a
random-init small ViLEM model on the synthetic test split (encoding, metrics, intervals).

``--setup vilem`` (the default) applies ``vilem.threads.configure()`` first, as the ``vilem``
command does at start (a fixed count; idle threads sleep if the CPUs are busy at start);
``--setup governed`` does the same with the opt-in count that follows the load
(``VILEM_ADAPTIVE_THREADS=1``: a training step then ends with ``vilem.threads.tick()``, as in
the training loop; evaluation ticks inside); ``--setup none`` leaves the libraries' defaults
(the state before the fix). The environment the parent passes (OMP_WAIT_POLICY,
OMP_NUM_THREADS, ...) is read by the libraries when they load, so each variant is its own
process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, all its threads (children excluded)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compete(kind: str) -> None:
    """Burn CPU until killed: a pure-Python loop (one core) or torch matmuls (two threads)."""
    if kind == "python":
        x = 0
        while True:
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    import torch

    torch.set_num_threads(2)
    a = torch.randn(256, 256)
    while True:
        a = torch.tanh(a @ a)


def _train_work(root: Path, steps: int, recipe: str):
    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from conftest import attach_random_mlm, build_vilem, train_settings

    from vilem import threads
    from vilem.data import load_split
    from vilem.train.config import load_config
    from vilem.train.optim import adamw, param_groups

    batch_size, _, clip = train_settings()
    model = build_vilem(recipe)
    if not model.config.itc_only:
        attach_random_mlm(model)
    model.train()
    optim = load_config(recipe).optim
    optimizer = adamw(
        param_groups(model, optim.weight_decay, optim.image_lr_mult),
        lr=optim.lr,
        betas=optim.betas,
        eps=optim.eps,
    )
    split = load_split("synthetic", "train", root)
    order = [j for _, j in split.training_pairs(0, 0)][:batch_size]
    ids, mask = model.tokenize([split.texts[j] for j in order])
    item_ids = torch.as_tensor(split.text_to_item[order], dtype=torch.long)
    size = model.config.vision.image_size
    pixels = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
    seed = iter(range(10**9))

    def step() -> dict:
        gen = torch.Generator().manual_seed(next(seed))
        parts = model(pixels, ids, mask, item_ids, generator=gen)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        threads.tick()  # as the training loop does after each step
        return {}

    return step, 2, steps  # (fn, warm-up calls, timed calls)


def _eval_work(root: Path):
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import build_vilem

    from vilem.data import load_split
    from vilem.eval.engine import EvalOptions, evaluate
    from vilem.models.vilem import ViLEMRetrieval

    model = ViLEMRetrieval(build_vilem("small-vilem"))
    split = load_split("synthetic", "test", root)
    opts = EvalOptions(bootstrap=1000, num_workers=0, cache_dir=None, quiet=True)

    def cell() -> dict:
        return evaluate(model, split, "retrieval", opts).timings

    return cell, 1, 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", choices=("train", "eval"))
    parser.add_argument("--compete", choices=("python", "torch"))
    parser.add_argument("--root", type=Path)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--recipe", default="small-vilem", help="training recipe (--work train)")
    parser.add_argument("--setup", choices=("vilem", "governed", "none"), default="vilem")
    args = parser.parse_args(argv)
    if args.compete:
        compete(args.compete)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    applied: dict = {}
    os.environ["VILEM_PERF_SETUP"] = args.setup  # read by conftest, which the workloads import
    if args.setup != "none":
        from vilem.threads import ADAPTIVE_VAR, configure

        os.environ[ADAPTIVE_VAR] = "1" if args.setup == "governed" else "0"
        applied = configure()
    if args.work == "train":
        fn, warm, timed = _train_work(args.root, args.steps, args.recipe)
    else:
        fn, warm, timed = _eval_work(args.root)
    for _ in range(warm):
        fn()
    wall0, cpu0, times, parts = time.perf_counter(), _cpu_seconds(), [], {}
    for _ in range(timed):
        tick = time.perf_counter()
        parts = fn()
        times.append(time.perf_counter() - tick)
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    import torch

    from vilem import threads

    gov = threads.governor()
    report = {
        "work": args.work,
        "recipe": args.recipe if args.work == "train" else None,
        "setup": args.setup,
        "calls": timed,
        "seconds": wall / timed,
        "cpu_seconds": cpu / timed,
        "call_seconds": times,
        "torch_threads": torch.get_num_threads(),
        # what results record (threads, whether and how far the count moved), and the load
        "threads": threads.describe() | ({} if gov is None else {"others": round(gov.others, 3)}),
        "applied": applied,
        "parts": parts,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
