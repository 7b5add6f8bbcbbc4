"""ViLEM checkpoints: a folder with ``model.safetensors`` and ``config.json``.

Only safetensors weights are read (pickle files such as ``pytorch_model.bin`` can run code and
are refused); a checkpoint that does not match its config is refused, never partially loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from vilem.errors import ConfigError, DataError
from vilem.io import PICKLE_SUFFIXES, atomic_write_bytes, atomic_write_json, read_json, safe_weights
from vilem.model.config import CHECKPOINT_FORMAT, config_from_dict, config_to_dict
from vilem.model.vilem import ViLEM

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = CHECKPOINT_FORMAT
FORMAT_VERSION = 1


def _unshared_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with every tensor owning its storage: safetensors refuses tensors that
    share memory (tied or sliced weights), so later sharers are cloned."""
    state, seen = {}, set()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach()
        key = (tensor.untyped_storage().data_ptr(), tensor.device)
        if key in seen or not tensor.is_contiguous():
            tensor = tensor.clone().contiguous()
        seen.add(key)
        state[name] = tensor.cpu()
    return state


def save_model(model: ViLEM, directory: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed).

    Each file is written under a temporary name and moved into place, so an interrupted save
    never leaves a truncated file behind.
    """
    folder = Path(directory)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION}
    weights = save(_unshared_state(model), metadata={k: str(v) for k, v in meta.items()})
    atomic_write_bytes(folder / WEIGHTS_FILE, weights)
    atomic_write_json(folder / CONFIG_FILE, {**meta, "model": config_to_dict(model.config)})
    return folder


def _checkpoint_folder(path: str | os.PathLike) -> Path:
    given = Path(path)
    if given.suffix.lower() in PICKLE_SUFFIXES:
        raise ConfigError(
            f"refusing to load {given}: only safetensors checkpoints are read (pickle files "
            "can run arbitrary code); save the model with vilem.model.checkpoint.save_model"
        )
    if given.is_file() and given.name == WEIGHTS_FILE:
        given = given.parent
    if not given.exists():
        raise ConfigError(f"checkpoint folder not found: {given}")
    if not given.is_dir():
        raise ConfigError(
            f"a checkpoint is a folder with {WEIGHTS_FILE} and {CONFIG_FILE}: {given}"
        )
    safe_weights(given, (WEIGHTS_FILE,), "checkpoint", "save it with vilem's save_model")
    if not (given / CONFIG_FILE).is_file():
        raise ConfigError(f"checkpoint {given} has no {CONFIG_FILE}")
    return given


def _first(keys: list[str], n: int = 5) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# keys checkpoints of vilem <= 0.1 wrote into the model config that are training settings now
LEGACY_MODEL_KEYS = ("proxy_ramp_steps", "distill_alpha")


def _model_section(meta: dict) -> dict:
    """The model config of a checkpoint, minus the training settings older ones carried."""
    model = {k: v for k, v in meta["model"].items() if k not in LEGACY_MODEL_KEYS}
    if isinstance(model.get("negatives"), dict):
        model["negatives"] = {k: v for k, v in model["negatives"].items() if k != "mlm_path"}
    return model


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> ViLEM:
    """Rebuild a ViLEM model from a checkpoint folder written by ``save_model``.

    Args:
        directory: the checkpoint folder (or its ``model.safetensors``).
        device: where the weights go.

    Raises:
        ConfigError: missing folder/file, a pickle checkpoint, a config that does not parse, or
            weights that do not match the architecture (missing, unexpected or misshapen tensors).
    """
    folder = _checkpoint_folder(directory)
    try:
        meta = read_json(folder / CONFIG_FILE, "checkpoint config")
    except DataError as exc:
        raise ConfigError(str(exc)) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "model" not in meta:
        raise ConfigError(f"{folder / CONFIG_FILE} is not a vilem checkpoint config")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{folder / CONFIG_FILE}: checkpoint format version {meta.get('format_version')!r} "
            f"is not supported (this vilem reads {FORMAT_VERSION})"
        )
    if not isinstance(meta["model"], dict):
        raise ConfigError(f"{folder / CONFIG_FILE}: 'model' must be a mapping")
    cfg = config_from_dict(_model_section(meta), path="model")
    model = ViLEM(cfg, load_pretrained=False)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"cannot read {folder / WEIGHTS_FILE}: {exc}") from exc

    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(
            f"checkpoint {folder} does not match its config's architecture: "
            f"missing tensors [{_first(missing)}], unexpected tensors [{_first(unexpected)}]"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise ConfigError(f"checkpoint {folder} has tensors of the wrong shape: {_first(wrong)}")
    model.load_state_dict(state, strict=True)
    return model.to(device)
