"""Hugging Face dual encoders from local folders (nothing is downloaded, no pickle is opened):

- ``hf-clip:DIR``: a transformers ``CLIPModel``;
- ``hf-siglip:DIR``: a ``SiglipModel``;
- ``hf:DIR``: any ``AutoModel`` with ``get_image_features`` and ``get_text_features``.

Pixels come from the folder's own image processor (``preprocessor_config.json``: resize, crop and
normalisation as the model's authors set them) and texts from its own tokenizer, padded as the
authors pad them. Weights must be safetensors (``model.safetensors``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vilem.errors import ConfigError
from vilem.io import safe_weights
from vilem.model.config import CHECKPOINT_FORMAT
from vilem.models.base import RetrievalModel, register_model, state_dict_digest


@dataclass(frozen=True)
class Family:
    model_class: str  # the transformers class that loads the folder
    model_type: str | None  # the config.json model_type it needs (None: any)


FAMILIES = {
    "hf-clip": Family("CLIPModel", "clip"),
    "hf-siglip": Family("SiglipModel", "siglip"),
    "hf": Family("AutoModel", None),
}
# SigLIP was trained on texts padded to the full length without an attention mask, and pools the
# last position (padding for short texts): its embeddings are only right when tokenised that way.
# Other models pad to the longest text of the batch and mask the padding.
FULL_LENGTH_TEXTS = {"siglip"}
# the image processor a folder without preprocessor_config.json gets: the class's defaults (the
# authors' normalisation), sized to the model's image size: CLIP resizes the shorter side and
# centre-crops, SigLIP resizes to the square
FALLBACK_PROCESSORS: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
    "clip": (
        "CLIPImageProcessor",
        lambda s: {"size": {"shortest_edge": s}, "crop_size": {"height": s, "width": s}},
    ),
    "siglip": ("SiglipImageProcessor", lambda s: {"size": {"height": s, "width": s}}),
}
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def _features(out: Any) -> torch.Tensor:
    # transformers 4.x returns a tensor, 5.x an output object with the projected pooler_output
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' "Loading weights" bar off while a folder loads (restored after): a user
    error must stay one line on stderr, and evaluation has its own progress."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _reference_backend() -> dict[str, Any]:
    """Keywords choosing the PIL image processors: the reference implementation published
    numbers come from (the torchvision ones resize slightly differently)."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"backend": "pil"} if major >= 5 else {"use_fast": False}


def _image_processor(folder: Path, config: Any, image_size: int) -> tuple[Any, str]:
    """The folder's image processor and where it came from."""
    import transformers

    if (folder / "preprocessor_config.json").is_file():
        proc = transformers.AutoImageProcessor.from_pretrained(
            folder, local_files_only=True, **_reference_backend()
        )
        return proc, "preprocessor_config.json"
    fallback = FALLBACK_PROCESSORS.get(config.model_type)
    if fallback is None:
        raise ConfigError(
            f"folder {folder} has no preprocessor_config.json (the model's image processor)"
        )
    name, sizes = fallback
    # transformers 5 names the PIL processors ...Pil; in 4.x the plain name is the PIL one
    cls = getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)
    return cls(**sizes(image_size)), f"{name} defaults (no preprocessor_config.json)"


class HFDualEncoder(RetrievalModel):
    """A transformers model with ``get_image_features`` / ``get_text_features``.

    Args:
        folder: a local folder with config.json, model.safetensors, tokenizer files and
            (preferably) preprocessor_config.json.
        kind: the spec name, a key of ``FAMILIES``.
        device: where the model runs.
    """

    def __init__(self, folder: Path, kind: str = "hf-clip", device: str = "cpu"):
        import transformers

        self.folder, self.kind, self.device = Path(folder), kind, device
        model_class = getattr(transformers, FAMILIES[kind].model_class)
        with _no_progress_bars():
            model = model_class.from_pretrained(
                self.folder, local_files_only=True, use_safetensors=True
            )
        for method in ("get_image_features", "get_text_features"):
            if not callable(getattr(model, method, None)):
                raise ConfigError(
                    f"{kind} folder {folder} holds a {type(model).__name__}, which has no "
                    f"{method}: not a dual encoder"
                )
        self._digest = state_dict_digest(model)
        self.model = model.to(device).eval()
        config = model.config
        self.model_type = config.model_type
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.folder, local_files_only=True
        )
        vision = getattr(config, "vision_config", config)
        self.image_size = int(getattr(vision, "image_size", 224))
        self.processor, self.processor_source = _image_processor(
            self.folder, config, self.image_size
        )
        self.mean = tuple(getattr(self.processor, "image_mean", None) or self.mean)
        self.std = tuple(getattr(self.processor, "image_std", None) or self.std)
        text = getattr(config, "text_config", config)
        limits = [getattr(text, "max_position_embeddings", None), self.tokenizer.model_max_length]
        self.max_len = min([int(n) for n in limits if isinstance(n, int) and n > 0] or [77])
        self.text_max_len = self.max_len
        self.full_length = self.model_type in FULL_LENGTH_TEXTS
        accepted = inspect.signature(model.get_text_features).parameters
        wanted = (
            ("input_ids",)
            if self.full_length
            else ("input_ids", "attention_mask", "token_type_ids")
        )
        self.text_inputs = [k for k in wanted if k in accepted]

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) through the model's own image processor."""
        images = [np.ascontiguousarray(f) for f in frames]
        out = self.processor(images=images, return_tensors="pt", input_data_format="channels_last")
        return out["pixel_values"]

    def preprocessing(self) -> dict[str, Any]:
        return {
            "processor": type(self.processor).__name__,
            "source": self.processor_source,
            "config": json.loads(self.processor.to_json_string()),
        }

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixels.to(self.device))
        return F.normalize(_features(out).float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        tok = self.tokenizer(
            list(texts), padding="max_length" if self.full_length else True, truncation=True,
            max_length=self.max_len, return_tensors="pt",
        )  # fmt: skip
        inputs = {k: tok[k].to(self.device) for k in self.text_inputs if k in tok}
        out = self.model.get_text_features(**inputs)
        return F.normalize(_features(out).float(), dim=-1).cpu()

    def config(self) -> dict[str, Any]:
        return {
            "name": self.kind,
            "folder": str(self.folder),
            "model_class": type(self.model).__name__,
            "model_type": self.model_type,
            "image_size": self.image_size,
            "text": {"max_length": self.max_len, "full_length_padding": self.full_length},
        }

    def weights_digest(self) -> str:
        return self._digest


def _check_folder(kind: str, argument: str | None) -> Path:
    """Refuse, before loading anything, a folder that cannot hold a safe ``kind`` model."""
    family = FAMILIES[kind]
    if not argument:
        raise ConfigError(f"model spec {kind!r} needs a local folder: {kind}:path/to/folder")
    folder = Path(argument)
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"{kind} folder {folder} has no config.json (a transformers {family.model_class})"
        )
    try:
        config = json.loads((folder / "config.json").read_text())
        model_type = config.get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{kind} folder {folder}: config.json is not a JSON object") from exc
    if config.get("format") == CHECKPOINT_FORMAT:
        raise ConfigError(
            f"{folder} is a vilem checkpoint, not a transformers folder: use vilem:{folder}"
        )
    if model_type is None:
        raise ConfigError(
            f"{kind} folder {folder}: config.json has no model_type, so it is not a transformers "
            f"model folder (save one with save_pretrained)"
        )
    if family.model_type and model_type != family.model_type:
        raise ConfigError(
            f"{kind} folder {folder} holds a {model_type!r} model, not {family.model_type!r}: "
            f"use hf:{folder} for any model with get_image_features/get_text_features"
        )
    fix = "save the model with safe_serialization (model.safetensors)"
    safe_weights(folder, SAFE_WEIGHTS, f"{kind} folder", fix)
    return folder


def _build(kind: str, argument: str | None, device: str) -> HFDualEncoder:
    folder = _check_folder(kind, argument)
    try:
        return HFDualEncoder(folder, kind, device)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ConfigError(
            f"could not load a {FAMILIES[kind].model_class} from {folder}: {detail}"
        ) from exc


@register_model("hf-clip")
def build_hf_clip(argument: str | None, device: str = "cpu") -> HFDualEncoder:
    """``hf-clip:DIR``: a transformers CLIPModel folder (config, safetensors, tokenizer)."""
    return _build("hf-clip", argument, device)


@register_model("hf-siglip")
def build_hf_siglip(argument: str | None, device: str = "cpu") -> HFDualEncoder:
    """``hf-siglip:DIR``: a transformers SiglipModel folder (texts padded to full length)."""
    return _build("hf-siglip", argument, device)


@register_model("hf")
def build_hf(argument: str | None, device: str = "cpu") -> HFDualEncoder:
    """``hf:DIR``: any transformers AutoModel with get_image_features/get_text_features."""
    return _build("hf", argument, device)
