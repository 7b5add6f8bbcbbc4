"""Typed training configuration: YAML recipe + ``key.sub=value`` overrides -> ``TrainConfig``.

Parsed by the one config parser (``vilem.config``): an unknown key or a badly typed value raises
ConfigError naming the full key path (``optim.lr``, ``model.temp_init``) and, for typos, the
closest valid key. ``model`` is the typed ``ViLEMConfig``, parsed and validated once here.

A recipe may start from another: ``base: small-vilem`` (a packaged recipe name or a YAML path,
relative to the recipe's folder) takes that recipe and lays this file's keys over it, section by
section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vilem.config import apply_overrides, from_dict, merge, read_yaml, to_dict
from vilem.errors import ConfigError
from vilem.model.config import ViLEMConfig
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
    model: ViLEMConfig = field(default_factory=ViLEMConfig)  # the network
    init_from: str | None = None  # a vilem model folder whose weights start training (fine-tune)
    mlm_path: str | None = None  # the frozen fill-mask folder that writes ViLEM's negatives
    proxy_ramp_steps: int = 0  # the ED/EC weight ramps linearly from 0 over these first steps
    distill_alpha: float = 0.4  # momentum distillation weight at the end of its first-epoch ramp
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
        return to_dict(self)


# --------------------------------------------------------------------------- parsing


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
        ("proxy_ramp_steps", cfg.proxy_ramp_steps, 0),
    ]:
        if value is not None and value < low:
            raise ConfigError(f"config key {path!r} must be >= {low}, got {value}")
    if not 0.0 <= cfg.distill_alpha <= 1.0:
        raise ConfigError(f"config key 'distill_alpha' must be in [0, 1], got {cfg.distill_alpha}")
    if o.lr <= 0:
        raise ConfigError(f"config key 'optim.lr' must be > 0, got {o.lr}")
    if o.clip_grad is not None and o.clip_grad <= 0:
        raise ConfigError(f"config key 'optim.clip_grad' must be > 0 or null, got {o.clip_grad}")


def config_from_mapping(raw: dict[str, Any]) -> TrainConfig:
    """A validated TrainConfig from a plain dict (a parsed YAML recipe)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a training config must be a mapping, got {type(raw).__name__}")
    cfg = from_dict(TrainConfig, raw)
    _validate(cfg)
    cfg.model.validate()
    return cfg


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


def read_recipe(name_or_path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's mapping with its ``base`` chain resolved (the base first, this file over it)."""
    path = resolve_config_path(str(name_or_path))
    if path.resolve() in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path.resolve()))
        raise ConfigError(f"config {path}: 'base' recipes form a cycle ({chain})")
    raw = read_yaml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"config {path}: 'base' must be a recipe name or path, got {base!r}")
    sibling = path.parent / base
    parent = read_recipe(sibling if sibling.is_file() else base, (*_seen, path.resolve()))
    return merge(parent, raw)


def load_config(
    name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Load a recipe (file or packaged name), apply overrides, validate everything."""
    raw = read_recipe(name_or_path)
    return config_from_mapping(apply_overrides(raw, list(overrides)))
