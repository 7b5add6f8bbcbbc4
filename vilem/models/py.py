"""``py:MODULE:ATTR[:ARG]`` model specs: a model from any importable Python code.

ATTR (dotted names allowed) is looked up in MODULE and resolved to a model:

- a ``RetrievalModel``, or any object with ``encode_images`` and ``encode_texts``: used as is;
- a callable (a function, or a class): called as ``ATTR()``, or ``ATTR(ARG)`` when the spec has
  ``:ARG`` (one string, which may itself hold ``:``); ``device="cuda"`` (or ``"cpu"``) is added
  as a keyword when ATTR takes a ``device`` parameter. It must return one of the above.

A duck-typed object is wrapped in ``PyModel``, which L2-normalises its outputs.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vilem.errors import ConfigError
from vilem.models.base import RetrievalModel, register_model, state_dict_digest
from vilem.registry import load_target

MODEL_METHODS = ("encode_images", "encode_texts")
EXPECTED = "a RetrievalModel or an object with encode_images and encode_texts"


def _is_model(obj: object) -> bool:
    # a class has these methods too, but it is a factory: it is called
    return not isinstance(obj, type) and all(callable(getattr(obj, m, None)) for m in MODEL_METHODS)


def _type_name(obj: object) -> str:
    kind = type(obj)
    return (
        kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    )


def _source_digest(obj: object) -> str:
    """A hash of the source file defining ``obj``'s class: editing the code changes the
    fingerprint, so the embedding cache never serves embeddings of an older version."""
    module = sys.modules.get(type(obj).__module__)
    path = getattr(module, "__file__", None)
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        return ""


def _as_embeddings(value: Any, what: str, method: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor) or value.ndim != 2:
        raise ConfigError(
            f"{what}: {method} returned {_type_name(value)}"
            f"{f' of shape {tuple(value.shape)}' if hasattr(value, 'shape') else ''}, "
            "expected a (batch, dim) tensor or array"
        )
    return F.normalize(value.detach().float(), dim=-1).cpu()


class PyModel(RetrievalModel):
    """A duck-typed model (``encode_images`` and ``encode_texts``) as a ``RetrievalModel``.

    The object may also define ``preprocess(frames)``, ``preprocessing()``, ``image_size``,
    ``mean``, ``std``, ``config()``, ``weights_digest()`` or be a ``torch.nn.Module`` (its weights
    are then hashed); whatever it lacks comes from ``RetrievalModel``'s defaults.

    Args:
        obj: the object.
        target: the spec's ``MODULE:ATTR[:ARG]``, recorded in ``config()``.
        device: the device it was built for.
    """

    def __init__(self, obj: Any, target: str, device: str = "cpu"):
        self.obj, self.target = obj, target
        self.what = f"model spec 'py:{target}'"
        self.device = str(getattr(obj, "device", device))
        for name in ("image_size", "mean", "std", "text_max_len"):
            if getattr(obj, name, None) is not None:
                setattr(self, name, getattr(obj, name))

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        if callable(getattr(self.obj, "preprocess", None)):
            return torch.as_tensor(self.obj.preprocess(frames))
        return super().preprocess(frames)

    def preprocessing(self) -> dict[str, Any]:
        if callable(getattr(self.obj, "preprocessing", None)):
            return dict(self.obj.preprocessing())
        if callable(getattr(self.obj, "preprocess", None)):
            return {"preprocess": f"{_type_name(self.obj)}.preprocess"}
        return super().preprocessing()

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return _as_embeddings(self.obj.encode_images(pixels), self.what, "encode_images")

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return _as_embeddings(self.obj.encode_texts(list(texts)), self.what, "encode_texts")

    def config(self) -> dict[str, Any]:
        own = self.obj.config() if callable(getattr(self.obj, "config", None)) else {}
        return {
            "name": "py",
            "target": self.target,
            "class": _type_name(self.obj),
            "source_digest": _source_digest(self.obj),
            **({"model": own} if own else {}),
        }

    def weights_digest(self) -> str:
        if callable(getattr(self.obj, "weights_digest", None)):
            return str(self.obj.weights_digest())
        if isinstance(self.obj, torch.nn.Module):
            return state_dict_digest(self.obj)
        return ""


def _call(factory: Any, argument: str | None, device: str, what: str) -> Any:
    """``factory()`` / ``factory(argument)``, plus ``device=`` when it takes one; a call that
    does not fit its signature is one line, not a TypeError from inside."""
    args = () if argument is None else (argument,)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins have no signature: call as the spec says
        return factory(*args)
    takes_device = "device" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    kwargs = {"device": device} if takes_device else {}
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as exc:
        usage = "with one argument (the spec's :ARG)" if args else "with no arguments"
        raise ConfigError(f"{what}: it cannot be called {usage}: {exc}") from exc
    return factory(*args, **kwargs)


def split_spec(argument: str | None) -> tuple[str, str | None, str]:
    """``MODULE:ATTR[:ARG]`` -> (``MODULE:ATTR``, ARG or None, the one-line message prefix)."""
    what = f"model spec 'py:{argument or ''}'"
    module, _, rest = (argument or "").partition(":")
    attr, sep, arg = rest.partition(":")
    return f"{module}:{attr}" if attr else module, arg if sep else None, what


def import_target(argument: str | None) -> object:
    """Import what ``py:ARGUMENT`` names, without calling it (a cheap pre-flight check)."""
    target, _, what = split_spec(argument)
    return load_target(target, what)


def resolve(argument: str | None, device: str = "cpu") -> RetrievalModel:
    """The model ``py:ARGUMENT`` names; ARGUMENT is ``MODULE:ATTR[:ARG]``."""
    target, arg, what = split_spec(argument)
    obj = load_target(target, what)
    if _is_model(obj):
        if arg is not None:
            raise ConfigError(f"{what}: {target} is a model, not a callable taking :{arg}")
    elif callable(obj):
        obj = _call(obj, arg, device, what)
        if not _is_model(obj):
            raise ConfigError(f"{what}: {target} returned {_type_name(obj)}, expected {EXPECTED}")
    else:
        raise ConfigError(
            f"{what}: {target} is {_type_name(obj)}, expected {EXPECTED}, or a callable"
        )
    return obj if isinstance(obj, RetrievalModel) else PyModel(obj, str(argument), device)


@register_model("py")
def build_py(argument: str | None, device: str = "cpu") -> RetrievalModel:
    """``py:MODULE:ATTR[:ARG]``: a model from your own code (see docs/plugins.md)."""
    return resolve(argument, device)
