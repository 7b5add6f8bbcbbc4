"""Sharded evaluation: shard bounds, the ordered all-gather over gloo, and 2-process evaluation
giving exactly the single-process result."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vilem.dist import all_agree, gather_rows, is_main, rank_world, shard_bounds

WORLD = 2
_BATCH = 2  # evaluation batch size of the end-to-end test

# ------------------------------------------------------------------------------ bounds


@pytest.mark.parametrize(
    ("n", "world", "expected"),
    [
        (10, 3, [(0, 4), (4, 7), (7, 10)]),  # 10 = 4 + 3 + 3: the first 10 % 3 ranks get one more
        (2, 4, [(0, 1), (1, 2), (2, 2), (2, 2)]),  # more ranks than rows: empty tail shards
        (6, 2, [(0, 3), (3, 6)]),
        (0, 3, [(0, 0), (0, 0), (0, 0)]),
        (5, 1, [(0, 5)]),
    ],
)
def test_shard_bounds_match_hand_computed_examples(n, world, expected):
    assert [shard_bounds(n, r, world) for r in range(world)] == expected


@pytest.mark.parametrize(
    ("n", "world", "unit", "expected"),
    [
        (10, 3, 4, [(0, 4), (4, 8), (8, 10)]),  # 3 batches of <= 4 rows, one per rank
        (21, 2, 2, [(0, 12), (12, 21)]),  # 11 batches: 6 + 5
        (3, 2, 4, [(0, 3), (3, 3)]),  # a single batch: rank 1 is idle
    ],
)
def test_shard_bounds_in_whole_batches_match_hand_computed_examples(n, world, unit, expected):
    assert [shard_bounds(n, r, world, unit) for r in range(world)] == expected


def test_shard_bounds_cover_every_row_once_with_sizes_differing_by_at_most_one():
    for n in [*range(0, 40), 97, 1000, 25_010]:
        for world in range(1, 11):
            for unit in (1, 3, 64):
                bounds = [shard_bounds(n, r, world, unit) for r in range(world)]
                assert bounds[0][0] == 0 and bounds[-1][1] == n
                # contiguous: each shard starts where the previous one stopped
                assert all(bounds[r][1] == bounds[r + 1][0] for r in range(world - 1))
                sizes = [stop - start for start, stop in bounds]
                batches = [-(-size // unit) for size in sizes]
                assert min(sizes) >= 0 and max(batches) - min(batches) <= 1
                # whole batches: only the last non-empty shard may end mid-batch
                assert all(start % unit == 0 for start, stop in bounds if start < n)
                if unit == 1:
                    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize(
    ("n", "rank", "world", "unit"),
    [(-1, 0, 1, 1), (5, 2, 2, 1), (5, -1, 2, 1), (5, 0, 0, 1), (5, 0, 1, 0), (2.5, 0, 1, 1)],
)
def test_shard_bounds_reject_impossible_arguments(n, rank, world, unit):
    with pytest.raises(ValueError):
        shard_bounds(n, rank, world, unit)


def test_without_a_process_group_everything_is_the_single_process_identity():
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert rank_world() == (0, 1)
    assert is_main()
    assert gather_rows(rows, 4) is rows
    assert all_agree(True) and not all_agree(False)
    with pytest.raises(ValueError, match="expected 5 rows"):
        gather_rows(rows, 5)


# ------------------------------------------------------------------------------ 2 processes


def _init(rank: int, port: int) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),
    )


def _gather_worker(rank: int, port: int, out_dir: str) -> None:
    _init(rank, port)
    try:
        out: dict[str, np.ndarray] = {}
        full = np.arange(7 * 3, dtype=np.float32).reshape(7, 3) * 0.5
        start, stop = shard_bounds(7, rank, WORLD)
        out["float_rows"] = gather_rows(full[start:stop], 7)
        ids = np.array([5, -3, 8], dtype=np.int64)
        start, stop = shard_bounds(3, rank, WORLD)
        out["int_vector"] = gather_rows(ids[start:stop], 3)
        # one row for two ranks: rank 1's empty shard comes from a loop that encoded nothing
        one = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
        local = one if rank == 0 else np.zeros((0, 1), np.float32)
        out["empty_shard"] = gather_rows(local, 1)
        out["agree_true"] = np.array(all_agree(True))
        out["agree_mixed"] = np.array(all_agree(rank == 0))
        out["is_main"] = np.array(is_main())
        try:
            gather_rows(full[:4], 7)  # every rank passes 4 rows: rank 1's shard has 3
            out["error"] = np.array("")
        except ValueError as exc:
            out["error"] = np.array(str(exc))
        np.savez(Path(out_dir) / f"rank{rank}.npz", **out)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_gather_rows_in_single_process_order(tmp_path, free_port):
    mp.spawn(_gather_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    full = np.arange(7 * 3, dtype=np.float32).reshape(7, 3) * 0.5
    for rank in range(WORLD):
        got = np.load(tmp_path / f"rank{rank}.npz")
        np.testing.assert_array_equal(got["float_rows"], full)
        assert got["float_rows"].dtype == np.float32
        np.testing.assert_array_equal(got["int_vector"], [5, -3, 8])
        assert got["int_vector"].dtype == np.int64
        np.testing.assert_array_equal(got["empty_shard"], [[1.0, 2.0, 3.0, 4.0]])
        assert bool(got["agree_true"]) and not bool(got["agree_mixed"])
        assert bool(got["is_main"]) == (rank == 0)
        # both ranks see the same bad shape, so both raise (nobody hangs in a collective)
        assert "rank 1 holds 4 rows but its shard of 7 is rows 4..7" in str(got["error"])


# ------------------------------------------------------------------------------ end to end

_EVAL_KEYS = ("metrics", "intervals", "per_query")


def _counting_model():
    """The ``random`` model, recording how many images and texts this process encoded."""
    from vilem.models.random import RandomModel

    class Counting(RandomModel):
        def __init__(self) -> None:
            super().__init__()
            self.counts = {"images": 0, "texts": 0}

        def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
            self.counts["images"] += len(pixels)
            return super().encode_images(pixels)

        def encode_texts(self, texts: list[str]) -> torch.Tensor:
            self.counts["texts"] += len(texts)
            return super().encode_texts(texts)

    return Counting()


def _evaluate(root: str) -> tuple[dict, dict]:
    from vilem.data import load_split
    from vilem.eval.engine import EvalOptions, evaluate

    split = load_split("synthetic", "test", root)
    model = _counting_model()
    opts = EvalOptions(batch_size=_BATCH, num_workers=0, bootstrap=200, quiet=True, cache_dir=None)
    result = evaluate(model, split, "retrieval", opts).to_json()
    return {k: result[k] for k in _EVAL_KEYS}, model.counts


def _eval_worker(rank: int, port: int, root: str, out_dir: str) -> None:
    _init(rank, port)
    try:
        result, counts = _evaluate(root)
        (Path(out_dir) / f"eval{rank}.json").write_text(
            json.dumps({"result": result, "counts": counts})
        )
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory) -> str:
    from vilem.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("synthetic")
    # 7 images x 3 captions: unequal shards (4 + 3 items; 11 + 10 texts, or 12 + 9 in batches)
    config = SyntheticConfig(
        image_size=32,
        video_size=32,
        captions_per_item=3,
        images_train=0,
        images_val=0,
        images_test=7,
        videos_train=0,
        videos_val=0,
        videos_test=0,
    )
    generate(root, config, seed=3, workers=1)
    return str(root)


def test_two_process_sharded_evaluation_gives_exactly_the_single_process_metrics(
    tiny_synthetic, tmp_path, free_port
):
    single, single_counts = _evaluate(tiny_synthetic)
    assert single_counts == {"images": 7, "texts": 21}
    mp.spawn(
        _eval_worker,
        args=(free_port(), tiny_synthetic, str(tmp_path)),
        nprocs=WORLD,
        join=True,
    )
    got = [json.loads((tmp_path / f"eval{r}.json").read_text()) for r in range(WORLD)]
    # each process encoded only its own shard of the items and of the texts (cut by rows or
    # in whole batches) ...
    for kind, n in (("images", 7), ("texts", 21)):
        counts = [g["counts"][kind] for g in got]
        shards = {
            tuple(b - a for a, b in (shard_bounds(n, r, WORLD, unit) for r in range(WORLD)))
            for unit in (1, _BATCH)
        }
        assert tuple(counts) in shards, f"{kind} encoded per rank: {counts}, not a sharding of {n}"
    # ... and every process ends with the exact single-process result
    for g in got:
        assert g["result"] == json.loads(json.dumps(single))
