"""Thread settings for CPU-bound work on a machine other processes may share.

Left to their defaults, torch's OpenMP threads (libgomp) spin after every parallel region
(about 300,000 polls) waiting for the next one. On an idle machine that costs only CPU time;
beside another CPU-bound process it is ruinous: a spinning thread holds a core the competitor
and our own other thread both want, so every barrier of the ~12,000 parallel regions of a
training step waits for a scheduler time slice. Measured on 2 cores (docs/scaling.md): the small
ViLEM step went from ~0.4 s to 2-13 s, its CPU time up 5-10x (issue #16: 73 min wall, 69.6 min
CPU against 12.6 min idle for the main job). Passive waiting removes it. A bounded spin
(``GOMP_SPINCOUNT`` 3,000-100,000) took 1.5-4.1x the passive step time beside a busy loop
and saved 2-18% alone (``benchmarks/wait_policy.py``, docs/scaling.md).

``configure()`` runs once at process start (the ``vilem`` command does it first), before torch,
NumPy or numba are imported, because the OpenMP and BLAS runtimes read their settings when they
load. It only fills in environment variables the user has not set:

- ``OMP_WAIT_POLICY=PASSIVE`` (libgomp, Intel OpenMP) and ``KMP_BLOCKTIME=0`` (Intel OpenMP):
  idle threads sleep instead of spinning;
- ``OMP_NUM_THREADS`` = the CPUs this process may use: its affinity mask
  (``os.sched_getaffinity``; ``taskset``, ``numactl``, Slurm and Docker ``--cpuset-cpus`` set it),
  capped by a cgroup CPU quota (Docker ``--cpus``, Kubernetes limits), not the machine's core
  count; MKL and OpenBLAS fall back to it when their own variables are unset;
- ``NUMBA_NUM_THREADS``: the same count (numba defaults to every core of the machine).

It also keeps glibc's allocator from handing every large tensor back to the kernel
(``tune_malloc``): by default a freed block of a few MiB or more is unmapped, so the next step's
gradient of the same size (the 30,522 x 192 word-embedding gradient: 23 MiB) is page-faulted
in again, ~16,000-22,000 faults and 35-100 ms of system CPU time per step of the small recipe
here. Bit-identical results; the process keeps up to 256 MiB of freed memory for reuse.

``worker_init`` is a DataLoader ``worker_init_fn``: one thread per loader worker.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
COUNT_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")
# set in the environment before any of these loads, or the runtime has read its defaults
RUNTIMES = ("torch", "numpy", "numba")
# glibc mallopt: blocks below the mmap threshold come from the reusable heap (32 MiB is the
# largest value glibc accepts on 64-bit); free memory above the trim threshold goes back
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 256 << 20
# an allocator the user chose (environment tunables or a preloaded allocator) is left alone
MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
               "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX")  # fmt: skip


def _cgroup_quota(root: Path) -> float | None:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max``, else v1 ``cfs_quota_us``); None if
    unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup quota (rounded
    up: 1.5 CPUs -> 2 threads); at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def thread_settings(environ: MutableMapping[str, str], cpus: int) -> dict[str, str]:
    """The variables ``configure`` would set: the passive wait policy and thread counts, each
    only where the user has not set it. An explicit ``OMP_NUM_THREADS`` also stands for the
    other counts (numba gets the same value)."""
    out = {k: v for k, v in PASSIVE.items() if k not in environ}
    count = environ.get("OMP_NUM_THREADS") or str(cpus)
    out.update({k: count for k in COUNT_VARS if k not in environ})
    return out


def malloc_is_tunable(environ: MutableMapping[str, str]) -> bool:
    """glibc's allocator, not tuned by the user (MALLOC_* or GLIBC_TUNABLES ``glibc.malloc``)
    and not replaced by a preloaded one (jemalloc, tcmalloc, mimalloc)."""
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):  # not a glibc system
        glibc = ""
    if not glibc.startswith("glibc"):
        return False
    tunables = environ.get("GLIBC_TUNABLES", "")
    if any(k in environ for k in MALLOC_VARS) or "glibc.malloc" in tunables:
        return False
    preload = environ.get("LD_PRELOAD", "")
    return not any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc"))


def tune_malloc(environ: MutableMapping[str, str]) -> bool:
    """Keep freed large blocks for reuse (see the module docstring); True when applied."""
    if not malloc_is_tunable(environ):
        return False
    try:
        libc = ctypes.CDLL(None)
        done = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(
            M_TRIM_THRESHOLD, TRIM_THRESHOLD
        )
    except (OSError, AttributeError):
        return False
    return bool(done)


def configure(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Fill in the thread settings, tune the allocator (see the module docstring) and return
    what was set.

    Variables already in the environment win. When torch is already imported its wait policy
    can no longer change, so only its intra-op thread count is lowered to the CPUs available
    (the key ``"late"`` lists the runtimes that had loaded)."""
    environ = os.environ if environ is None else environ
    user_count = "OMP_NUM_THREADS" in environ
    cpus = available_cpus()
    applied = thread_settings(environ, cpus)
    environ.update(applied)
    if tune_malloc(environ):
        applied["malloc"] = f"mmap_threshold={MMAP_THRESHOLD},trim_threshold={TRIM_THRESHOLD}"
    late = [name for name in RUNTIMES if name in sys.modules]
    if late:
        applied["late"] = ",".join(late)
    if "torch" in sys.modules and not user_count:
        torch = sys.modules["torch"]
        if torch.get_num_threads() > cpus:
            torch.set_num_threads(cpus)
    return applied


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one intra-op thread per worker process (N workers with
    N threads each would oversubscribe the cores the main process trains on): torch, NumPy's
    BLAS (through threadpoolctl, when installed) and subprocesses the worker starts."""
    del worker_id
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)  # torch's worker loop does this too; NumPy's BLAS does not
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it BLAS keeps its own count
        return
    threadpool_limits(1)
