"""Typed training configuration: YAML recipe + ``key.sub=value`` overrides -> ``TrainConfig``.

Every key is checked: an unknown key or a badly typed value raises ConfigError naming the full
key path (``optim.lr``) and, for typos, the closest valid key. The ``model`` section is the
ViLEM model config as a dict; it is validated by ``vilem.model.vilem.config_from_dict``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from vilem.errors import ConfigError
from vilem.registry import closest


@dataclass
class DataCfg:
    dataset: str = "synthetic"  # registered dataset adapter name
    root: str | None = None  # data root; None = the adapter's default (datasets/<name>)
    split: str = "train"  # split trained on
    val_split: str | None = "val"  # split for periodic retrieval validation; None = no validation
    frames: int = 4  # frames per video clip (video datasets only)
    sampling: Literal["random", "headtail", "uniform"] = "random"  # training frame sampling
    augment: bool = False  # light random-resized-crop (no flips: they break left/right captions)
    cache_images: bool = True  # decode small images once into memory (uint8)
    val_max_items: int | None = None  # validate on the first N items only (speed)


@dataclass
class OptimCfg:
    lr: float = 1e-4  # peak learning rate after warm-up
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.02  # AdamW decay; never applied to biases, norms, temperature
    image_lr_mult: float = 1.0  # image tower lr = lr * image_lr_mult (pretrained ViTs like < 1)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 0  # linear warm-up, in optimizer steps
    steps: int | None = None  # total optimizer steps; exactly one of steps / epochs
    epochs: int | None = None  # total epochs (converted to steps from the data size)
    batch_size: int = 32  # per process, per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    clip_grad: float | None = None  # max global grad norm; None = no clipping


@dataclass
class TrainConfig:
    model: dict[str, Any] = field(default_factory=dict)  # ViLEMConfig as a dict
    init_from: str | None = None  # a vilem model folder whose weights start training (fine-tune)
    data: DataCfg = field(default_factory=DataCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    amp: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    device: str = "auto"  # auto: cuda when available (LOCAL_RANK picks the GPU), else cpu
    seed: int = 0
    log_every: int = 10  # optimizer steps between log.jsonl records
    val_every: int = 0  # steps between validations; 0 = only after the last step
    save_every: int = 0  # steps between checkpoints; 0 = only at the end (or when stopped)
    num_workers: int = 0  # DataLoader worker processes
    # steps of the text-only detector in the negatives report (synthetic data only, written to
    # negatives.json before training); 0 = edit figures only, -1 = no report
    plausibility_steps: int = 300

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-able dict that ``config_from_mapping`` turns back into this config."""
        out = dataclasses.asdict(self)
        out["optim"]["betas"] = list(self.optim.betas)
        return out


# --------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _bad(path: str, value: Any, tp: Any) -> ConfigError:
    return ConfigError(f"config key {path!r} must be {_type_name(tp)}, got {value!r}")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted where lossless."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, path)
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
        if not isinstance(value, dict):
            raise ConfigError(f"config key {path!r} must be a mapping, got {value!r}")
        return _build(tp, value, path + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _bad(path, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _bad(path, value, tp)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads "1e-4" (no dot) as a string; accept numeric strings
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise _bad(path, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _bad(path, value, tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise _bad(path, value, tp)
        return tuple(
            _coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"config key {path!r} must be a mapping, got {value!r}")
    raise TypeError(f"unsupported config annotation {tp!r} at {path}")  # a bug here, not the user


def _build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(
                f"unknown config key {prefix + str(key)!r}{closest(str(key), names)}; "
                f"valid keys under {prefix.rstrip('.') or 'the top level'}: {', '.join(names)}"
            )
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _validate(cfg: TrainConfig) -> None:
    o = cfg.optim
    if (o.steps is None) == (o.epochs is None):
        raise ConfigError("set exactly one of 'optim.steps' and 'optim.epochs'")
    for path, value, low in [
        ("optim.steps", o.steps, 1),
        ("optim.epochs", o.epochs, 1),
        ("optim.batch_size", o.batch_size, 1),
        ("optim.grad_accum", o.grad_accum, 1),
        ("optim.warmup_steps", o.warmup_steps, 0),
        ("data.frames", cfg.data.frames, 1),
        ("log_every", cfg.log_every, 1),
        ("val_every", cfg.val_every, 0),
        ("save_every", cfg.save_every, 0),
        ("num_workers", cfg.num_workers, 0),
    ]:
        if value is not None and value < low:
            raise ConfigError(f"config key {path!r} must be >= {low}, got {value}")
    if o.lr <= 0:
        raise ConfigError(f"config key 'optim.lr' must be > 0, got {o.lr}")
    if o.clip_grad is not None and o.clip_grad <= 0:
        raise ConfigError(f"config key 'optim.clip_grad' must be > 0 or null, got {o.clip_grad}")


def validate_model_section(model: dict[str, Any]) -> Any:
    """The ViLEMConfig of the ``model`` dict; errors name keys as ``model.text.hidden``."""
    from vilem.model.vilem import config_from_dict

    config = config_from_dict(model, path="model")
    config.validate()
    return config


def config_from_mapping(raw: dict[str, Any], check_model: bool = True) -> TrainConfig:
    """A validated TrainConfig from a plain dict (a parsed YAML recipe)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a training config must be a mapping, got {type(raw).__name__}")
    cfg = _build(TrainConfig, raw)
    _validate(cfg)
    if check_model:
        validate_model_section(cfg.model)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=3e-4"`` -> (["optim", "lr"], 0.0003); values are parsed as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return key.split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key.sub=value`` set (intermediate maps created)."""
    import copy

    out = copy.deepcopy(raw)
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


RECIPES = Path(__file__).resolve().parent.parent / "configs"  # vilem/configs (package data)


def recipe_names() -> list[str]:
    """Names of the recipes packaged in vilem/configs/."""
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    """A YAML file path, or the packaged recipe of that name (``small-vilem``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = name_or_path[:-5] if name_or_path.endswith(".yaml") else name_or_path
    if stem in recipe_names():
        return RECIPES / f"{stem}.yaml"
    raise ConfigError(
        f"config {name_or_path!r} is neither a file nor a packaged recipe"
        f"{closest(stem, recipe_names())}; recipes: {', '.join(recipe_names()) or 'none'}"
    )


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(raw).__name__}")
    return raw


def load_config(
    name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = (), check_model: bool = True
) -> TrainConfig:
    """Load a recipe (file or packaged name), apply overrides, validate everything."""
    raw = read_yaml(resolve_config_path(str(name_or_path)))
    return config_from_mapping(apply_overrides(raw, list(overrides)), check_model=check_model)
