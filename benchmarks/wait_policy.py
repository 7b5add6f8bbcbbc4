"""How long libgomp's threads should spin before sleeping: the small recipe's training step in a
fresh process per run (``perf/contention_child.py``), alone and beside one CPU-bound busy loop,
under the libraries' defaults (~300,000 polls), what ``vilem.threads`` does (a fixed count;
threads spin where the CPUs were idle at start and sleep where they were busy), a fixed count
with passive waiting (``GOMP_SPINCOUNT=0``) or bounded spins (``GOMP_SPINCOUNT``; ~100,000
polls are about 1 ms), and the opt-in count that follows the load
(``VILEM_ADAPTIVE_THREADS=1``, the default spin). Rounds take turns;
prints one JSON line per run and then the medians (docs/scaling.md quotes them):

    python benchmarks/wait_policy.py                      # ITC-only and ViLEM, 2 rounds
    python benchmarks/wait_policy.py --recipe small-itc --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "perf"))

from conftest import make_synthetic  # noqa: E402
from test_contention_perf import run_child  # noqa: E402

ADAPT = "VILEM_ADAPTIVE_THREADS"
# name -> the child's extra environment (None: the libraries' defaults, no vilem.threads at all)
VARIANTS = {"defaults": None, "vilem": {}, "passive": {"GOMP_SPINCOUNT": "0"},
            "governed": {ADAPT: "1"},
            **{f"spin {n // 1000}k": {"GOMP_SPINCOUNT": str(n)}
               for n in (3000, 10000, 30000, 100000)}}  # fmt: skip
SETS = (ADAPT, "GOMP_SPINCOUNT")
STEPS = {"small-itc": "8", "small-vilem": "6"}


def one_run(root: Path, recipe: str, extra: dict | None, competitor: bool) -> dict:
    """Wall and CPU seconds per step of one child run under one wait setting."""
    saved = {k: os.environ.pop(k) for k in SETS if k in os.environ}
    # GOMP_SPINCOUNT overrides the spin count OMP_WAIT_POLICY implies
    os.environ.update(extra or {})
    args = ["--work", "train", "--recipe", recipe, "--steps", STEPS[recipe]]
    try:
        return run_child(args, root, "none" if extra is None else "vilem", competitor)
    finally:
        for key in SETS:
            os.environ.pop(key, None)
        os.environ.update(saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", choices=sorted(STEPS))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    recipes = args.recipe or sorted(STEPS)
    runs: dict[tuple[str, bool, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic(Path(tmp) / "synthetic")
        for round_ in range(args.rounds):
            for recipe in recipes:
                for competitor in (False, True):
                    for name, extra in VARIANTS.items():
                        report = one_run(root, recipe, extra, competitor)
                        runs.setdefault((recipe, competitor, name), []).append(report)
                        line = {"round": round_, "recipe": recipe, "competitor": competitor,
                                "variant": name, "s": report["seconds"],
                                "cpu_s": report["cpu_seconds"]}  # fmt: skip
                        print(json.dumps(line), flush=True)
    for (recipe, competitor, name), reports in runs.items():
        wall = statistics.median(r["seconds"] for r in reports)
        cpu = statistics.median(r["cpu_seconds"] for r in reports)
        where = "beside a busy loop" if competitor else "alone"
        print(f"{recipe:12s} {where:18s} {name:9s} wall {wall:.3f} s  CPU {cpu:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
