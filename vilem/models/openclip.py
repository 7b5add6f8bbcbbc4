"""An open_clip model (``open-clip-torch``) from local weights, with its own val transform and
tokenizer. Nothing is downloaded and no pickle is ever opened: weights are safetensors only.

Specs:

- ``open-clip:ARCH:FILE``: an open_clip architecture name (``open_clip.list_models()``) and a
  ``.safetensors`` state dict. Preprocessing is open_clip's default for ARCH;
- ``open-clip:ARCH@TAG:FILE``: FILE holds the weights of open_clip's pretrained tag TAG (e.g.
  ``ViT-B-16-SigLIP@webli``): preprocessing (mean, std, interpolation, resize mode) and QuickGELU
  follow that tag, as ``create_model_and_transforms(ARCH, pretrained=TAG)`` would set them;
- ``open-clip:DIR``: a folder in open_clip's Hugging Face hub layout, ``open_clip_config.json``
  (``model_cfg`` and ``preprocess_cfg``) with ``open_clip_model.safetensors`` and, for models with
  a Hugging Face tokenizer, its files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vilem.errors import ConfigError
from vilem.io import PICKLE_SUFFIXES, safe_weights
from vilem.models.base import RetrievalModel, register_model, state_dict_digest
from vilem.registry import closest

USAGE = (
    "open-clip:ARCH:FILE (a .safetensors checkpoint of architecture ARCH) or open-clip:DIR "
    "(open_clip_config.json with open_clip_model.safetensors)"
)
# weight files of the hub layout, in open_clip's own order of preference
FOLDER_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
)
PICKLE_REFUSED = (
    "is a pickle ({suffix}), which vilem never unpickles; convert it to safetensors "
    "(see docs/plugins.md)"
)


def _open_clip():
    try:
        import open_clip
    except ImportError as exc:  # a declared dependency, but installs can be partial
        raise ConfigError(
            "model 'open-clip' needs the open-clip-torch package: pip install open-clip-torch"
        ) from exc
    return open_clip


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # open_clip logs "No pretrained weights loaded ... initialized randomly" on the root logger
    # before vilem loads the weights itself: a misleading line on stderr
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


class OpenClip(RetrievalModel):
    """An open_clip CLIP/CustomTextCLIP/CoCa seen as a dual encoder.

    Args:
        model: the open_clip model, weights loaded.
        transform: its val transform (PIL image -> normalised tensor).
        tokenizer: its tokenizer (list of strings -> LongTensor).
        source: what the spec named, recorded in ``config()``.
        device: where the model runs.
    """

    def __init__(
        self, model: torch.nn.Module, transform: Any, tokenizer: Any, source: dict[str, Any],
        device: str = "cpu",
    ):  # fmt: skip
        self.transform, self.tokenizer, self.source = transform, tokenizer, source
        self.device = device
        self.preprocess_cfg = _jsonable(model.visual.preprocess_cfg)
        size = self.preprocess_cfg["size"]
        self.image_size = size[0] if isinstance(size, list) and size[0] == size[-1] else size
        self.mean = tuple(self.preprocess_cfg["mean"])
        self.std = tuple(self.preprocess_cfg["std"])
        self.text_max_len = getattr(tokenizer, "context_length", None)
        self._digest = state_dict_digest(model)
        self.model = model.to(device).eval()

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) through open_clip's own val transform, one PIL image
        each, exactly as open_clip evaluates."""
        from PIL import Image

        images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
        return torch.stack([self.transform(im) for im in images])

    def preprocessing(self) -> dict[str, Any]:
        return {"open_clip": self.preprocess_cfg}

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.encode_image(pixels.to(self.device))
        return F.normalize(out.float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        out = self.model.encode_text(self.tokenizer(list(texts)).to(self.device))
        return F.normalize(out.float(), dim=-1).cpu()

    def config(self) -> dict[str, Any]:
        return {
            "name": "open-clip",
            **self.source,
            "open_clip": _open_clip().__version__,
            "preprocess": self.preprocess_cfg,
        }

    def weights_digest(self) -> str:
        return self._digest


def _check_safetensors(path: Path, what: str) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ConfigError(f"{what}: {path} " + PICKLE_REFUSED.format(suffix=path.suffix))
    if path.suffix.lower() != ".safetensors":
        raise ConfigError(f"{what}: {path} is not a .safetensors file; expected {USAGE}")
    if not path.is_file():
        raise ConfigError(f"{what}: checkpoint not found: {path}")


def _load_weights(model: torch.nn.Module, path: Path, what: str) -> None:
    """Load ``path`` (safetensors, checked) with open_clip's own key conversions; a mismatch
    with the architecture is one line naming the first differing keys."""
    from safetensors import SafetensorError

    open_clip = _open_clip()
    try:
        keys = open_clip.load_checkpoint(model, str(path), strict=False)
    except SafetensorError as exc:
        raise ConfigError(f"{what}: {path} is not a readable safetensors file: {exc}") from exc
    except (OSError, RuntimeError, ValueError) as exc:  # e.g. a tensor shape that differs
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = " ".join(lines[:2])[:300] or type(exc).__name__  # the heading and first error
        raise ConfigError(f"{what}: could not load weights from {path}: {first}") from exc
    missing, unexpected = list(keys.missing_keys), list(keys.unexpected_keys)
    if missing or unexpected:
        raise ConfigError(
            f"{what}: the weights in {path} do not fit the architecture: {len(missing)} missing "
            f"keys{f' (e.g. {missing[0]})' if missing else ''}, {len(unexpected)} unexpected"
            f"{f' (e.g. {unexpected[0]})' if unexpected else ''}"
        )


def _tag_overrides(arch: str, tag: str, what: str) -> dict[str, Any]:
    """create_model_and_transforms keywords that give TAG's preprocessing and activation."""
    open_clip = _open_clip()
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ConfigError(
            f"{what}: open_clip has no pretrained tag {tag!r} for {arch}{closest(tag, tags)}; "
            f"tags: {', '.join(tags) or 'none'}"
        )
    return {
        "image_mean": cfg.get("mean"),
        "image_std": cfg.get("std"),
        "image_interpolation": cfg.get("interpolation"),
        "image_resize_mode": cfg.get("resize_mode"),
        "force_quick_gelu": bool(cfg.get("quick_gelu", False)),
    }


def _create(name: str, what: str, **overrides: Any) -> tuple[torch.nn.Module, Any, Any]:
    """open_clip's model (random weights: vilem loads them), val transform and tokenizer."""
    open_clip = _open_clip()
    try:
        with _quiet_root_logger():
            model, _, transform = open_clip.create_model_and_transforms(
                name, load_weights=False, pretrained_text=False, **overrides
            )
            tokenizer = open_clip.get_tokenizer(name)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        # e.g. a Hugging Face tokenizer or text tower that is not available offline
        raise ConfigError(f"{what}: open_clip could not build {name}: {exc}") from exc
    return model, transform, tokenizer


def _from_file(arch_part: str, path: Path, device: str, what: str) -> OpenClip:
    open_clip = _open_clip()
    arch, _, tag = arch_part.partition("@")
    names = open_clip.list_models()
    if arch not in names:
        raise ConfigError(
            f"{what}: unknown open_clip architecture {arch!r}{closest(arch, names)} "
            "(open_clip.list_models() has them)"
        )
    overrides = _tag_overrides(arch, tag, what) if tag else {}
    _check_safetensors(path, what)
    model, transform, tokenizer = _create(arch, what, **overrides)
    _load_weights(model, path, what)
    source = {"architecture": arch, "pretrained_tag": tag or None, "checkpoint": str(path)}
    return OpenClip(model, transform, tokenizer, source, device)


def _from_folder(folder: Path, device: str, what: str) -> OpenClip:
    if not (folder / "open_clip_config.json").is_file():
        raise ConfigError(f"{what}: folder {folder} has no open_clip_config.json; expected {USAGE}")
    fix = "save them as open_clip_model.safetensors"
    weights = safe_weights(folder, FOLDER_WEIGHTS, f"{what}: folder", fix)
    model, transform, tokenizer = _create(f"local-dir:{folder}", what)
    _load_weights(model, weights, what)
    return OpenClip(model, transform, tokenizer, {"folder": str(folder)}, device)


@register_model("open-clip")
def build_open_clip(argument: str | None, device: str = "cpu") -> OpenClip:
    """``open-clip:ARCH[@TAG]:FILE.safetensors`` or ``open-clip:DIR`` (open_clip hub layout)."""
    what = f"model spec 'open-clip:{argument or ''}'"
    if not argument:
        raise ConfigError(f"model spec 'open-clip' needs local weights: {USAGE}")
    if Path(argument).is_dir():
        return _from_folder(Path(argument), device, what)
    arch_part, sep, path = argument.partition(":")
    if sep and arch_part and path:
        return _from_file(arch_part, Path(path), device, what)
    if argument.partition("@")[0] in _open_clip().list_models():
        raise ConfigError(f"{what} names no weights (nothing is downloaded): {USAGE}")
    raise ConfigError(f"{what}: {argument} is not a folder; expected {USAGE}")
