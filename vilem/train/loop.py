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
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm import tqdm

from vilem import dist as D
from vilem import threads
from vilem.data import load_split
from vilem.errors import ConfigError
from vilem.io import atomic_write_json, atomic_write_text
from vilem.train import state as S
from vilem.train.config import TrainConfig
from vilem.train.data import CaptionPairs, Collate, EpochBatches, Preprocess, make_loader
from vilem.train.editor import check_mlm, make_editor
from vilem.train.optim import adamw, lr_at, param_groups, proxy_weight_at
from vilem.train.validate import Validator

LOG_FILE = "log.jsonl"
MODEL_DIR = "model"
# config sections that must not change when resuming (the rest, e.g. log_every, may)
FROZEN_ON_RESUME = ("model", "data", "seed")


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    """A 63-bit seed for the negative-sampling generator of one micro-batch on one rank."""
    state = np.random.SeedSequence([seed, step, micro, rank]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``auto`` = bf16 on CUDA, none (fp32) on CPU."""
    if amp == "fp32" or (amp == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


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
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _report_negatives(model: Any, cfg: TrainConfig, out: Path, quiet: bool) -> None:
    """Measure how plausible the negatives are (synthetic data) into ``out/negatives.json``."""
    from vilem.train.negatives_report import REPORT_FILE, negatives_report, summary_line

    if model.config.itc_only or cfg.plausibility_steps < 0:
        return
    report = negatives_report(
        model.editor, model.tokenizer, model.config.negatives, cfg.mlm_path, cfg.data.dataset,
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
    try:
        source = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(
            f"config key 'init_from': {path} is truncated or not a safetensors file ({exc})"
        ) from exc
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
    info = D.init_distributed(cfg.device)
    prev_deterministic = torch.are_deterministic_algorithms_enabled()
    if info.device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        run = _setup(cfg, info, Path(out_dir), resume, quiet, max_steps)
        log = _Log()
        run_start, start_step = time.perf_counter(), run.step
        _loop(run, log, quiet)
        return _finish(run, log, run_start, start_step)
    finally:
        torch.use_deterministic_algorithms(prev_deterministic)


@dataclasses.dataclass
class _Run:
    """What the steps of one training run share: the setup, and the optimizer step reached."""

    cfg: TrainConfig
    info: D.DistInfo
    out: Path
    amp: torch.dtype | None
    model: Any  # the raw ViLEM module (``ddp_model`` wraps it under DDP)
    ddp_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    stream: Iterator[tuple[int, dict[str, torch.Tensor]]]
    validator: Validator | None
    accum: int
    per_epoch: int
    total: int
    step: int
    stop_at: int

    @property
    def device(self) -> torch.device:
        return self.info.device


@dataclasses.dataclass
class _Log:
    """The logging window (loss parts, samples and seconds since the last record) and the
    records the summary reports."""

    window: dict[str, list[torch.Tensor]] = dataclasses.field(default_factory=dict)
    samples: int = 0
    seconds: float = 0.0  # throughput counts training steps only
    train_time: float = 0.0
    first: dict[str, Any] = dataclasses.field(default_factory=dict)
    last: dict[str, Any] = dataclasses.field(default_factory=dict)
    val: dict[str, float] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- setup


def _start_point(
    cfg: TrainConfig, info: D.DistInfo, out: Path, resume: bool
) -> tuple[Path | None, dict[str, Any] | None, dict[str, torch.Tensor]]:
    """Where to start: a fresh run, or the last good checkpoint (its folder, meta, tensors)."""
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
    return ckpt, meta, tensors


def _build_model(
    cfg: TrainConfig,
    info: D.DistInfo,
    out: Path,
    ckpt: Path | None,
    quiet: bool,
) -> Any:
    """The model: the same initial weights on every rank (DDP also broadcasts rank 0's)."""
    from vilem.model.vilem import ViLEM

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    model = ViLEM(cfg.model, load_pretrained=ckpt is None)
    model.editor = make_editor(cfg, model.tokenizer)  # where ViLEM built it: the same RNG order
    model = model.to(info.device)
    if ckpt is not None:
        model.load_state_dict(S.read_weights(ckpt), strict=True)
    elif cfg.init_from:
        _init_from(model, Path(cfg.init_from), quiet or not info.is_main)
    if info.rank:  # dropout masks must differ across ranks
        torch.manual_seed(cfg.seed + 7919 * info.rank)
    if info.is_main and ckpt is None:
        _report_negatives(model, cfg, out, quiet)
    model.train()
    return model


def _build_data(
    cfg: TrainConfig, model: Any, info: D.DistInfo
) -> tuple[CaptionPairs, EpochBatches, Validator | None]:
    """The training pairs, this rank's batches and the validator (None without a val split)."""
    split = load_split(cfg.data.dataset, cfg.data.split, cfg.data.root)
    prep = Preprocess.for_training(cfg, model)
    dataset = CaptionPairs(split, prep, cfg.seed, cfg.data.cache_images)
    batches = EpochBatches(split, cfg.optim.batch_size, cfg.seed, info.rank, info.world_size)
    validator = None
    if cfg.data.val_split:  # on every rank: the engine shards the encoding over them
        val = load_split(cfg.data.dataset, cfg.data.val_split, cfg.data.root)
        if cfg.data.val_max_items is not None and cfg.data.val_max_items < len(val.items):
            val = val.subset(list(range(cfg.data.val_max_items)))
        validator = Validator(val, frames=prep.frames)
    return dataset, batches, validator


def _build_optimizer(
    cfg: TrainConfig,
    model: Any,
    info: D.DistInfo,
    out: Path,
    meta: dict[str, Any] | None,
    tensors: dict[str, torch.Tensor],
) -> tuple[torch.optim.AdamW, int]:
    """The optimizer, and the step reached; a resumed run restores its state and RNGs."""
    optimizer = adamw(
        param_groups(model, cfg.optim.weight_decay, cfg.optim.image_lr_mult),
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        eps=cfg.optim.eps,
    )
    if meta is None:
        return optimizer, 0
    optimizer.load_state_dict(S.unflatten_optimizer(tensors, meta["optimizer"]))
    step = int(meta["step"])
    own = S.rng_states_for_rank(tensors, info.rank)
    if own and meta.get("world_size") == info.world_size:
        S.set_rng_state_tensors(own, info.device)
    elif info.is_main:
        print(
            f"note: the checkpoint was written by {meta.get('world_size')} processes, this "
            f"run has {info.world_size}: RNG states are reseeded and the data order differs"
        )
    if info.is_main:
        _trim_log(out / LOG_FILE, step)
    return optimizer, step


def _setup(
    cfg: TrainConfig,
    info: D.DistInfo,
    out: Path,
    resume: bool,
    quiet: bool,
    max_steps: int | None,
) -> _Run:
    """Checkpoint, model, data, optimizer and resumed state, in the order that fixes the RNG."""
    ckpt, meta, tensors = _start_point(cfg, info, out, resume)
    check_mlm(cfg)
    model = _build_model(cfg, info, out, ckpt, quiet)
    dataset, batches, validator = _build_data(cfg, model, info)
    accum, per_epoch = cfg.optim.grad_accum, batches.batches_per_epoch()
    total = cfg.optim.steps or max(1, cfg.optim.epochs * per_epoch // accum)
    optimizer, step = _build_optimizer(cfg, model, info, out, meta, tensors)
    ddp_model = D.wrap_ddp(model, info)
    collate = Collate(model.tokenizer, cfg.model.text.max_len)
    loader = make_loader(dataset, batches, collate, cfg.num_workers)
    return _Run(
        cfg=cfg,
        info=info,
        out=out,
        amp=resolve_amp(cfg.amp, info.device),
        model=model,
        ddp_model=ddp_model,
        optimizer=optimizer,
        stream=_micro_batches(loader, batches, step * accum),
        validator=validator,
        accum=accum,
        per_epoch=per_epoch,
        total=total,
        step=step,
        stop_at=total if max_steps is None else min(total, step + max_steps),
    )


# --------------------------------------------------------------------------- steps


def _schedule(run: _Run, step: int) -> tuple[float, float, float]:
    """(learning rate, momentum-distillation alpha, ED/EC loss weight) of optimizer step
    ``step``."""
    cfg = run.cfg
    lr = lr_at(step, cfg.optim.lr, cfg.optim.warmup_steps, run.total, cfg.optim.min_lr_ratio)
    # momentum distillation ramps up over the first epoch, as in ALBEF
    alpha = cfg.distill_alpha * min(1.0, step * run.accum / run.per_epoch)
    proxy_scale = proxy_weight_at(step, cfg.model.proxy_weight, cfg.proxy_ramp_steps)
    return lr, alpha, proxy_scale


def _train_step(run: _Run, log: _Log) -> tuple[float, bool]:
    """One optimizer step over ``accum`` micro-batches; returns its lr and whether to log."""
    cfg, device = run.cfg, run.device
    step_start = time.perf_counter()
    lr, alpha, proxy_scale = _schedule(run, run.step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
    micro = [
        {k: v.to(device, non_blocking=True) for k, v in next(run.stream)[1].items()}
        for _ in range(run.accum)
    ]
    seeds = [step_seed(cfg.seed, run.step, m, run.info.rank) for m in range(run.accum)]
    for parts in _optimizer_step(
        run.ddp_model,
        micro,
        seeds=seeds,
        alpha=alpha,
        proxy_scale=proxy_scale,
        amp=run.amp,
        device=device,
    ):
        for k, v in parts.items():
            log.window.setdefault(k, []).append(v)
    log.samples += sum(b["item_ids"].shape[0] for b in micro) * run.info.world_size
    if cfg.optim.clip_grad is not None:
        norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.clip_grad)
        log.window.setdefault("grad_norm", []).append(norm.detach().float())
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    log_now = run.step % cfg.log_every == 0 or run.step == run.stop_at
    if log_now and device.type == "cuda":
        torch.cuda.synchronize(device)  # the queued GPU work belongs to this window
    log.seconds += time.perf_counter() - step_start
    log.train_time += time.perf_counter() - step_start
    return lr, log_now


def _window_record(run: _Run, log: _Log, lr: float) -> dict[str, Any]:
    """The log record of the window that ends now (means over every rank); starts a new one."""
    device = run.device
    means = {k: torch.stack(v).mean().item() for k, v in log.window.items()}
    means = D.all_reduce_mean(means, device)
    record = {
        "step": run.step,
        "epoch": run.step * run.accum / run.per_epoch,
        **means,
        "lr": lr,
        "samples_per_s": log.samples / max(log.seconds, 1e-9),
        "threads": torch.get_num_threads(),  # the numbers depend on it (vilem.threads)
    }
    if device.type == "cuda":
        record["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    log.window, log.samples, log.seconds = {}, 0, 0.0
    return record


def _maybe_validate(run: _Run, log: _Log, record: dict[str, Any]) -> dict[str, Any]:
    """Validate when due (every rank encodes its shard); rank 0 adds the metrics to
    ``record``."""
    cfg, step = run.cfg, run.step
    due = (cfg.val_every and step % cfg.val_every == 0) or step == run.total
    if run.validator is None or not due:
        return record
    metrics = run.validator(run.model, run.device, run.amp)
    if not run.info.is_main:
        return record
    log.val = metrics
    return {"step": step, **record, **{f"val/{k}": v for k, v in metrics.items()}}


def _save(run: _Run) -> None:
    """Checkpoint the run at its current step (a collective: every rank takes part)."""
    cfg, step = run.cfg, run.step
    rng = S.gather_rng_states(run.device)
    if run.info.is_main:
        state = {
            "step": step,
            "epoch": step * run.accum // run.per_epoch,
            "total_steps": run.total,
            "data_position": {"micro_batch": step * run.accum, "per_epoch": run.per_epoch},
            "sched": {
                "kind": "warmup_cosine",
                "base_lr": cfg.optim.lr,
                "warmup_steps": cfg.optim.warmup_steps,
                "min_lr_ratio": cfg.optim.min_lr_ratio,
            },
            "config": cfg.to_dict(),
        }
        S.write_checkpoint(run.out, run.model, run.optimizer, rng, state)
    D.barrier()


def _loop(run: _Run, log: _Log, quiet: bool) -> None:
    """Optimizer steps up to ``run.stop_at``: log, validate and checkpoint as configured."""
    cfg, is_main = run.cfg, run.info.is_main
    bar = tqdm(
        total=run.total, initial=run.step, desc="train", disable=quiet or not is_main, ncols=100
    )
    log_file = open(run.out / LOG_FILE, "a", encoding="utf-8") if is_main else None  # noqa: SIM115
    try:
        while run.step < run.stop_at:
            lr, log_now = _train_step(run, log)
            threads.tick()  # where opted in, torch's thread count follows the machine's load
            bar.update(1)
            record: dict[str, Any] = {}
            if log_now:
                record = _window_record(run, log, lr)
                bar.set_postfix(loss=f"{record.get('loss', float('nan')):.3f}")
            record = _maybe_validate(run, log, record)
            if record and log_file is not None:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log.last = record
                log.first = log.first or (record if "loss" in record else {})
            if (cfg.save_every and run.step % cfg.save_every == 0) or run.step == run.stop_at:
                _save(run)
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()


def _finish(run: _Run, log: _Log, run_start: float, start_step: int) -> dict[str, Any]:
    """Write the final model when the schedule is done; the run's summary."""
    from vilem.model.checkpoint import save_model

    out, step, device, finished = run.out, run.step, run.device, run.step == run.total
    if finished and run.info.is_main:
        tmp = out / f"{MODEL_DIR}.tmp-{os.getpid()}"
        save_model(run.model, tmp)
        S.swap_in(tmp, out / MODEL_DIR)
    D.barrier()
    seconds = time.perf_counter() - run_start
    done = step - start_step
    samples = done * run.accum * run.cfg.optim.batch_size * run.info.world_size
    return {
        "out_dir": str(out),
        "steps": step,
        "total_steps": run.total,
        "steps_run": done,
        "epochs": step * run.accum / run.per_epoch,
        "finished": finished,
        "seconds": round(seconds, 3),
        "samples_per_s": samples / max(log.train_time, 1e-9),
        "peak_mem_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
        "first_log": log.first,
        "last_log": log.last,
        "val": log.val,
        "checkpoint": str(out / S.CHECKPOINT),
        "model": str(out / MODEL_DIR) if finished else None,
        "threads": threads.describe(),
    }
