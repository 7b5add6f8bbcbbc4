"""Sharded evaluation: each process encodes one contiguous slice of the items (or texts) and the
slices are all-gathered back into the full array, in order.

Every function is the identity of a single process when ``torch.distributed`` is not initialised,
so evaluation code calls them unconditionally. Under ``torchrun`` the process group (gloo on CPU,
NCCL on GPUs) is whatever the caller initialised; this module never initialises one itself.

Why contiguous shards: rank ``r`` of ``W`` holds rows ``shard_bounds(n, r, W)``, so gathering
the shards in rank order reproduces the single-process array exactly, and anything seeded by the
global row index (e.g. the frames sampled for video ``i``) is the same with 1 or W processes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

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
