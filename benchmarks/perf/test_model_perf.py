"""The model cases, all on the small recipes (``small-itc`` / ``small-vilem``, random init):

- image encoding: images/s of the ITC-only model and of the ViLEM model of the same architecture
  (retrieval runs only the towers and projections, so they must match);
- training step: full ViLEM vs ITC-only, plus global-only, local-only and the negatives
  generator alone, so the runner can say where the extra time goes; and one profiled step of
  each arm per round (``torch.profiler``): the time of its matrix products, the floor the
  runner compares the step with;
- data loading: batches/s of the training loader (``vilem.train.data.make_loader`` with the
  recipe's workers), compared by the runner with the full ViLEM step rate.

The variants of a case take turns round by round (``conftest.interleaved``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from conftest import attach_random_mlm, build_vilem, interleaved, train_settings, vilem_config

ENCODE_BATCH = 64
ENCODERS = ("itc", "vilem")
STEPS = (
    "itc",
    "vilem_full",
    "vilem_global_only",
    "vilem_local_only",
    "negatives_only",
    "itc_profile",
    "vilem_full_profile",
)
# the floor: matrix products (GEMMs, the patch-embedding convolution, and the fused attention
# kernels, whose work is the QK^T and PV products), forward and backward
MATMUL_OPS = frozenset(
    ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
     "aten::convolution_backward")
)  # fmt: skip
ATTENTION_OPS = frozenset(
    ("aten::_scaled_dot_product_flash_attention_for_cpu",
     "aten::_scaled_dot_product_flash_attention_for_cpu_backward")
)  # fmt: skip
BUCKETS = {
    "dropout RNG": ("aten::bernoulli_",),
    "AdamW": ("aten::_fused_adamw_",),
    "LayerNorm, GELU, softmax": (
        "aten::native_layer_norm", "aten::native_layer_norm_backward", "aten::gelu",
        "aten::gelu_backward", "aten::_softmax", "aten::_softmax_backward_data",
        "aten::_log_softmax", "aten::_log_softmax_backward_data",
    ),
    "fill, copy": ("aten::fill_", "aten::copy_", "aten::zero_"),
}  # fmt: skip


# ------------------------------------------------------------------------------ image encoding


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    size = vilem_config("small-vilem").vision.image_size
    return torch.randn(ENCODE_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def encoders(pixels) -> dict[str, Any]:
    """Both models behind the evaluation interface, warmed up."""
    vilem_config("small-vilem")  # skips the case when the model code is missing
    from vilem.models.vilem import ViLEMRetrieval

    models = {
        "itc": ViLEMRetrieval(build_vilem("small-itc")),
        "vilem": ViLEMRetrieval(build_vilem("small-vilem")),
    }
    for model in models.values():
        for _ in range(3):
            model.encode_images(pixels)
    return models


@pytest.mark.benchmark(group="image_encoding")
@interleaved(ENCODERS, rounds=16)
def test_image_encoding(benchmark, encoders, pixels, variant, round_):
    model = encoders[variant]
    out = benchmark.pedantic(model.encode_images, args=(pixels,), rounds=2, iterations=1)
    assert out.shape == (ENCODE_BATCH, model.model.config.embed_dim)
    benchmark.extra_info["images_per_call"] = ENCODE_BATCH


# ------------------------------------------------------------------------------ training step


@pytest.fixture(scope="module")
def train_batch(synthetic_root) -> dict[str, Any]:
    """One batch of the small recipe: real synthetic captions (their word pieces decide where
    negatives are edited), random pixels (the towers cost the same on any pixels)."""
    from vilem.data import load_split

    batch_size, _, _ = train_settings()
    size = vilem_config("small-vilem").vision.image_size
    split = load_split("synthetic", "train", synthetic_root)
    order = [j for _, j in split.training_pairs(0, 0)][:batch_size]
    gen = torch.Generator().manual_seed(0)
    return {
        "captions": [split.texts[j] for j in order],
        "item_ids": torch.as_tensor(split.text_to_item[order], dtype=torch.long),
        "pixels": torch.randn(batch_size, 3, size, size, generator=gen),
    }


def _step_fn(train_batch: dict[str, Any], recipe: str, **overrides: Any) -> Callable[[], dict]:
    """Forward + backward + clip + AdamW step, as ``vilem.train.loop.train`` runs one."""
    from vilem.train.config import load_config
    from vilem.train.optim import adamw, param_groups

    model = build_vilem(recipe, **overrides)
    if not model.config.itc_only:
        attach_random_mlm(model)
    model.train()
    optim = load_config(recipe).optim
    _, _, clip = train_settings()
    optimizer = adamw(
        param_groups(model, optim.weight_decay, optim.image_lr_mult),
        lr=optim.lr,
        betas=optim.betas,
        eps=optim.eps,
    )
    ids, mask = model.tokenize(train_batch["captions"])
    pixels, item_ids = train_batch["pixels"], train_batch["item_ids"]
    seeds = itertools.count()

    def step() -> dict[str, float]:
        gen = torch.Generator().manual_seed(next(seeds))
        parts = model(pixels, ids, mask, item_ids, generator=gen)
        parts["loss"].backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {k: float(v.detach()) for k, v in parts.items()}

    return step


def _negatives_fn(train_batch: dict[str, Any]) -> Callable[[], dict]:
    """The MLM negatives generator alone on the step's captions (it runs under no_grad)."""
    model = build_vilem("small-vilem")
    attach_random_mlm(model)
    ids, mask = model.tokenize(train_batch["captions"])
    seeds = itertools.count()

    def edit() -> dict[str, float]:
        _, labels, _ = model.editor.edit(ids, mask, torch.Generator().manual_seed(next(seeds)))
        return {"n_edits": float((labels == 1).sum())}

    return edit


@pytest.fixture(scope="module")
def steps(train_batch) -> dict[str, Callable[[], dict]]:
    vilem_config("small-vilem")  # skips the case when the model code is missing
    fns = {
        "itc": _step_fn(train_batch, "small-itc"),
        "vilem_full": _step_fn(train_batch, "small-vilem"),
        "vilem_global_only": _step_fn(train_batch, "small-vilem", use_local=False),
        "vilem_local_only": _step_fn(train_batch, "small-vilem", use_global=False),
        "negatives_only": _negatives_fn(train_batch),
    }
    for fn in fns.values():  # warm-up: first steps allocate optimizer state and caches
        fn()
        fn()
    return fns


def profiled(step: Callable[[], dict]) -> dict[str, Any]:
    """One step under ``torch.profiler``: self time (seconds) of its matrix products, of a few
    other kinds of op, of everything else, and the number of ops."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        last = step()
    totals: dict[str, float] = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
    totals.update({k: 0.0 for k in BUCKETS})
    kind = {op: name for name, ops in BUCKETS.items() for op in ops}
    kind.update({op: "matmul" for op in MATMUL_OPS})
    kind.update({op: "attention" for op in ATTENTION_OPS})
    ops = 0
    for event in prof.key_averages():
        totals[kind.get(event.key, "other")] += event.self_cpu_time_total / 1e6
        ops += event.count
    return {
        "floor_s": totals["matmul"] + totals["attention"],
        "profiled_s": sum(totals.values()),
        "parts_s": totals,
        "ops": ops,
        "last_step": last,
    }


@pytest.mark.benchmark(group="training_step")
@interleaved(STEPS, rounds=12)
def test_training_step(benchmark, steps, train_batch, variant, round_):
    # one untimed step of the same model first: a trainer repeats one model's step, so the
    # timed (or profiled) step finds that model's weights, gradients and optimizer state in the
    # caches and the allocator, not the previous variant's (measured cold, right after four
    # other models, the ITC-only step took 257 ms against 204 ms warmed)
    step = steps[variant.removesuffix("_profile")]

    def warm_up() -> None:  # pedantic's setup: its return value would be taken as arguments
        step()

    if variant.endswith("_profile"):
        info = benchmark.pedantic(profiled, args=(step,), setup=warm_up, rounds=1)
        benchmark.extra_info.update(info)
    else:
        benchmark.extra_info["last_step"] = benchmark.pedantic(step, setup=warm_up, rounds=1)
    benchmark.extra_info["batch_size"] = len(train_batch["item_ids"])


# ------------------------------------------------------------------------------ data loading


@pytest.mark.benchmark(group="data_loading")
def test_loader_batches(benchmark, synthetic_root):
    """One epoch of the training loader per round, built as ``train`` builds it."""
    from vilem.data import load_split
    from vilem.train.config import load_config
    from vilem.train.data import CaptionPairs, Collate, EpochBatches, Preprocess, make_loader

    cfg = load_config("small-vilem")
    model = build_vilem("small-vilem")  # its tokenizer and pixel normalisation
    prep = Preprocess.for_training(cfg, model)
    split = load_split("synthetic", "train", synthetic_root)
    dataset = CaptionPairs(split, prep, cfg.seed, cfg.data.cache_images)
    batches = EpochBatches(split, cfg.optim.batch_size, cfg.seed)
    collate = Collate(model.tokenizer, model.config.text.max_len)
    loader = make_loader(dataset, batches, collate, cfg.num_workers)
    epochs = itertools.count()

    def one_epoch() -> int:
        batches.set_epoch(next(epochs))
        return sum(1 for _ in loader)

    n = benchmark.pedantic(one_epoch, rounds=3, warmup_rounds=1)
    assert n == batches.batches_per_epoch()
    benchmark.extra_info.update(
        batches_per_round=n, num_workers=cfg.num_workers, batch_size=cfg.optim.batch_size
    )
