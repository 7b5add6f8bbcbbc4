"""Dataset adapters. Built-in ones are registered lazily so importing vilem stays cheap.

A dataset is named by its registered name (``vilem datasets``; installed packages add names
through the ``vilem.datasets`` entry-point group) or by a ``py:MODULE:ATTR`` spec: ATTR is a
``DatasetAdapter`` subclass, or a function ``(split, root=None, **options) -> Split``.
"""

import inspect
from typing import Any

from vilem.data.base import (
    DATASETS,
    PROTOCOLS,
    DatasetAdapter,
    Split,
    default_root,
    register_dataset,
)
from vilem.errors import ConfigError
from vilem.registry import load_target

for _name, _target in {
    "synthetic": "vilem.data.synthetic:SyntheticImages",
    "synthetic-video": "vilem.data.synthetic:SyntheticVideos",
    "coco": "vilem.data.karpathy:Coco",
    "flickr30k": "vilem.data.karpathy:Flickr30k",
    "msrvtt": "vilem.data.msrvtt:MsrVtt",
    "msvd": "vilem.data.msvd:Msvd",
    "didemo": "vilem.data.didemo:DiDeMo",
    "activitynet": "vilem.data.activitynet:ActivityNet",
    "lsmdc": "vilem.data.lsmdc:Lsmdc",
    "vatex": "vilem.data.vatex:Vatex",
    "sugarcrepe": "vilem.data.sugarcrepe:SugarCrepe",
}.items():
    DATASETS.register(_name, _target)


def load_split(name: str, split: str, root=None, **options) -> Split:
    """Load ``split`` of dataset ``name`` from ``root`` (default: ``datasets/<name>``).

    ``name`` is a registered adapter or ``py:MODULE:ATTR`` (see the module docstring). Every
    adapter takes ``allow_symlinks`` (default false): follow a symlink inside the root whose
    target lies outside it, which is refused otherwise."""
    allow = options.pop("allow_symlinks", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"dataset option allow_symlinks must be true or false, got {allow!r}")
    if name.startswith("py:"):
        return _load_py_split(name, split, root, allow, options)
    adapter = DATASETS.get(name)(root, **options)
    adapter.allow_symlinks = allow
    return adapter.load_split(split)


def _load_py_split(spec: str, split: str, root: Any, allow: bool, options: dict[str, Any]) -> Split:
    """A ``py:MODULE:ATTR`` dataset: an adapter class, or a function returning a Split."""
    what = f"dataset spec {spec!r}"
    target = spec.removeprefix("py:")
    obj = load_target(target, what)
    if isinstance(obj, type) and issubclass(obj, DatasetAdapter):
        if root is None and not isinstance(getattr(obj, "name", None), str):
            raise ConfigError(f"{what}: {obj.__name__} sets no name, so it needs a root (--root)")
        adapter = obj(root, **options)
        adapter.allow_symlinks = allow
        return adapter.load_split(split)
    if isinstance(obj, type) or not callable(obj):
        raise ConfigError(
            f"{what}: {target} is {_kind(obj)}, expected a DatasetAdapter subclass or a "
            "function (split, root=None, **options) -> Split"
        )
    try:
        inspect.signature(obj).bind(split, root=root, **options)
    except TypeError as exc:
        raise ConfigError(
            f"{what}: it cannot be called as (split, root=..., **options): {exc}"
        ) from exc
    except ValueError:  # no signature to check: let the call say
        pass
    result = obj(split, root=root, **options)
    if not isinstance(result, Split):
        raise ConfigError(f"{what}: {target} returned {_kind(result)}, expected a vilem.data.Split")
    return result


def _kind(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    kind = type(obj)
    return (
        kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    )


__all__ = [
    "DATASETS",
    "PROTOCOLS",
    "DatasetAdapter",
    "Split",
    "default_root",
    "load_split",
    "register_dataset",
]
