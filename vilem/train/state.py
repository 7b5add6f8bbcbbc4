"""Training checkpoints without pickle, swapped in atomically.

``out_dir/checkpoint/`` holds ``model.safetensors`` + ``config.json`` (``vilem.model.checkpoint``),
``train_state.safetensors`` (optimizer tensors, RNG states of every rank) and
``train_state.json`` (step, schedule, scalar optimizer state, data position, config).

A checkpoint is written whole into ``checkpoint.tmp-<pid>``, then swapped in with renames:
``checkpoint -> checkpoint.old``, ``checkpoint.tmp-<pid> -> checkpoint``, remove ``.old``. A
kill at any moment leaves either the old or the new checkpoint complete; ``recover_checkpoint``
finishes or undoes an interrupted swap on the next start.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from vilem.dist import rank_world
from vilem.errors import ConfigError, one_line
from vilem.io import atomic_write_bytes, atomic_write_json, read_json

CHECKPOINT = "checkpoint"
STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"
STATE_VERSION = 1


# --------------------------------------------------------------------------- atomic folder swap


def swap_in(tmp: Path, final: Path) -> None:
    """Make the complete folder ``tmp`` the new ``final``; the old one survives until then."""
    old = final.with_name(final.name + ".old")
    if old.exists() and final.exists():
        shutil.rmtree(old)  # a previous swap finished but did not clean up
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_checkpoint(out_dir: Path) -> Path | None:
    """Repair what a kill during ``swap_in`` can leave, then return the checkpoint (or None).

    Only ``checkpoint.old`` present: the kill came between the two renames, so the old one is
    the last good checkpoint and goes back. Both present: the kill came before the clean-up.
    Temporary folders are partial by definition and removed.
    """
    final = out_dir / CHECKPOINT
    old = out_dir / (CHECKPOINT + ".old")
    if old.exists():
        if final.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, final)
    for tmp in out_dir.glob(CHECKPOINT + ".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    return final if (final / STATE_JSON).is_file() else None


# --------------------------------------------------------------------------- optimizer state


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state dict -> (named tensors, JSON-able rest)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict[str, Any]:
    """Inverse of ``flatten_optimizer``: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optimizer."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


# --------------------------------------------------------------------------- RNG states


def rng_state_tensors(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's torch / CUDA / numpy / python RNG states as tensors."""
    np_state = np.random.get_state()
    py_version, py_keys, py_gauss = random.getstate()
    extras = [
        float(np_state[2]),  # position in the key array
        float(np_state[3]),  # has a cached gaussian
        float(np_state[4]),  # the cached gaussian
        float(py_version),
        float("nan") if py_gauss is None else float(py_gauss),
    ]
    out = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "python_keys": torch.tensor(py_keys, dtype=torch.int64),
        "extras": torch.tensor(extras, dtype=torch.float64),
    }
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state_tensors(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    extras = state["extras"].tolist()
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            int(extras[0]),
            int(extras[1]),
            float(extras[2]),
        )
    )
    gauss = None if np.isnan(extras[4]) else extras[4]
    random.setstate((int(extras[3]), tuple(int(x) for x in state["python_keys"].tolist()), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8).cpu(), device)


def gather_rng_states(device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Every rank's RNG states (rank order) on rank 0; ``[own]`` without a process group."""
    import torch.distributed as dist

    own = rng_state_tensors(device)
    _, world = rank_world()
    if world == 1:
        return [own]
    # NCCL moves CUDA tensors only; the states are fixed-size per kind, so all_gather works
    comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
    gathered: list[dict[str, torch.Tensor]] = [{} for _ in range(world)]
    for key in sorted(own):
        t = own[key].to(comm)
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t)
        for r, p in enumerate(parts):
            gathered[r][key] = p.cpu()
    return gathered


# --------------------------------------------------------------------------- whole checkpoint


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def write_checkpoint(
    out_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng_states: list[dict[str, torch.Tensor]],
    meta: dict[str, Any],
) -> Path:
    """Write model + training state into a temporary folder, then swap it in. Rank 0 only."""
    from vilem.model.checkpoint import save_model

    tmp = out_dir / f"{CHECKPOINT}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp)
    tensors, optim_meta = flatten_optimizer(optimizer)
    for rank, states in enumerate(rng_states):
        for key, value in states.items():
            tensors[f"rng.{rank}.{key}"] = value.contiguous()
    # through atomic_write_bytes, like the model file: one write path (and its fault point)
    atomic_write_bytes(tmp / STATE_TENSORS, save(tensors))
    payload = {"version": STATE_VERSION, **meta, "optimizer": optim_meta}
    payload["world_size"] = len(rng_states)
    atomic_write_json(tmp / STATE_JSON, payload)
    _fsync_folder(tmp)  # the data is on disk before the rename makes it the checkpoint
    final = out_dir / CHECKPOINT
    swap_in(tmp, final)
    return final


def read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(train_state.json payload, train_state tensors) of a checkpoint folder."""
    meta = read_json(folder / STATE_JSON, "training state")
    if not isinstance(meta, dict) or meta.get("version") != STATE_VERSION:
        raise ConfigError(f"{folder / STATE_JSON} is not a vilem training state (version 1)")
    try:
        tensors = load_file(str(folder / STATE_TENSORS))
    except (SafetensorError, OSError, FileNotFoundError) as exc:
        raise ConfigError(f"cannot read {folder / STATE_TENSORS}: {exc}") from exc
    return meta, tensors


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The model tensors of checkpoint ``folder``, or a one-line ConfigError naming the file
    when it is missing, truncated or not safetensors."""
    from vilem.model.checkpoint import WEIGHTS_FILE

    path = folder / WEIGHTS_FILE
    advice = f"restore it, or remove {folder} to start over"
    if not path.is_file():
        raise ConfigError(f"cannot resume: the checkpoint has no {path}; {advice}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(
            f"cannot resume: {path} is truncated or not a safetensors file "
            f"({one_line(str(exc))}); {advice}"
        ) from exc


def rng_states_for_rank(tensors: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    prefix = f"rng.{rank}."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
