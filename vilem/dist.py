"""Processes: the torchrun environment, the process group, DDP, and sharded evaluation.

Every function is the identity of a single process when ``torch.distributed`` is not initialised,
so training and evaluation code calls them unconditionally. One process per GPU (NCCL) or several
CPU processes (gloo, used by the tests); without the torchrun variables everything degrades to a
single process and no process group.

Sharded evaluation: each process encodes one contiguous slice of the items (or texts) and the
slices are all-gathered back into the full array, in order. Rank ``r`` of ``W`` holds rows
``shard_bounds(n, r, W)``, so gathering the shards in rank order reproduces the single-process
array exactly, and anything seeded by the global row index (e.g. the frames sampled for video
``i``) is the same with 1 or W processes.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from vilem.errors import ConfigError

_MAX_DIMS = 8  # rows + up to 7 trailing dimensions travel in the fixed-size shape message


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0, and in a process that is not part of a process group."""
    return rank_world()[0] == 0


def shard_bounds(n: int, rank: int, world: int, unit: int = 1) -> tuple[int, int]:
    """The rows ``[start, stop)`` that ``rank`` of ``world`` processes handles out of ``n``.

    Shards are contiguous, in rank order, and cover ``0..n`` exactly once. With ``unit = 1`` their
    sizes differ by at most one (the first ``n % world`` ranks take one more row). A larger
    ``unit`` (the encoding batch size) deals out whole units instead, so every rank's batches are
    exactly batches of the single-process run, which keeps embeddings bit-identical even for
    models whose output depends on the batch (captions padded to the longest one); the counts
    of batches then differ by at most one. With more ranks than units the last ranks get empty
    shards.
    """
    for name, value, low in (("n", n, 0), ("world", world, 1), ("unit", unit, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"shard_bounds: {name} must be an integer >= {low}, got {value!r}")
    if isinstance(rank, bool) or int(rank) != rank or not 0 <= rank < world:
        raise ValueError(f"shard_bounds: rank must be in [0, {world}), got {rank!r}")
    n, rank, world, unit = int(n), int(rank), int(world), int(unit)
    base, extra = divmod(-(-n // unit), world)  # units per rank
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return min(start * unit, n), min(stop * unit, n)


def _device() -> torch.device:
    # NCCL moves CUDA tensors only; gloo (and the others torch ships) take CPU tensors
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_agree(flag: bool) -> bool:
    """True only when ``flag`` is true on every rank (a logical AND over the group).

    Use it wherever ranks must take the same branch, e.g. "every rank has this embedding cache
    entry", so one rank never skips a collective the others enter.
    """
    _, world = rank_world()
    if world == 1:
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_device())
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def gather_rows(local: np.ndarray, n_total: int, unit: int = 1) -> np.ndarray:
    """Concatenate every rank's rows (axis 0) in rank order; every rank gets the full array.

    Args:
        local: this rank's rows, exactly ``shard_bounds(n_total, rank, world, unit)``. All
            ranks must pass the same dtype and trailing shape; an empty shard may have any
            trailing shape (``np.zeros((0, 1))`` from a loop that produced nothing is fine).
        n_total: the number of rows of the full array.
        unit: the ``unit`` the shards were cut with (see ``shard_bounds``).

    Returns:
        The (n_total, ...) array, identical on every rank; ``local`` itself when no process
        group is initialised.

    Raises:
        ValueError: a rank holds the wrong number of rows or a different trailing shape; every
            rank raises the same error, since each sees all shapes.
    """
    local = np.asarray(local)
    rank, world = rank_world()
    if world == 1:
        if local.shape[:1] != (n_total,):
            raise ValueError(f"gather_rows: expected {n_total} rows, got shape {local.shape}")
        return local
    if local.ndim < 1 or local.ndim > _MAX_DIMS:
        raise ValueError(f"gather_rows: rows need 1 to {_MAX_DIMS} dimensions, got {local.ndim}")
    device = _device()
    # 1) every rank learns every shard's shape, so padding and checks agree everywhere
    shape = torch.full((_MAX_DIMS + 1,), -1, dtype=torch.int64, device=device)
    shape[0] = local.ndim
    shape[1 : local.ndim + 1] = torch.tensor(local.shape, dtype=torch.int64)
    shapes = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    dims = [tuple(int(x) for x in s[1 : int(s[0]) + 1]) for s in (t.cpu() for t in shapes)]
    for r, d in enumerate(dims):
        expected = shard_bounds(n_total, r, world, unit)
        if d[0] != expected[1] - expected[0]:
            raise ValueError(
                f"gather_rows: rank {r} holds {d[0]} rows but its shard of {n_total} is rows "
                f"{expected[0]}..{expected[1]}"
            )
    trailing = {d[1:] for d in dims if d[0] > 0}
    if len(trailing) > 1:
        raise ValueError(f"gather_rows: ranks hold rows of different shapes: {sorted(trailing)}")
    row_shape = trailing.pop() if trailing else local.shape[1:]
    if local.shape[0] == 0:
        local = local.reshape((0, *row_shape))
    # 2) all_gather needs equal sizes: pad every shard to the largest one
    rows = max(d[0] for d in dims)
    mine = torch.tensor(local)  # a copy: read-only inputs (np.load, views) are fine too
    padded = torch.zeros((rows, *row_shape), dtype=mine.dtype, device=device)
    padded[: local.shape[0]] = mine.to(device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    full = torch.cat([p[: d[0]] for p, d in zip(parts, dims, strict=True)])
    return full.cpu().numpy()


# ---------------------------------------------------------------- training processes


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and saves."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from exc


def pick_device(requested: str, local_rank: int) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        requested = f"cuda:{local_rank}"
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ConfigError(f"config key 'device': {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key 'device' is {requested!r} but CUDA is not available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"this process (LOCAL_RANK {local_rank}) would run on {device}, but "
            f"{torch.cuda.device_count()} CUDA device(s) are visible: start at most one process "
            "per GPU, or set device=cpu for CPU processes (gloo)"
        )
    return device


def init_distributed(requested_device: str = "auto") -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun) and join the process group:
    NCCL when the device is CUDA, gloo on CPU. Idempotent."""
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = pick_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def wrap_ddp(
    model: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = False
) -> torch.nn.Module:
    """DDP-wrap ``model`` when running on several processes; return it unchanged otherwise.

    Buffers are not broadcast: momentum encoders and feature queues are updated with gathered
    features, so they stay identical on every rank without the per-step copy.
    """
    if not info.distributed:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    # newer torch renames broadcast_buffers; the buffers are equal at init either way
    params = inspect.signature(DistributedDataParallel).parameters
    no_sync = {
        "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": False
    }
    return DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters, **no_sync
    )


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average logged scalars over ranks (a no-op on one process)."""
    if not (dist.is_available() and dist.is_initialized()) or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist(), strict=True))


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
