"""Retrieval metrics over growing galleries: seconds and peak memory per gallery size, each point
in a fresh process (``perf/gallery_child.py``), with the bare similarity GEMM of the same chunks
as the floor. Writes a JSON list and prints the markdown table of docs/scaling.md:

    python benchmarks/scaling_curve.py --items 1000 10000 100000 --out runs/scaling.json

Cost should grow with N x M (the scores) and the memory above the inputs stay bounded (one chunk
of scores, a few per-query arrays), whatever the gallery size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = Path(__file__).parent / "perf" / "gallery_child.py"
MIB = 1 << 20


def run_point(mode: str, items: int, per_item: int, dim: int, threads: int) -> dict:
    """One gallery_child run; its JSON report."""
    env = dict(os.environ)
    if threads:
        env.update({k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                              "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")})  # fmt: skip
    cmd = [sys.executable, str(CHILD), "--mode", mode, "--items", str(items),
           "--per-item", str(per_item), "--dim", str(dim)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = [
        "| N items x M texts | scores | metrics s | ns per score | GEMM floor s | ratio "
        "| inputs MiB | peak RSS MiB | peak above inputs MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, f = r["metrics"], r["matmul"]
        scores = m["items"] * m["texts"]
        above = (m["peak_rss_bytes"] - m["rss_with_inputs_bytes"]) / MIB
        lines.append(
            f"| {m['items']:,} x {m['texts']:,} | {scores:.2e} | {m['seconds']:.2f} "
            f"| {1e9 * m['seconds'] / scores:.2f} | {f['seconds']:.2f} "
            f"| {m['seconds'] / f['seconds']:.2f} | {m['input_bytes'] / MIB:.0f} "
            f"| {m['peak_rss_bytes'] / MIB:.0f} | {above:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+",
                        default=[1000, 2000, 5000, 10000, 20000, 50000, 100000])  # fmt: skip
    parser.add_argument("--per-item", type=int, default=5, help="texts per item (M = N x this)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="0: the libraries' default")
    parser.add_argument("--out", type=Path, help="write the points as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for n in args.items:
        point = {mode: run_point(mode, n, args.per_item, args.dim, args.threads)
                 for mode in ("metrics", "matmul")}  # fmt: skip
        rows.append(point)
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
