"""The training loop: AdamW with warm-up + cosine, gradient accumulation, bf16 autocast on CUDA,
DDP, periodic retrieval validation, atomic checkpoints and exact resume.

Reproducibility: weights are seeded by ``cfg.seed``; the data order and per-sample randomness
come from ``(seed, epoch, index)``; negative edits from a generator seeded by
``(seed, step, micro-batch, rank)``; dropout from the global RNG, whose state every checkpoint
stores. So on CPU a run stopped and resumed ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from vilem import dist as D
from vilem.data import load_split
from vilem.data.base import Split
from vilem.errors import ConfigError
from vilem.io import atomic_write_json
from vilem.train import state as S
from vilem.train.config import TrainConfig, validate_model_section
from vilem.train.data import CaptionPairs, Collate, EpochBatches, Preprocess, make_loader

LOG_FILE = "log.jsonl"
MODEL_DIR = "model"
# config sections that must not change when resuming (the rest, e.g. log_every, may)
FROZEN_ON_RESUME = ("model", "data", "seed")


def lr_at(step: int, base_lr: float, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Learning rate of optimizer step ``step`` (0-based).

    Linear warm-up ``base * (step + 1) / warmup`` for ``step < warmup``, then a cosine from
    ``base`` down to ``base * min_ratio`` at step ``total`` (reached only after the last step).
    """
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return base_lr * (min_ratio + (1.0 - min_ratio) * cosine)


def proxy_weight_at(step: int, weight: float, ramp: int) -> float:
    """Weight of the ED/EC losses at optimizer step ``step`` (0-based): ``weight`` after a
    linear ramp ``weight * (step + 1) / (ramp + 1)`` over the first ``ramp`` steps."""
    return weight * min(1.0, (step + 1) / (ramp + 1))


def _is_no_decay(name: str, param: torch.nn.Parameter) -> bool:
    """Biases, norm weights, the temperature and ViT position/class tokens are not decayed."""
    leaf = name.rsplit(".", 1)[-1]
    return (
        param.ndim <= 1
        or leaf in ("pos_embed", "cls_token", "reg_token", "temp")
        or "norm" in name.lower()
    )


def param_groups(model: torch.nn.Module, weight_decay: float, image_lr_mult: float) -> list[dict]:
    """AdamW groups: {image tower, rest} x {decay, no decay}; ``lr_mult`` scales the base lr."""
    image_ids: set[int] = set()
    image_tower = getattr(model, "image_tower", None)
    if image_tower is not None:
        image_ids = {id(p) for p in image_tower.parameters()}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue  # momentum encoders follow by EMA
        key = (id(p) in image_ids, _is_no_decay(name, p))
        groups.setdefault(key, []).append(p)
    out = []
    for (is_image, no_decay), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_mult": image_lr_mult if is_image else 1.0,
                "name": f"{'image' if is_image else 'other'}/{'no_decay' if no_decay else 'decay'}",
            }
        )
    return out


def adamw(params: Any, **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` with its fused kernel where this torch has one for the parameters'
    device (CUDA; CPU from torch 2.4), else the default implementation. Same update rule; the
    fused step is ~4x faster on the small CPU recipes (one pass instead of ~10 ops per tensor)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # no fused kernel for this device / torch version
        return torch.optim.AdamW(params, **kwargs)


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    """A 63-bit seed for the negative-sampling generator of one micro-batch on one rank."""
    state = np.random.SeedSequence([seed, step, micro, rank]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``auto`` = bf16 on CUDA, none (fp32) on CPU."""
    if amp == "fp32" or (amp == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


# --------------------------------------------------------------------------- validation


class Validator:
    """Encodes a validation split with the dual encoder and scores retrieval both ways."""

    def __init__(self, split: Split, prep: Preprocess, batch_size: int):
        self.split, self.prep, self.batch_size = split, prep, batch_size
        self._pixels: torch.Tensor | None = None  # cached normalised pixels (small splits)

    def _item_pixels(self, idx: list[int]) -> torch.Tensor:
        from vilem.data.media import load_image
        from vilem.models.base import resize_center_crop

        out = []
        for i in idx:
            if self.split.modality == "image":
                frames = np.array(load_image(self.split.item_paths[i]))[None]
            else:
                from vilem.data.video import read_frames

                frames = read_frames(self.split.item_paths[i], self.prep.frames, "uniform")
            x = self.prep.normalize(resize_center_crop(frames, self.prep.image_size))
            out.append(x[0] if self.split.modality == "image" else x)
        return torch.stack(out)

    @torch.no_grad()
    def __call__(self, model: Any, device: torch.device, amp: torch.dtype | None) -> dict:
        """Retrieval metrics (percent; ``t2i_R@1`` ... ``rsum``) of ``model`` on the split."""
        from vilem.metrics import retrieval_metrics

        n = len(self.split.items)
        frames = 1 if self.split.modality == "image" else self.prep.frames
        small = n * frames * 3 * self.prep.image_size**2 * 4 < 1 << 30  # float32 bytes < 1 GiB
        if small and self._pixels is None:
            self._pixels = torch.cat(
                [
                    self._item_pixels(list(range(s, min(n, s + self.batch_size))))
                    for s in range(0, n, self.batch_size)
                ]
            )
        was_training = model.training
        model.eval()
        items, texts = [], []
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            for s in range(0, n, self.batch_size):
                if self._pixels is not None:
                    px = self._pixels[s : s + self.batch_size]
                else:
                    px = self._item_pixels(list(range(s, min(n, s + self.batch_size))))
                px = px.to(device)
                encode = model.encode_image if px.dim() == 4 else model.encode_video
                items.append(encode(px).float().cpu())
            for s in range(0, len(self.split.texts), self.batch_size):
                ids, mask = model.tokenize(self.split.texts[s : s + self.batch_size])
                texts.append(model.encode_text(ids.to(device), mask.to(device)).float().cpu())
        model.train(was_training)
        metrics = retrieval_metrics(
            torch.cat(items).numpy(), torch.cat(texts).numpy(), self.split.text_to_item
        )
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


# --------------------------------------------------------------------------- the loop


def _micro_batches(
    loader: torch.utils.data.DataLoader, batches: EpochBatches, start: int
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """(epoch, batch) from global micro-batch number ``start`` on, across epoch boundaries."""
    per_epoch = batches.batches_per_epoch()
    epoch, offset = divmod(start, per_epoch)
    while True:
        batches.set_epoch(epoch, offset)
        for batch in loader:
            yield epoch, batch
        epoch, offset = epoch + 1, 0


def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig) -> None:
    current = cfg.to_dict()
    changed = [k for k in FROZEN_ON_RESUME if saved.get(k) != current.get(k)]
    if changed:
        raise ConfigError(
            f"cannot resume: the config's {', '.join(repr(k) for k in changed)} differ from the "
            "checkpoint's; use a new --out folder (or the checkpoint's config)"
        )


def _trim_log(path: Path, step: int) -> None:
    """Drop log records written after the checkpoint the run resumes from."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _check_mlm(model_cfg: Any) -> None:
    """Say how to get the negatives' masked LM when the recipe points at a missing folder."""
    neg = model_cfg.negatives
    itc_only = not (model_cfg.use_ed or model_cfg.use_ec)
    if itc_only or neg.kind != "mlm" or not neg.mlm_path or Path(neg.mlm_path).is_dir():
        return
    raise ConfigError(
        f"model.negatives.mlm_path {neg.mlm_path!r} does not exist; train the small masked LM "
        f"for the synthetic captions with `vilem train-lm --dataset synthetic --out "
        f"{neg.mlm_path}`, or point it at a local fill-mask folder with the text vocabulary"
    )


def _report_negatives(model: Any, cfg: TrainConfig, out: Path, quiet: bool) -> None:
    """Measure how plausible the negatives are (synthetic data) into ``out/negatives.json``."""
    from vilem.train.negatives_report import REPORT_FILE, negatives_report, summary_line

    if model.config.itc_only or cfg.plausibility_steps < 0:
        return
    report = negatives_report(
        model.editor, model.tokenizer, model.config.negatives, cfg.data.dataset,
        cfg.data.root, detector_steps=cfg.plausibility_steps,
    )  # fmt: skip
    if report is not None:
        atomic_write_json(out / REPORT_FILE, report)
        if not quiet:
            print(summary_line(report), flush=True)


def _init_from(model: torch.nn.Module, folder: Path, quiet: bool) -> None:
    """Start from the weights of a trained model folder (e.g. an image model fine-tuned on
    video). The retrieval towers must match exactly; other tensors are taken where they fit."""
    from vilem.model.checkpoint import WEIGHTS_FILE
    from vilem.model.vilem import RETRIEVAL_MODULES

    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"config key 'init_from': no {WEIGHTS_FILE} in {folder}")
    source = load_file(str(path))
    own = model.state_dict()
    retrieval = [k for k in own if k.split(".", 1)[0] in RETRIEVAL_MODULES]
    bad = [k for k in retrieval if k not in source or source[k].shape != own[k].shape]
    if bad:
        raise ConfigError(
            f"config key 'init_from': {folder} does not match the model's retrieval towers "
            f"(missing or misshapen: {', '.join(bad[:5])})"
        )
    taken = {k: v for k, v in source.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(taken, strict=False)
    if not quiet:
        print(f"initialised {len(taken)} of {len(own)} tensors from {folder}")


def _optimizer_step(
    ddp_model: torch.nn.Module,
    batches: list[dict[str, torch.Tensor]],
    *,
    seeds: list[int],
    alpha: float,
    proxy_scale: float = 1.0,
    amp: torch.dtype | None,
    device: torch.device,
) -> list[dict[str, torch.Tensor]]:
    """Forward + backward over the micro-batches of one optimizer step (gradients are summed
    into ``.grad``; DDP syncs them only on the last). Returns each micro-batch's loss parts,
    detached and still on the device (reading them would wait for the GPU every step)."""
    parts_out = []
    distributed = hasattr(ddp_model, "no_sync")
    for micro, batch in enumerate(batches):
        last = micro == len(batches) - 1
        sync = contextlib.nullcontext() if last or not distributed else ddp_model.no_sync()
        gen = torch.Generator(device=device).manual_seed(seeds[micro])
        with sync:
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                parts = ddp_model(
                    batch["pixels"],
                    batch["input_ids"],
                    batch["attention_mask"],
                    batch["item_ids"],
                    alpha=alpha,
                    proxy_scale=proxy_scale,
                    generator=gen,
                )
            (parts["loss"] / len(batches)).backward()
        parts_out.append({k: torch.as_tensor(v).detach().float() for k, v in parts.items()})
    return parts_out


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    quiet: bool = False,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Train a ViLEM (or ITC-only) dual encoder as ``cfg`` says, writing into ``out_dir``.

    Args:
        cfg: the validated training config.
        out_dir: receives ``log.jsonl``, ``checkpoint/`` and, at the end, ``model/``.
        resume: continue from ``out_dir/checkpoint`` (a fresh start when there is none).
        quiet: no progress bar.
        max_steps: stop after this many optimizer steps in this call, checkpointing first (for
            time-limited jobs); the schedule still spans the configured total.

    Returns:
        a summary: steps, epochs, seconds, samples/s, the first and last log records and the
        last validation.
    """
    model_cfg = validate_model_section(cfg.model)
    info = D.init_distributed(cfg.device)
    prev_deterministic = torch.are_deterministic_algorithms_enabled()
    if info.device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _train(cfg, model_cfg, info, Path(out_dir), resume, quiet, max_steps)
    finally:
        torch.use_deterministic_algorithms(prev_deterministic)


def _train(
    cfg: TrainConfig,
    model_cfg: Any,
    info: D.DistInfo,
    out: Path,
    resume: bool,
    quiet: bool,
    max_steps: int | None,
) -> dict[str, Any]:
    from vilem.model.checkpoint import WEIGHTS_FILE, save_model
    from vilem.model.vilem import ViLEM

    device, amp = info.device, resolve_amp(cfg.amp, info.device)

    # -- where to start: a fresh run, or the last good checkpoint
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        S.recover_checkpoint(out)
    D.barrier()
    ckpt = out / S.CHECKPOINT if (out / S.CHECKPOINT / S.STATE_JSON).is_file() else None
    if ckpt is not None and not resume:
        raise ConfigError(
            f"{out} already holds a checkpoint; pass --resume to continue it or choose "
            "another --out folder"
        )
    meta, tensors = S.read_checkpoint(ckpt) if ckpt is not None else (None, {})
    if meta is not None:
        _check_resume_config(meta["config"], cfg)

    _check_mlm(model_cfg)

    # -- model: the same initial weights on every rank (DDP also broadcasts rank 0's)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    model = ViLEM(model_cfg, load_pretrained=meta is None).to(device)
    if meta is not None:
        model.load_state_dict(load_file(str(ckpt / WEIGHTS_FILE)), strict=True)
    elif cfg.init_from:
        _init_from(model, Path(cfg.init_from), quiet or not info.is_main)
    if info.rank:  # dropout masks must differ across ranks
        torch.manual_seed(cfg.seed + 7919 * info.rank)
    if info.is_main and meta is None:
        _report_negatives(model, cfg, out, quiet)
    model.train()

    # -- data
    split = load_split(cfg.data.dataset, cfg.data.split, cfg.data.root)
    mean, std = model.image_mean_std()
    prep = Preprocess(
        image_size=model_cfg.vision.image_size,
        mean=tuple(mean),
        std=tuple(std),
        frames=cfg.data.frames,
        sampling=cfg.data.sampling,
        augment=cfg.data.augment,
    )
    dataset = CaptionPairs(split, prep, cfg.seed, cfg.data.cache_images)
    batches = EpochBatches(split, cfg.optim.batch_size, cfg.seed, info.rank, info.world_size)
    accum, per_epoch = cfg.optim.grad_accum, batches.batches_per_epoch()
    total = cfg.optim.steps or max(1, cfg.optim.epochs * per_epoch // accum)
    validator = None
    if cfg.data.val_split:  # loaded on every rank so a bad split fails everywhere, not hangs
        val = load_split(cfg.data.dataset, cfg.data.val_split, cfg.data.root)
        if cfg.data.val_max_items is not None and cfg.data.val_max_items < len(val.items):
            val = val.subset(list(range(cfg.data.val_max_items)))
        if info.is_main:
            validator = Validator(val, dataclasses.replace(prep, augment=False), 64)

    # -- optimizer, and the training state of a resumed run
    optimizer = adamw(
        param_groups(model, cfg.optim.weight_decay, cfg.optim.image_lr_mult),
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        eps=cfg.optim.eps,
    )
    step = 0
    if meta is not None:
        optimizer.load_state_dict(S.unflatten_optimizer(tensors, meta["optimizer"]))
        step = int(meta["step"])
        own = S.rng_states_for_rank(tensors, info.rank)
        if own and meta.get("world_size") == info.world_size:
            S.set_rng_state_tensors(own, device)
        elif info.is_main:
            print(
                f"note: the checkpoint was written by {meta.get('world_size')} processes, this "
                f"run has {info.world_size}: RNG states are reseeded and the data order differs"
            )
        if info.is_main:
            _trim_log(out / LOG_FILE, step)
    ddp_model = D.wrap_ddp(model, info)
    collate = Collate(model.tokenizer, model_cfg.text.max_len)
    loader = make_loader(dataset, batches, collate, cfg.num_workers)
    stream = _micro_batches(loader, batches, step * accum)
    stop_at = total if max_steps is None else min(total, step + max_steps)

    def save() -> None:
        rng = S.gather_rng_states(device)  # a collective: every rank takes part
        if info.is_main:
            state = {
                "step": step,
                "epoch": step * accum // per_epoch,
                "total_steps": total,
                "data_position": {"micro_batch": step * accum, "per_epoch": per_epoch},
                "sched": {
                    "kind": "warmup_cosine",
                    "base_lr": cfg.optim.lr,
                    "warmup_steps": cfg.optim.warmup_steps,
                    "min_lr_ratio": cfg.optim.min_lr_ratio,
                },
                "config": cfg.to_dict(),
            }
            S.write_checkpoint(out, model, optimizer, rng, state)
        D.barrier()

    # -- the loop
    bar = tqdm(
        total=total, initial=step, desc="train", disable=quiet or not info.is_main, ncols=100
    )
    window: dict[str, list[torch.Tensor]] = {}
    window_samples, window_time = 0, 0.0  # throughput counts training steps only
    train_time = 0.0
    run_start, start_step = time.perf_counter(), step
    first_log: dict[str, Any] = {}
    last_log: dict[str, Any] = {}
    last_val: dict[str, float] = {}
    log_file = open(out / LOG_FILE, "a", encoding="utf-8") if info.is_main else None  # noqa: SIM115
    try:
        while step < stop_at:
            step_start = time.perf_counter()
            lr = lr_at(step, cfg.optim.lr, cfg.optim.warmup_steps, total, cfg.optim.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_mult"]
            # momentum distillation ramps up over the first epoch, as in ALBEF
            alpha = model_cfg.distill_alpha * min(1.0, step * accum / per_epoch)
            proxy_scale = proxy_weight_at(step, model_cfg.proxy_weight, model_cfg.proxy_ramp_steps)
            micro = [
                {k: v.to(device, non_blocking=True) for k, v in next(stream)[1].items()}
                for _ in range(accum)
            ]
            seeds = [step_seed(cfg.seed, step, m, info.rank) for m in range(accum)]
            for parts in _optimizer_step(
                ddp_model,
                micro,
                seeds=seeds,
                alpha=alpha,
                proxy_scale=proxy_scale,
                amp=amp,
                device=device,
            ):
                for k, v in parts.items():
                    window.setdefault(k, []).append(v)
            window_samples += sum(b["item_ids"].shape[0] for b in micro) * info.world_size
            if cfg.optim.clip_grad is not None:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
                window.setdefault("grad_norm", []).append(norm.detach().float())
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            log_now = step % cfg.log_every == 0 or step == stop_at
            if log_now and device.type == "cuda":
                torch.cuda.synchronize(device)  # the queued GPU work belongs to this window
            window_time += time.perf_counter() - step_start
            train_time += time.perf_counter() - step_start
            bar.update(1)

            record: dict[str, Any] = {}
            if log_now:
                means = {k: torch.stack(v).mean().item() for k, v in window.items()}
                means = D.all_reduce_mean(means, device)
                record = {
                    "step": step,
                    "epoch": step * accum / per_epoch,
                    **means,
                    "lr": lr,
                    "samples_per_s": window_samples / max(window_time, 1e-9),
                }
                if device.type == "cuda":
                    record["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                window, window_samples, window_time = {}, 0, 0.0
                bar.set_postfix(loss=f"{means.get('loss', float('nan')):.3f}")
            if cfg.data.val_split and (
                (cfg.val_every and step % cfg.val_every == 0) or step == total
            ):
                if validator is not None:
                    last_val = validator(model, device, amp)
                    record = {
                        "step": step,
                        **record,
                        **{f"val/{k}": v for k, v in last_val.items()},
                    }
                D.barrier()  # the other ranks wait while rank 0 validates
            if record and log_file is not None:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                last_log = record
                first_log = first_log or (record if "loss" in record else {})
            if (cfg.save_every and step % cfg.save_every == 0) or step == stop_at:
                save()
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()

    if step == total and info.is_main:
        tmp = out / f"{MODEL_DIR}.tmp-{os.getpid()}"
        save_model(model, tmp)
        S.swap_in(tmp, out / MODEL_DIR)
    D.barrier()
    seconds = time.perf_counter() - run_start
    done = step - start_step
    train_time = max(train_time, 1e-9)
    return {
        "out_dir": str(out),
        "steps": step,
        "total_steps": total,
        "steps_run": done,
        "epochs": step * accum / per_epoch,
        "finished": step == total,
        "seconds": round(seconds, 3),
        "samples_per_s": done * accum * cfg.optim.batch_size * info.world_size / train_time,
        "peak_mem_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
        "first_log": first_log,
        "last_log": last_log,
        "val": last_val,
        "checkpoint": str(out / S.CHECKPOINT),
        "model": str(out / MODEL_DIR) if step == total else None,
    }
