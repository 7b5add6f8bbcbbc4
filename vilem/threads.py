"""Thread settings for CPU-bound work on a machine other processes may share.

Left to their defaults, torch's OpenMP threads (libgomp) spin after every parallel region
(about 300,000 polls) waiting for the next one. On an idle machine that costs only CPU time and
is the fastest way to wait; beside another CPU-bound process it is ruinous: a spinning thread
holds a core the competitor and our own other thread both want, so every barrier of the ~12,000
parallel regions of a training step waits for a scheduler time slice. Measured on 2 cores
(docs/scaling.md): the small ViLEM step went from ~0.4 s to 2-13 s, its CPU time up 5-10x
(issue #16: 73 min wall, 69.6 min CPU against 12.6 min idle for the main job). Passive waiting
(``OMP_WAIT_POLICY=PASSIVE``) removes that; a bounded spin (``GOMP_SPINCOUNT``) was worse than
both beside a busy loop (``benchmarks/wait_policy.py``).

The thread count is fixed for the life of the process, because torch's numbers depend on it:
reductions and matrix products split their work by thread, so one step of a transformer layer
on 1 thread and on 2 differs in the last bits of hundreds of gradient entries, and a trained
model, its retrieval scores and its ranks drift from there. With a fixed count the same command
on the same machine gives the same numbers whatever else runs beside it; ``describe()`` gives
the count that training logs and results record.

Passive waiting costs time on an idle machine, where waking a sleeping thread at each parallel
region is slower than spinning: the small ITC-only step took 1.42x and the ViLEM step 1.48x
their spinning time here (docs/scaling.md). The wait policy does not change the numbers, but
libgomp reads it once, at load. So ``configure`` looks at the load for 0.1 s first: idle threads
spin where the CPUs this process may run on were idle, and sleep where other processes kept
them busy. Work that starts beside an already running process meets spinning threads; setting
``OMP_WAIT_POLICY=PASSIVE`` gives the same numbers without spinning.

Users who prefer speed beside other work to bit-for-bit repeatable numbers can opt in to a
count that follows the load (``VILEM_ADAPTIVE_THREADS=1``, ``Governor``): threads spin, and
about once a second, between training steps and evaluation batches (``tick``), torch runs as
many threads as the CPUs other processes leave free: what the CPUs this process may run on were
busy with (``/proc/stat``) minus this process's own CPU time. Beside one busy loop on 2 cores it
drops to one thread, which never waits for another; when the competitor goes, it is back to two
within two looks. Its results then depend on the load they ran beside.

``configure()`` runs once at process start (the ``vilem`` command does it first), before torch,
NumPy or numba are imported, because the OpenMP and BLAS runtimes read their settings when they
load. It only fills in environment variables the user has not set:

- ``OMP_NUM_THREADS`` = the CPUs this process may use: its affinity mask
  (``os.sched_getaffinity``; ``taskset``, ``numactl``, Slurm and Docker ``--cpuset-cpus`` set it),
  capped by a cgroup CPU quota (Docker ``--cpus``, Kubernetes limits), not the machine's core
  count; MKL and OpenBLAS fall back to it when their own variables are unset;
- ``NUMBA_NUM_THREADS``: the same count (numba defaults to every core of the machine);
- where other processes were busy at start (also on one CPU, and where ``/proc/stat`` cannot be
  read), ``OMP_WAIT_POLICY=PASSIVE`` (libgomp, Intel OpenMP) and ``KMP_BLOCKTIME=0`` (Intel
  OpenMP): idle threads sleep instead of spinning (``waits_passively``). The opt-in
  ``VILEM_ADAPTIVE_THREADS=1`` is ignored (the count stays fixed) when the user sets
  ``OMP_NUM_THREADS`` (their choice stands), on one CPU, and where ``/proc/stat`` cannot be read
  (not Linux).

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
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
ADAPTIVE_VAR = "VILEM_ADAPTIVE_THREADS"  # "1": the count follows the load (opt-in)
MARK = "VILEM_THREADS_SET"  # what configure set: a child process tells it from the user's
LOOK_EVERY = 1.0  # seconds between looks at the machine's load
START_LOOK = 0.1  # seconds configure() watches the load to choose how idle threads wait
# a core other processes keep busy less than this fraction of the time still counts as free
SLACK = 0.35
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


def _affinity() -> frozenset[int]:
    """The CPUs this process may run on (every CPU where there is no affinity: not Linux)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset(range(os.cpu_count() or 1))


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup quota (rounded
    up: 1.5 CPUs -> 2 threads); at least 1."""
    cpus = len(_affinity())
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def thread_settings(
    environ: MutableMapping[str, str], cpus: int, passive: bool = True
) -> dict[str, str]:
    """The variables ``configure`` would set: thread counts and, where ``passive``, the passive
    wait policy, each only where the user has not set it. An explicit ``OMP_NUM_THREADS`` also
    stands for the other counts (numba gets the same value)."""
    out = {k: v for k, v in PASSIVE.items() if k not in environ} if passive else {}
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


# ------------------------------------------------------------------------------ the governor


@dataclass(frozen=True)
class Load:
    """One look at the machine: monotonic seconds, CPU seconds the CPUs this process may run
    on were busy (every process), and this process's own CPU seconds (all its threads)."""

    at: float
    busy: float
    own: float


def read_load(cpus: frozenset[int], stat: Path = Path("/proc/stat")) -> Load | None:
    """The load on ``cpus`` now, from the kernel's per-CPU counters (user, nice, system, idle,
    iowait, irq, softirq, steal: busy is all but idle and iowait); None where unreadable."""
    try:
        lines = stat.read_text().splitlines()
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    busy, seen = 0, 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        try:
            fields = [int(f) for f in rest.split()[:8]]
        except ValueError:
            return None
        if len(fields) < 5:
            return None
        busy += sum(fields) - fields[3] - fields[4]
        seen += 1
    if not seen:
        return None
    return Load(time.monotonic(), busy / tick, time.process_time())


def _others(first: Load, last: Load) -> float:
    """Cores' worth of work other processes did on the CPUs between two looks."""
    return max(0.0, (last.busy - first.busy) - (last.own - first.own)) / (last.at - first.at)


def choose_threads(others: float, cpus: int, most: int) -> int:
    """Threads for the CPUs ``others`` (cores' worth of other processes' work) leave free of
    ``cpus``: at least 1, at most ``most``; a core busy less than ``SLACK`` counts as free."""
    return max(1, min(most, int(cpus - others + SLACK)))


class Governor:
    """torch's intra-op thread count, kept at the CPUs other processes leave free.

    ``tick()`` is cheap (a clock read) and meant for every training step and evaluation batch,
    on the thread that runs them (OpenMP's thread count is per calling thread); once ``every``
    seconds have passed it looks at the load since its last look. It drops threads at once (a
    spinning thread beside a competitor costs 2-4x) and adds them back only when two looks in a
    row agree (one thread too few costs at most half the speed for a second)."""

    def __init__(
        self,
        most: int,
        cpus: frozenset[int],
        every: float = LOOK_EVERY,
        read: Callable[[frozenset[int]], Load | None] = read_load,
        set_threads: Callable[[int], None] | None = None,
    ):
        self.most, self.cpus, self.every, self.read = most, cpus, every, read
        self.set_threads = set_threads or _set_torch_threads
        self.threads, self.others, self.changes, self.fewest = most, 0.0, 0, most
        self._last, self._up = read(cpus), 0

    def tick(self) -> int:
        """Look at the load if it is time; the thread count in use."""
        last = self._last
        if last is None or time.monotonic() - last.at < self.every:
            return self.threads
        now = self.read(self.cpus)
        if now is None or now.at <= last.at:
            return self.threads
        self._last = now
        self.others = _others(last, now)
        want = choose_threads(self.others, len(self.cpus), self.most)
        self._up = self._up + 1 if want > self.threads else 0
        if want < self.threads or self._up >= 2:
            self.threads, self._up = want, 0
            self.changes += 1
            self.fewest = min(self.fewest, want)
            self.set_threads(want)
        return self.threads


def _set_torch_threads(n: int) -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


_governor: Governor | None = None


def tick() -> int | None:
    """Between training steps and evaluation batches: let the governor adjust torch's thread
    count (see ``Governor``). A no-op returning None unless ``configure()`` started one."""
    return None if _governor is None else _governor.tick()


def governor() -> Governor | None:
    """The running governor, if ``configure()`` started one."""
    return _governor


def describe() -> dict[str, int | bool | None]:
    """The thread settings numbers are being computed with, for training logs and results
    (torch's numbers depend on the count): torch's intra-op threads now (None before torch
    loads), whether the count follows the load and, if it does, how often it changed and the
    fewest threads it ran."""
    torch = sys.modules.get("torch")
    out: dict[str, int | bool | None] = {
        "threads": torch.get_num_threads() if torch is not None else None,
        "follows_load": _governor is not None,
    }
    if _governor is not None:
        out.update(changes=_governor.changes, fewest=_governor.fewest)
    return out


def can_adapt(environ: MutableMapping[str, str], cpus: int) -> bool:
    """Whether the thread count follows the load: asked for (``VILEM_ADAPTIVE_THREADS=1``), more
    than one CPU, no ``OMP_NUM_THREADS`` of the user's, and ``/proc/stat`` readable."""
    if environ.get(ADAPTIVE_VAR, "0") != "1" or cpus < 2 or "OMP_NUM_THREADS" in environ:
        return False
    return read_load(_affinity()) is not None


def others_now(cpus: frozenset[int], window: float = START_LOOK) -> float | None:
    """Cores' worth of other processes' work on ``cpus`` over the next ``window`` seconds (this
    process sleeps meanwhile); None where ``/proc/stat`` cannot be read."""
    first = read_load(cpus)
    if first is None:
        return None
    time.sleep(window)
    last = read_load(cpus)
    if last is None or last.at <= first.at:
        return None
    return _others(first, last)


def waits_passively(
    environ: MutableMapping[str, str], cpus: int, adaptive: bool
) -> tuple[bool, str]:
    """Whether idle OpenMP threads should sleep rather than spin, and why. They spin (the
    runtimes' default, the fastest way to wait) where the count follows the load (a thread
    never waits for a competitor) and where the CPUs were idle when the process started; they
    sleep where other processes were busy on them (a spinning thread would hold a core the
    competitor and our other thread both want), on one CPU, where the load cannot be read, and
    where the user set ``OMP_WAIT_POLICY`` (their choice stands; no look)."""
    if adaptive:
        return False, "spin: the count follows the load"
    if "OMP_WAIT_POLICY" in environ or cpus < 2:
        return True, "passive: " + ("the user's OMP_WAIT_POLICY" if cpus > 1 else "one CPU")
    mine = _affinity()
    others = others_now(mine)
    if others is None:
        return True, "passive: the load cannot be read"
    if choose_threads(others, len(mine), cpus) < cpus:
        return True, f"passive: other processes kept {others:.1f} cores busy at start"
    return False, f"spin: the CPUs were idle at start (others {others:.1f} cores)"


def _ours(environ: MutableMapping[str, str]) -> dict[str, str]:
    """The variables an earlier ``configure`` (this process's parent) set, with their values."""
    pairs = (item.partition("=") for item in environ.get(MARK, "").split(";") if item)
    return {k: v for k, _, v in pairs}


def configure(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Fill in the thread settings, tune the allocator (see the module docstring), start the
    governor where the count may adapt, and return what was set.

    Variables already in the environment win, except those an earlier ``configure`` set (a
    parent ``vilem`` process: ``VILEM_THREADS_SET`` lists them), which are worked out again.
    When torch is already imported its wait policy can no longer change, so only its intra-op
    thread count is lowered to the CPUs available (the key ``"late"`` lists the runtimes that
    had loaded). The key ``"wait"`` says how idle threads wait and why. Only a call on
    ``os.environ`` starts the governor (key ``"adaptive"``); another mapping is just filled
    in."""
    global _governor
    real = environ is None or environ is os.environ
    environ = os.environ if environ is None else environ
    inherited = {k: v for k, v in _ours(environ).items() if environ.get(k) == v}
    for key in (*inherited, MARK):
        environ.pop(key, None)
    user_count = "OMP_NUM_THREADS" in environ
    cpus = available_cpus()
    adaptive = can_adapt(environ, cpus)
    late = [name for name in RUNTIMES if name in sys.modules]
    if real and "torch" in late and not adaptive:
        # libgomp read its wait policy when torch loaded: no look; a child works it out again
        passive, why = True, "passive: torch had loaded already (its wait policy is read)"
    else:
        passive, why = waits_passively(environ, cpus, adaptive)
    applied = thread_settings(environ, cpus, passive)
    environ.update(applied)
    environ[MARK] = ";".join(f"{k}={v}" for k, v in applied.items())
    applied["wait"] = why
    if adaptive:
        applied["adaptive"] = f"threads follow the load, a look every {LOOK_EVERY:g} s"
        if real:
            _governor = Governor(cpus, _affinity())
    if tune_malloc(environ):
        applied["malloc"] = f"mmap_threshold={MMAP_THRESHOLD},trim_threshold={TRIM_THRESHOLD}"
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

    global _governor
    _governor = None  # a forked worker inherits the parent's; its one thread stays one
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)  # torch's worker loop does this too; NumPy's BLAS does not
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it BLAS keeps its own count
        return
    threadpool_limits(1)
