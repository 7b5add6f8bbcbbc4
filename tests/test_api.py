"""The top-level API: every name ``vilem.__all__`` promises resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vilem


def test_import_vilem_is_cheap_and_exposes_the_api():
    code = (
        "import sys, vilem; assert 'torch' not in sys.modules, 'import vilem pulled in torch'; "
        "print(sorted(vilem.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "load_model" in out.stdout and "evaluate" in out.stdout


@pytest.mark.parametrize("name", [n for n in vilem.__all__ if n != "__version__"])
def test_every_exported_name_resolves(name):
    value = getattr(vilem, name)
    assert value is not None and (callable(value) or isinstance(value, dict))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'evaluat'"):
        vilem.evaluat  # noqa: B018
