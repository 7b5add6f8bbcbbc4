"""The one config parser: typed dataclasses from plain mappings, ``key.sub=value`` overrides and
YAML reading, shared by the model config, the training config and the bench spec.

Every key is checked against the dataclass it lands in: an unknown key or a badly typed value
raises ConfigError naming the full key path (``model.text.hidden``) and, for a typo, the closest
valid key. Values convert only where nothing is lost: an integer is a valid float, ``1e-4`` (which
YAML 1.1 reads as a string) is a valid float, ``2.0`` is a valid integer; a boolean is never a
number.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from vilem.errors import ConfigError
from vilem.registry import closest

MAX_YAML_BYTES = 1 << 20  # a spec or recipe is a few kB; refuse anything over 1 MiB
MAX_YAML_NODES = 100_000  # nodes after alias expansion (refuses "billion laughs" alias bombs)


# ------------------------------------------------------------------------- typed dataclasses


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _bad(path: str, value: Any, tp: Any) -> ConfigError:
    return ConfigError(f"config key {path!r} must be {_type_name(tp)}, got {value!r}")


def _scalar(value: Any, tp: Any, path: str) -> Any:
    if tp is bool and isinstance(value, bool):
        return value
    if isinstance(value, bool):  # bool is an int subclass: never a number
        raise _bad(path, value, tp)
    if tp is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str and isinstance(value, str):
        return value
    raise _bad(path, value, tp)


def coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted where lossless."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        if len(options) == 1:  # Optional[X]: X's own message says more
            return coerce(value, options[0], path)
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, path)
            except ConfigError:
                continue
        raise _bad(path, value, tp)
    if tp is type(None):
        if value is None:
            return None
        raise _bad(path, value, tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _bad(path, value, tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp in (bool, int, float, str):
        return _scalar(value, tp, path)
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise _bad(path, value, tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _bad(path, value, tp)
            return tuple(
                coerce(v, a, f"{path}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        out = [v if item is Any else coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise ConfigError(f"config key {path!r} must be a mapping, got {value!r}")
    if tp is Any:
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {path}")  # a bug here, not the user


def from_dict(cls: type, raw: Any, path: str = "") -> Any:
    """A ``cls`` instance from a mapping; missing keys take their defaults.

    ``path`` prefixes key names in errors (``"model"`` -> ``model.text.hidden``).
    """
    where = f"config key {path!r}" if path else "the config"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in raw.items():
        full = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise ConfigError(
                f"unknown config key {full!r}{closest(str(key), names)}; "
                f"valid keys under {path or 'the top level'}: {', '.join(names)}"
            )
        kwargs[key] = coerce(value, hints[key], full)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{path or 'the config'}: {exc}") from exc


def to_dict(cfg: Any) -> dict[str, Any]:
    """A (nested) config dataclass -> a JSON/YAML-able dict that ``from_dict`` reads back."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(cfg))


# ------------------------------------------------------------------------- overrides, merging


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=3e-4"`` -> (["optim", "lr"], 0.0003); values are parsed as YAML."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return key.split("."), parsed


def apply_overrides(raw: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key.sub=value`` set (intermediate maps created)."""
    out = copy.deepcopy(dict(raw))
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for i, part in enumerate(keys[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"override {text!r}: {'.'.join(keys[: i + 1])!r} is a value, not a section"
                )
            node = child
        node[keys[-1]] = value
    return out


def merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``patch`` laid over ``base``: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ------------------------------------------------------------------------- YAML


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once (the constructor refuses it anyway)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = size
    return min(size, MAX_YAML_NODES + 1)


def parse_yaml(text: str, what: str) -> Any:
    """Safe-load one YAML document, refusing alias expansion beyond ``MAX_YAML_NODES`` nodes."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ConfigError(
                f"{what} expands to more than {MAX_YAML_NODES:,} YAML nodes "
                "(aliases repeated too often); refusing it"
            )
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {exc}") from exc


def read_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The mapping a YAML file holds ({} for an empty file), with one-line errors."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{what} {path} is {size:,} bytes; the limit is {MAX_YAML_BYTES:,}")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{what} {path} is a directory, not a YAML file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    raw = parse_yaml(text, f"{what} {path}")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path} must hold a mapping, got {type(raw).__name__}")
    return raw


# ------------------------------------------------------------------------- command-line numbers


def _number_flag(kind: type, minimum: float, strict: bool, words: str):
    """An argparse ``type=``: ``kind`` with a lower bound; a bad value is argparse's usual
    one-line usage error (``argument --frames: must be a positive integer, got '0'``)."""
    import argparse
    import math

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}") from None
        low = value <= minimum if strict else value < minimum
        if low or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}")
        return value

    parse.__name__ = words.replace(" ", "_")
    return parse


# every integer and float flag of the ``vilem`` commands takes one of these
positive_int = _number_flag(int, 0, True, "a positive integer")
nonnegative_int = _number_flag(int, 0, False, "a non-negative integer")
positive_float = _number_flag(float, 0.0, True, "a positive number")
