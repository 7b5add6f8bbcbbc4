"""Training-step time of the small recipe under variants, as ratios measured in one process with
the rounds interleaved (random init, random pixels, one fixed caption batch; docs/experiments.md):

    python benchmarks/step_variants.py               # image / patch size, ITC-only and ViLEM
    python benchmarks/step_variants.py --momentum    # ViLEM without / with momentum encoders,
                                                     # and with the paired momentum passes
    python benchmarks/step_variants.py --compile     # eager against torch.compile of every
                                                     # ViT block and BERT layer (regional)

The momentum steps leave out the EMA update the trainer does after each step."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "perf"))

from vilem.threads import configure  # noqa: E402  (before torch loads)

configure()

import torch  # noqa: E402
from conftest import attach_random_mlm, vilem_config  # noqa: E402

from vilem.model.vilem import ViLEM  # noqa: E402
from vilem.train.optim import adamw, param_groups  # noqa: E402

BATCH, ROUNDS = 32, 4
SHAPES = [(64, 16), (96, 16), (64, 8), (128, 16)]  # (image size, patch size)
MOMENTUM = {
    "no momentum": {},
    "momentum": {"momentum": True},
    "momentum + paired passes": {"momentum": True, "paired_momentum": True},
}


def compile_blocks(model: ViLEM) -> None:
    """Regional ``torch.compile``: each ViT block and BERT layer (the LayerNorm, GELU, dropout
    and residual ops around the matrix products are what inductor could fuse)."""
    for block in [*model.image_tower.vit.blocks, *model.text_tower.layers]:
        block.compile()


def make_step(recipe: str, size: int, patch: int, compiled: bool = False, **flags):
    """One training step (forward, backward, AdamW) of a random-init model of ``recipe``."""
    cfg = vilem_config(recipe, **flags)
    vision = dataclasses.replace(cfg.vision, image_size=size, patch_size=patch)
    cfg = dataclasses.replace(cfg, vision=vision)
    torch.manual_seed(0)
    model = ViLEM(cfg)
    if not cfg.itc_only:
        attach_random_mlm(model)
    model.train()
    if compiled:
        compile_blocks(model)
    optimizer = adamw(param_groups(model, 0.02, 1.0), lr=5e-4)
    ids, mask = model.tokenize(["a large red star left of two small blue circles"] * BATCH)
    items, pixels = torch.arange(BATCH), torch.randn(BATCH, 3, size, size)

    def step(seed: int) -> None:
        parts = model(pixels, ids, mask, items, generator=torch.Generator().manual_seed(seed))
        parts["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def median_seconds(steps: dict) -> dict[str, float]:
    """Median step seconds of each variant: two warm-up steps each, then rounds in turn."""
    for name, f in steps.items():
        start = time.perf_counter()
        f(0)
        f(1)
        print(f"{name}: 2 warm-up steps {time.perf_counter() - start:.1f} s", file=sys.stderr)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(ROUNDS):
        for k, f in steps.items():
            start = time.perf_counter()
            f(r + 2)
            times[k].append(time.perf_counter() - start)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def report(med: dict[str, float], base: str) -> dict[str, dict[str, float]]:
    return {k: {"s": round(v, 3), "ratio": round(v / med[base], 2)} for k, v in med.items()}


def main() -> None:
    if "--momentum" in sys.argv:
        steps = {k: make_step("small-vilem", 64, 16, **v) for k, v in MOMENTUM.items()}
        print(json.dumps(report(median_seconds(steps), "no momentum"), indent=1))
        return
    out = {}
    if "--compile" in sys.argv:
        for recipe in ("small-itc", "small-vilem"):
            steps = {f"{recipe} {k}": make_step(recipe, 64, 16, compiled=k == "compiled")
                     for k in ("eager", "compiled")}  # fmt: skip
            out |= report(median_seconds(steps), f"{recipe} eager")
        print(json.dumps(out, indent=1))
        return
    for recipe in ("small-itc", "small-vilem"):
        names = {s: f"{recipe} {s[0]}px/p{s[1]} ({(s[0] // s[1]) ** 2} patches)" for s in SHAPES}
        steps = {names[s]: make_step(recipe, *s) for s in SHAPES}
        out |= report(median_seconds(steps), names[SHAPES[0]])
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
