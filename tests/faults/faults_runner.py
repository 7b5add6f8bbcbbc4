"""Running ``python -m vilem ...`` for the fault catalogue, and what every case asserts.

``Vilem.run`` forks each run from ``faults_forkserver.py`` (libraries imported once; the child
is a real process running ``python -m vilem``); ``Vilem.run_many`` starts several at once.
``VILEM_FAULTS_SUBPROCESS=1`` runs every case with a plain
``subprocess.run([sys.executable, "-m", "vilem", ...])`` instead (about 4 s a run); ``real()``
always does (``test_parity`` compares the two).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip


def case_env(folder: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one run: the caller's, the fixed knobs, an isolated cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VILEM_", "PYTEST_"))}
    env |= BASE_ENV
    env["VILEM_CACHE"] = str(folder / ".env-cache")
    env["VILEM_DATA"] = str(folder / ".env-data")  # a default root never lands in the repo
    env |= extra or {}
    return env


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return (
            f"rc={self.rc} ({self.seconds:.1f} s)\n--- stderr\n{self.stderr}--- stdout\n"
            + (self.stdout[-2000:])
        )


class Vilem:
    """Runs the CLI; one per test session."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.proc: subprocess.Popen | None = None
        self.reply = None
        if os.environ.get("VILEM_FAULTS_SUBPROCESS") != "1":
            self._start()

    # -- the fork server -------------------------------------------------------------------
    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VILEM_")} | BASE_ENV
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "faults_forkserver.py"), str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=open(self.logs / "forkserver.log", "wb"),  # noqa: SIM115
            pass_fds=(write_fd,),
            env=env,
            text=True,
        )
        os.close(write_fd)
        self.reply = os.fdopen(read_fd, "r")
        self.ready = False  # waited for at the first run: the caller works meanwhile

    def _wait_ready(self) -> None:
        if not self.ready:
            hello = self._read(180)
            assert hello and "ready" in hello, f"fork server did not start; see {self.logs}"
            self.ready = True

    def _read(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self.reply], [], [], timeout)
        if not ready:
            return None
        line = self.reply.readline()
        return json.loads(line) if line else None

    def close(self) -> None:
        if self.proc is not None:  # idle between requests: nothing to lose by killing it
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    # -- one run ---------------------------------------------------------------------------
    def run(
        self, argv: list, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
    ) -> Outcome:
        return self.run_many([(argv, cwd, env)], timeout)[0]

    def run_many(self, runs: list[tuple], timeout: float = 120) -> list[Outcome]:
        """Start every ``(argv, cwd, env)`` at once; their outcomes when all have ended."""
        runs = [([str(a) for a in argv], cwd, env if env is not None else case_env(cwd))
                for argv, cwd, env in runs]  # fmt: skip
        if self.proc is None:
            if len(runs) == 1:
                return [real(*runs[0], timeout)]
            procs = [popen(argv, cwd, env) for argv, cwd, env in runs]
            return [_finish(p, timeout) for p in procs]
        self._wait_ready()
        batch, files = [], []
        for argv, cwd, env in runs:
            self.count += 1
            out, err = self.logs / f"{self.count}.out", self.logs / f"{self.count}.err"
            files.append((out, err))
            batch.append({"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(out),
                          "stderr": str(err)})  # fmt: skip
        start = time.perf_counter()
        self.proc.stdin.write(json.dumps({"batch": batch}) + "\n")
        self.proc.stdin.flush()
        pids = self._read(30)["pids"]
        done = self._read(timeout)
        if done is None:  # ran past the timeout: kill the process groups, report 124
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            self._read(30)
            codes = [124] * len(pids)
        else:
            codes = done["rcs"]
        took = time.perf_counter() - start
        return [
            Outcome(rc, out.read_text(errors="replace"), err.read_text(errors="replace"), took)
            for rc, (out, err) in zip(codes, files, strict=True)
        ]


def _finish(proc: subprocess.Popen, timeout: float) -> Outcome:
    start = time.perf_counter()
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        rc = 124
    return Outcome(rc, out, err, time.perf_counter() - start)


def real(argv: list, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Outcome:
    """``python -m vilem ARGV`` as a plain subprocess."""
    start = time.perf_counter()
    env = env if env is not None else case_env(cwd)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "vilem", *map(str, argv)],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        return Outcome(124, exc.stdout or "", exc.stderr or "", time.perf_counter() - start)
    return Outcome(done.returncode, done.stdout, done.stderr, time.perf_counter() - start)


def popen(argv: list, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vilem", *map(str, argv)],
        cwd=cwd, env=env if env is not None else case_env(cwd),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


# -- what every case asserts -----------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (symlinks as their target), by relative path."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".env-")]
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
                continue
            h = hashlib.sha256()
            try:
                with open(path, "rb") as f:
                    for block in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(block)
            except OSError as exc:
                out[rel] = f"unreadable:{exc.errno}"
                continue
            out[rel] = h.hexdigest()
    return out


def assert_unchanged(before: dict[str, str], after: dict[str, str]) -> None:
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"files changed or removed by the run: {changed}"


def error_line(outcome: Outcome, usage: bool = False) -> str:
    """The one error line of a failed run (asserting the shape of stderr), lower-cased.

    A vilem error is exactly one line, ``vilem: error: ...``. An argparse error (``usage``) is
    its usage block followed by exactly one ``... error: ...`` line; a vilem one-liner is also
    accepted there, since a flag may be range-checked by argparse or right after parsing.
    """
    text = outcome.stderr
    assert "Traceback" not in text + outcome.stdout, f"a traceback:\n{outcome}"
    lines = [line for line in text.splitlines() if line.strip()]
    if usage and lines and lines[0].startswith("usage:"):
        errors = [line for line in lines if "error:" in line]
        assert len(errors) == 1 and errors[0] == lines[-1], f"not one argparse error:\n{outcome}"
        return errors[0].lower()
    assert len(lines) == 1, f"stderr is not one line:\n{outcome}"
    assert lines[0].startswith("vilem: error:"), f"not a vilem error line:\n{outcome}"
    return lines[0].lower()


def has(line: str, *words) -> None:
    """Each word (or one of a tuple of alternatives) appears in ``line`` (case-insensitive)."""
    for word in words:
        options = word if isinstance(word, tuple) else (word,)
        assert any(str(o).lower() in line for o in options), f"{options} not in: {line}"


def new_files(before: dict[str, str], folder: Path) -> list[str]:
    return sorted(set(snapshot(folder)) - set(before))


def visible_results(folder: Path) -> list[Path]:
    """Non-hidden JSON files under ``folder`` (what a leaderboard would read)."""
    return sorted(
        p for p in folder.rglob("*.json")
        if not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )  # fmt: skip


def valid_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
