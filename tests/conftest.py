import os
import socket

import pytest

# tests never touch the user's cache or data folders, and never reach a hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VILEM_CACHE", str(tmp_path_factory.mktemp("vilem-cache")))
    # `vilem eval` without --out writes under runs/eval/ of the working folder: not in tests
    out = tmp_path_factory.mktemp("eval-out")
    template = str(out / "{model}" / "{dataset}-{split}__{task}.json")
    monkeypatch.setattr("vilem.cli.EVAL_OUT", template)


@pytest.fixture
def free_port():
    """A function returning a free loopback TCP port, for gloo process groups in tests."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick
