"""A small typed registry: name -> object, with lazy ``"module:attr"`` entries,
a base-class check, "did you mean" on typos and discovery of an entry-point group."""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from vilem.errors import ConfigError

T = TypeVar("T")


def closest(name: str, choices: list[str]) -> str:
    """A ' (did you mean X?)' suffix for an error message, or '' when nothing is close."""
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def import_attr(target: str) -> object:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def load_target(target: str, what: str) -> object:
    """The object ``"package.module:attr"`` names (``attr`` may be dotted), for ``py:`` specs.

    The module is imported as ``python -m`` would find it: from ``sys.path`` (``PYTHONPATH``
    included) and the current folder. Every failure is a one-line ConfigError opening with
    ``what`` (e.g. "model spec 'py:mypkg.models:build'"): a missing module is named, a missing
    attribute gets a did-you-mean over the module's public names.
    """
    module_name, sep, attr = target.partition(":")
    if not (sep and module_name and attr):
        raise ConfigError(f"{what}: expected py:MODULE:ATTR, e.g. py:mypkg.models:build")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # the `vilem` script, unlike `python -m`, lacks it
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ConfigError(
                f"{what}: no module named {missing!r} (is it installed, or on PYTHONPATH?)"
            ) from exc
        raise ConfigError(f"{what}: importing {module_name} failed: {exc}") from exc
    except (ImportError, SyntaxError) as exc:
        raise ConfigError(f"{what}: importing {module_name} failed: {exc}") from exc
    except Exception as exc:  # the module's own code raised: say what and where, in one line
        frames = traceback.extract_tb(exc.__traceback__)
        at = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
        raise ConfigError(
            f"{what}: importing {module_name} raised {type(exc).__name__}: {exc}{at}"
        ) from exc
    where = module_name
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise ConfigError(f"{what}: {where} has no attribute {part!r}{closest(part, public)}")
        obj, where = getattr(obj, part), f"{where}.{part}"
    return obj


class Registry(Generic[T]):
    """Maps names to objects of one kind.

    Args:
        kind: what is registered, used in messages ("dataset", "model").
        base: when given, a registered class must subclass it.
        entry_point_group: an importlib.metadata group whose entries are added on first lookup,
            so an installed third-party package can register without touching vilem.
    """

    def __init__(self, kind: str, base: type | None = None, entry_point_group: str | None = None):
        self.kind = kind
        self.base = base
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T | str] = {}
        self._discovered = entry_point_group is None

    def register(self, name: str, obj: T | str | None = None) -> Callable[[T], T] | None:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator.

        ``obj`` may be a ``"module:attr"`` string, imported on first use.
        """
        if obj is None:

            def decorator(value: T) -> T:
                self.register(name, value)
                return value

            return decorator
        existing = self._entries.get(name)
        # a lazy "module:attr" entry is replaced by the object when its module registers it
        if existing is not None and existing is not obj and not isinstance(existing, str):
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if not isinstance(obj, str):
            self._check(name, obj)
        self._entries[name] = obj
        return None

    def _check(self, name: str, obj: object) -> None:
        if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}")

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for ep in entry_points(group=self.entry_point_group):
            if ep.name not in self._entries:
                self._entries[ep.name] = ep.value

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        self._discover()
        if name not in self._entries:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(
                f"unknown {self.kind} {name!r}{closest(name, self.names())}; known: {known}"
            )
        entry = self._entries[name]
        if isinstance(entry, str):
            try:
                entry = import_attr(entry)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"{self.kind} {name!r} could not be loaded: {exc}") from exc
            self._check(name, entry)
            self._entries[name] = entry
        return entry
