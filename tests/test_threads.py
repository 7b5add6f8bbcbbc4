"""vilem.threads: a fixed thread count from the CPUs a process may use, idle threads spinning
where those CPUs were idle at start and sleeping where they were busy, or, opted in, a count
that follows the load (the governor); the settings recorded with
the numbers; one thread per loader worker; the allocator keeping large blocks; explicit user
settings win. Nothing here times anything: the
OpenMP runtime reports its own settings (OMP_DISPLAY_ENV), the kernel counts page faults and
CPU time, and the governor is driven by hand-made loads."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vilem import threads as T

SET_BY_US = (*T.PASSIVE, *T.COUNT_VARS, T.MARK, T.ADAPTIVE_VAR, "GOMP_SPINCOUNT", *T.MALLOC_VARS)
ADAPTS = T.available_cpus() > 1 and T.read_load(T._affinity()) is not None
needs_adapting = pytest.mark.skipif(not ADAPTS, reason="one CPU, or no /proc/stat: a fixed count")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SET_BY_US}
    env.update(extra)
    return env


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=_clean_env(**env), capture_output=True, text=True,
        timeout=300, check=True,
    )  # fmt: skip


# ------------------------------------------------------------------------------ settings


def test_settings_fill_in_passive_waiting_and_counts():
    assert T.thread_settings({}, cpus=3) == {
        "OMP_WAIT_POLICY": "PASSIVE",
        "KMP_BLOCKTIME": "0",
        "OMP_NUM_THREADS": "3",
        "NUMBA_NUM_THREADS": "3",
    }


def test_spinning_leaves_the_wait_policy_to_the_runtimes():
    assert T.thread_settings({}, cpus=3, passive=False) == {
        "OMP_NUM_THREADS": "3",
        "NUMBA_NUM_THREADS": "3",
    }


def test_explicit_settings_win():
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "5"}
    out = T.thread_settings(env, cpus=2)
    assert "OMP_WAIT_POLICY" not in out and "OMP_NUM_THREADS" not in out
    assert out["NUMBA_NUM_THREADS"] == "5"  # the user's count stands for the others
    assert out["KMP_BLOCKTIME"] == "0"


def test_configure_changes_only_what_is_unset():
    env = {"OMP_WAIT_POLICY": "ACTIVE", "NUMBA_NUM_THREADS": "1"}
    applied = T.configure(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["NUMBA_NUM_THREADS"] == "1"
    assert env["OMP_NUM_THREADS"] == str(T.available_cpus())
    assert "OMP_WAIT_POLICY" not in applied and applied["KMP_BLOCKTIME"] == "0"
    assert "torch" in applied["late"]  # this process imported torch before the call


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, 4),
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "max 100000\n"}, 4),
        ({"cpu.max": "800000 100000\n"}, 4),  # a quota above the affinity does not add CPUs
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
    ],
)
def test_available_cpus_follow_affinity_and_quota(tmp_path, monkeypatch, files, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert T.available_cpus(tmp_path) == expected


def test_available_cpus_is_the_affinity_of_this_process():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    one = sorted(os.sched_getaffinity(0))[:1]
    code = (
        "import os; from vilem import threads; "
        f"os.sched_setaffinity(0, {set(one)}); print(threads.available_cpus())"
    )
    assert _python(code).stdout.strip() == "1"


# ------------------------------------------------------------------------------ the runtimes

_SHOW = "import torch; torch.ones(8).sum(); print(torch.get_num_threads())"


def _openmp_report(configure_first: bool, **env: str) -> tuple[str, int]:
    """(GOMP_SPINCOUNT as libgomp reports it, torch's intra-op threads) in a fresh process."""
    code = ("from vilem.threads import configure; configure(); " if configure_first else "") + _SHOW
    done = _python(code, OMP_DISPLAY_ENV="VERBOSE", **env)
    spin = [ln for ln in done.stderr.splitlines() if "GOMP_SPINCOUNT" in ln]
    if not spin:
        pytest.skip("torch's OpenMP runtime is not libgomp (no GOMP_SPINCOUNT report)")
    return spin[0].split("=", 1)[1].strip().strip("'"), int(done.stdout.split()[-1])


@pytest.mark.parametrize(
    ("others", "env", "cpus", "adaptive", "passive"),
    [
        (0.0, {}, 2, False, False),  # idle at start: the runtimes' spin, the fastest alone
        (0.2, {}, 2, False, False),  # a light background job
        (1.0, {}, 2, False, True),  # a busy loop on one of our 2 CPUs: sleep
        (None, {}, 2, False, True),  # no /proc/stat: the safe choice
        (0.0, {}, 1, False, True),  # one CPU
        (1.0, {}, 2, True, False),  # the count follows the load: a thread never waits for one
        (0.0, {"OMP_WAIT_POLICY": "ACTIVE"}, 2, False, True),  # the user's, no look
    ],
)
def test_idle_threads_spin_where_the_cpus_were_idle_at_start_and_sleep_where_busy(
    monkeypatch, others, env, cpus, adaptive, passive
):
    looks = []
    monkeypatch.setattr(T, "_affinity", lambda: frozenset({0, 1}))
    monkeypatch.setattr(T, "others_now", lambda mine: looks.append(mine) or others)
    chosen, why = T.waits_passively(env, cpus, adaptive)
    assert chosen is passive and why.startswith("passive" if passive else "spin")
    assert len(looks) == (cpus > 1 and not adaptive and not env)  # a look only when it decides


def test_others_now_is_other_processes_work_over_the_look(monkeypatch):
    loads = iter([T.Load(10.0, 5.0, 1.0), T.Load(10.1, 5.12, 1.02)])
    monkeypatch.setattr(T, "read_load", lambda cpus: next(loads))
    monkeypatch.setattr(T.time, "sleep", lambda s: None)
    assert T.others_now(frozenset({0, 1})) == pytest.approx(1.0)  # 0.12 busy - 0.02 ours
    monkeypatch.setattr(T, "read_load", lambda cpus: None)
    assert T.others_now(frozenset({0, 1})) is None


def test_configure_after_torch_loaded_does_not_look_at_the_load(monkeypatch):
    """Too late for this process's wait policy: no 0.1 s look (the CLI's in-process callers)."""
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in SET_BY_US})
    monkeypatch.setattr(T, "others_now", lambda cpus: pytest.fail("looked at the load"))
    applied = T.configure()
    assert "torch" in applied["late"] and applied["wait"].startswith("passive: torch had loaded")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and T.MARK in os.environ


def test_idle_openmp_threads_spin_alone_and_sleep_beside_busy_processes():
    """Real processes: libgomp reports the spin count it read at load. Alone the CPUs may be
    busy with whatever else runs (so only the count is checked); two busy loops pinned to the
    child's two CPUs make it wait passively for sure; opted in to a count that follows the load
    it always spins."""
    default_spin, _ = _openmp_report(configure_first=False)
    assert default_spin != "0"  # libgomp's default spins: the checks below can tell them apart
    assert _openmp_report(configure_first=True)[1] == T.available_cpus()
    if ADAPTS:
        opted = _openmp_report(configure_first=True, **{T.ADAPTIVE_VAR: "1"})
        assert opted == (default_spin, T.available_cpus())
    if T.available_cpus() < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = set(sorted(T._affinity())[:2])
    pin = f"import os; os.sched_setaffinity(0, {cpus})\n"
    hogs = [subprocess.Popen([sys.executable, "-c", pin + "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        code = pin + "from vilem.threads import configure; print(configure()['wait'])\n" + _SHOW
        done = _python(code, OMP_DISPLAY_ENV="VERBOSE")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    spin = [ln for ln in done.stderr.splitlines() if "GOMP_SPINCOUNT" in ln]
    assert spin and spin[0].split("=", 1)[1].strip().strip("'") == "0", done.stdout
    assert done.stdout.startswith("passive: other processes kept")


@pytest.mark.parametrize("value", [None, "0", "yes", "auto"])
def test_the_count_is_fixed_unless_following_the_load_is_asked_for(monkeypatch, value):
    monkeypatch.setattr(T, "read_load", lambda cpus, stat=None: T.Load(0.0, 0.0, 0.0))
    env = {} if value is None else {T.ADAPTIVE_VAR: value}
    assert not T.can_adapt(env, cpus=2)
    assert T.can_adapt({T.ADAPTIVE_VAR: "1"}, cpus=2)
    assert not T.can_adapt({T.ADAPTIVE_VAR: "1"}, cpus=1)
    assert not T.can_adapt({T.ADAPTIVE_VAR: "1", "OMP_NUM_THREADS": "2"}, cpus=2)
    monkeypatch.setattr(T, "read_load", lambda cpus, stat=None: None)  # no /proc/stat
    assert not T.can_adapt({T.ADAPTIVE_VAR: "1"}, cpus=2)


def test_user_wait_policy_and_count_survive_configure():
    spin, threads = _openmp_report(
        configure_first=True, OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="1"
    )
    assert spin != "0" and threads == 1


def test_configure_after_torch_lowers_its_thread_count():
    cpus = T.available_cpus()
    code = (
        f"import torch; torch.set_num_threads({cpus + 2}); "
        "from vilem.threads import configure; print(configure()['late']); "
        "print(torch.get_num_threads())"
    )
    late, threads = _python(code).stdout.split()
    assert "torch" in late and int(threads) == cpus
    user = _python(code, OMP_NUM_THREADS=str(cpus + 2)).stdout.split()
    assert int(user[1]) == cpus + 2  # an explicit OMP_NUM_THREADS is the user's choice


# ------------------------------------------------------------------------------ the governor

_STAT = """cpu  900 0 300 5000 40 0 10 0 0 0
cpu0 100 0 50 1000 10 0 0 0 0 0
cpu1 200 5 100 2000 20 0 5 7 0 0
cpu2 600 0 150 2000 10 0 5 0 0 0
intr 12345
"""


def test_read_load_sums_the_busy_time_of_this_process_cpus(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text(_STAT)
    monkeypatch.setattr(os, "sysconf", lambda name: 100)  # USER_HZ
    load = T.read_load(frozenset({0, 1}), stat)
    # busy = user + nice + system + irq + softirq + steal; idle and iowait are not
    assert load.busy == pytest.approx((150 + 317) / 100)
    assert load.own == pytest.approx(time.process_time(), abs=0.5)
    assert T.read_load(frozenset({7}), stat) is None  # none of our CPUs listed
    stat.write_text("cpu0 1 2\n")
    assert T.read_load(frozenset({0}), stat) is None  # too few fields: not a stat we know
    assert T.read_load(frozenset({0}), tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("others", "cpus", "most", "expected"),
    [
        (0.0, 2, 2, 2),
        (0.3, 2, 2, 2),  # a light background job: the core is still ours
        (0.67, 2, 2, 1),  # one busy loop sharing 2 cores with our 2 spinning threads
        (1.0, 2, 2, 1),
        (2.0, 2, 2, 1),  # never fewer than one
        (1.0, 64, 2, 2),  # the quota, not the free cores, caps it
        (40.0, 64, 32, 24),
    ],
)
def test_threads_are_the_cpus_others_leave_free(others, cpus, most, expected):
    assert T.choose_threads(others, cpus, most) == expected


def _driven(others_per_look: list[float], cpus: int = 2):
    """A governor fed loads in which other processes kept ``others`` cores busy for 1 s and
    this process 0.5 s of CPU; returns it and the thread counts it set."""
    loads = [T.Load(0.0, 0.0, 0.0)]
    for others in others_per_look:
        last = loads[-1]
        loads.append(T.Load(last.at + 1.0, last.busy + others + 0.5, last.own + 0.5))
    feed, calls = iter(loads), []
    gov = T.Governor(cpus, frozenset(range(cpus)), every=0.0, read=lambda _: next(feed),
                     set_threads=calls.append)  # fmt: skip
    return gov, calls


def test_the_governor_drops_threads_at_once_and_adds_them_after_two_looks():
    gov, calls = _driven([0.0, 0.9, 1.0, 0.0, 0.1, 0.0])
    seen = [gov.tick() for _ in range(6)]
    assert seen == [2, 1, 1, 1, 2, 2]
    assert calls == [1, 2] and gov.changes == 2 and gov.fewest == 1
    assert gov.others == pytest.approx(0.0)


def test_one_idle_look_between_busy_ones_does_not_add_threads():
    gov, calls = _driven([1.0, 0.0, 1.0, 0.0, 1.0])
    assert [gov.tick() for _ in range(5)] == [1, 1, 1, 1, 1] and calls == [1]


def test_the_governor_waits_for_its_interval_and_survives_unreadable_loads():
    feed = iter([T.Load(time.monotonic(), 0.0, 0.0), None])
    gov = T.Governor(2, frozenset({0, 1}), every=3600.0, read=lambda _: next(feed))
    assert gov.tick() == 2  # not yet time: no second read (it would raise StopIteration)
    gov.every = 0.0
    assert gov.tick() == 2 and gov.changes == 0  # the load could not be read: no change


def test_tick_is_a_no_op_without_a_governor(monkeypatch):
    monkeypatch.setattr(T, "_governor", None)
    assert T.tick() is None


def test_describe_records_the_count_and_whether_it_moved(monkeypatch):
    monkeypatch.setattr(T, "_governor", None)
    assert T.describe() == {"threads": torch.get_num_threads(), "follows_load": False}
    gov, _ = _driven([1.0, 0.0, 0.0])
    for _ in range(3):
        gov.tick()
    monkeypatch.setattr(T, "_governor", gov)
    described = T.describe()
    assert described["follows_load"] and (described["changes"], described["fewest"]) == (2, 1)


def test_a_parent_configure_is_worked_out_again_in_the_child(monkeypatch):
    monkeypatch.setattr(T, "others_now", lambda cpus: 1.0)  # the parent started beside a job
    parent: dict[str, str] = {}
    T.configure(parent)
    assert parent["OMP_WAIT_POLICY"] == "PASSIVE" and T.MARK in parent
    child = {**parent, T.ADAPTIVE_VAR: "1"}  # the child opts in to a count following the load
    applied = T.configure(child)
    if ADAPTS:  # the parent's passive waiting was its own choice, not the user's
        assert "OMP_WAIT_POLICY" not in child and "adaptive" in applied
    assert child["OMP_NUM_THREADS"] == str(T.available_cpus())
    user = {"OMP_NUM_THREADS": "1", T.MARK: parent[T.MARK], T.ADAPTIVE_VAR: "1"}  # the user's 1
    assert "adaptive" not in T.configure(user) and user["OMP_NUM_THREADS"] == "1"


_GOVERNED = """
import sys, time
from vilem import threads
threads.configure()
import torch
gov = threads.governor()
a = torch.randn(256, 256)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    a = torch.tanh(a @ a)
    threads.tick()
print(gov.threads, torch.get_num_threads(), round(gov.others, 2))
"""


@needs_adapting
def test_beside_busy_processes_a_governed_process_runs_one_thread():
    """Real processes: two busy loops pinned to the child's two CPUs keep >= 1 core busy,
    whatever else runs on the machine, so the child must end on one thread."""
    cpus = set(sorted(T._affinity())[:2])
    pin = f"import os; os.sched_setaffinity(0, {cpus})\n"
    hogs = [subprocess.Popen([sys.executable, "-c", pin + "while True: pass"]) for _ in range(2)]
    try:
        code = pin + _GOVERNED.replace("sys.argv[1]", "3")
        out = _python(code, **{T.ADAPTIVE_VAR: "1"}).stdout
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    threads, torch_threads, others = out.split()
    assert (int(threads), int(torch_threads)) == (1, 1)
    assert float(others) >= 0.65


# ------------------------------------------------------------------------------ loader workers


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


class _Probe(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[int, int, str | None]:
        return torch.get_num_threads(), _blas_threads(), os.environ.get("OMP_NUM_THREADS")


def _worker_view(worker_init_fn) -> set[tuple]:
    loader = DataLoader(_Probe(), batch_size=None, num_workers=1, worker_init_fn=worker_init_fn)
    return {(int(a), int(b), c) for a, b, c in loader}


def test_worker_init_gives_each_loader_worker_one_thread():
    pytest.importorskip("threadpoolctl")
    import numpy as np

    np.ones((2, 2)) @ np.ones((2, 2))  # NumPy's BLAS is loaded before the workers fork
    assert _worker_view(T.worker_init) == {(1, 1, "1")}
    parent = _blas_threads()
    if parent > 1:  # without it a worker's BLAS keeps the parent's count: the check can fail
        assert {b for _, b, _ in _worker_view(None)} == {parent}


def test_the_training_loader_uses_worker_init():
    from vilem.train.data import make_loader

    def collate(batch):
        return batch

    assert make_loader(_Probe(), [[0], [1]], collate, 2).worker_init_fn is T.worker_init
    assert make_loader(_Probe(), [[0], [1]], collate, 0).worker_init_fn is None


# ------------------------------------------------------------------------------ allocator


def test_malloc_tuning_leaves_a_chosen_allocator_alone():
    if not T.malloc_is_tunable({}):
        pytest.skip("not glibc")
    assert not T.malloc_is_tunable({"MALLOC_ARENA_MAX": "2"})
    assert not T.malloc_is_tunable({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert not T.malloc_is_tunable({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"})


_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from vilem.threads import configure
    configure()
n = 30522 * 192  # the small recipe's word-embedding gradient
def step():
    a = np.zeros(n, np.float32); b = np.ones(n, np.float32); c = a + b
for _ in range(3):
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 10)
"""


def _faults_per_step(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], env=_clean_env(), capture_output=True,
        text=True, timeout=300, check=True,
    )  # fmt: skip
    return float(done.stdout.split()[-1])


def test_malloc_tuning_reuses_large_blocks_instead_of_faulting_them_in():
    if not T.malloc_is_tunable(_clean_env()):
        pytest.skip("not glibc, or the environment tunes the allocator")
    untuned = _faults_per_step("untuned")  # 1,300-1,800 here (a 23 MiB block is 5,860 pages)
    if untuned < 200:
        pytest.skip(f"this allocator reuses the blocks by itself ({untuned:.0f} faults a step)")
    assert _faults_per_step("tuned") < untuned / 10  # 0 here


def test_wait_policy_script_runs_each_spin_setting_alone_and_beside_a_competitor(
    tmp_path, monkeypatch, capsys
):
    """benchmarks/wait_policy.py with its child runs faked: vilem's default, passive waiting,
    the opt-in governor, and each GOMP_SPINCOUNT (none for the libraries' defaults, which skip
    vilem.threads)."""
    import importlib.util
    import types
    from pathlib import Path

    calls = []

    def run_child(args, root, setup, competitor):
        calls.append((args[3], setup, competitor, os.environ.get("GOMP_SPINCOUNT"),
                      os.environ.get(T.ADAPTIVE_VAR)))  # fmt: skip
        return {"seconds": 2.0 if competitor else 1.0, "cpu_seconds": 1.5}

    monkeypatch.setitem(sys.modules, "conftest", types.SimpleNamespace(make_synthetic=Path))
    monkeypatch.setitem(
        sys.modules, "test_contention_perf", types.SimpleNamespace(run_child=run_child)
    )
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv(T.ADAPTIVE_VAR, raising=False)
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "wait_policy.py"
    spec = importlib.util.spec_from_file_location("wait_policy", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--recipe", "small-itc", "--rounds", "1"]) == 0
    spins = [None, None, "0", None, "3000", "10000", "30000", "100000"]
    expected = [("small-itc", "none" if i == 0 else "vilem", c, s, "1" if i == 3 else None)
                for c in (False, True) for i, s in enumerate(spins)]  # fmt: skip
    assert calls == expected
    assert "GOMP_SPINCOUNT" not in os.environ and T.ADAPTIVE_VAR not in os.environ
    out = capsys.readouterr().out
    assert "small-itc    beside a busy loop passive   wall 2.000 s  CPU 1.500 s" in out
