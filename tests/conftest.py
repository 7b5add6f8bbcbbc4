import os

import pytest

# tests never touch the user's cache or data folders, and never reach a hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VILEM_CACHE", str(tmp_path_factory.mktemp("vilem-cache")))
