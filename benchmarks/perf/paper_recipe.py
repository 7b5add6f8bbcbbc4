"""The paper recipe on one GPU: ViT-B/16 at 224 px + BERT-base, fusion at layer 6, momentum
encoders and the 65,536 queue, bf16, batch 256; random init. Run by ``gpu_check.sh paper``.

    python benchmarks/perf/paper_recipe.py                  # CUDA: the paper recipe
    python benchmarks/perf/paper_recipe.py --tiny           # CPU smoke test at toy size (fp32)
    python benchmarks/perf/paper_recipe.py --cpu --batch 8 --steps 2 --warmup 1 --compile off
                                                            # the paper's sizes on the CPU (fp32)

For ITC-only (the recipe without ED/EC) and full ViLEM, eager and ``torch.compile``-d, it times
training steps (forward, backward, AdamW) on a fixed generated batch (synthetic captions; the
synthetic images resized to 224 px) and prints samples/s, the model FLOPs per sample (every
matrix product and attention of one step, forward and backward, momentum encoders and the
negatives' MLM included, counted by ``torch.utils.flop_counter``), MFU against the GPU's dense
bf16 peak (a table by device name; "unknown" for others) and the peak memory. The negatives'
MLM has BERT-base's architecture (the recipe's ``mlm_path``), random init with the plausibility
filter off (a random MLM's fills would all be dropped). Data loading is not timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# dense bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name()
# (first match wins: the specific names before the general ones)
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100", 989.4),  # SXM
    ("H800", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("NVIDIA L4", 121.0),
    ("RTX 4090", 165.2),
)
TINY = {
    "vision": {"image_size": 32, "patch_size": 16, "width": 64, "depth": 2, "heads": 2},
    "text": {"hidden": 64, "layers": 2, "heads": 2, "intermediate": 128, "max_len": 16},
    "fusion_layer": 1,
    "queue_size": 64,
}


def bf16_peak(device_name: str) -> float | None:
    """The dense bf16 peak (FLOP/s) of a GPU by name; None if unknown."""
    for key, tflops in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


def paper_config(itc_only: bool, tiny: bool) -> Any:
    from vilem.train.config import load_config

    cfg = load_config("paper-vit-b16-bert-base").model
    if tiny:
        cfg = dataclasses.replace(
            cfg,
            vision=dataclasses.replace(cfg.vision, **TINY["vision"]),
            text=dataclasses.replace(cfg.text, **TINY["text"]),
            fusion_layer=TINY["fusion_layer"],
            queue_size=TINY["queue_size"],
        )
    if itc_only:
        cfg = dataclasses.replace(cfg, use_ed=False, use_ec=False)
    cfg.validate()
    return cfg


def _attach_mlm(model: Any, tiny: bool) -> None:
    """A random-init BERT-base masked LM (tiny: 1 layer of 32) as the negatives' editor."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from vilem.model.negatives import MLMEditor

    hidden, layers, heads = (32, 1, 2) if tiny else (768, 12, 12)
    config = BertConfig(
        vocab_size=len(model.tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * hidden,
        pad_token_id=model.tokenizer.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(1)
    mlm = BertForMaskedLM(config).to(next(model.parameters()).device)
    negatives = dataclasses.replace(model.config.negatives, min_prob=0.0)
    model.editor = MLMEditor(mlm, model.tokenizer, negatives)


def make_batch(batch: int, size: int, device: Any) -> dict[str, Any]:
    """Synthetic captions and images (generated here, resized to ``size`` px)."""
    import numpy as np
    import torch
    from PIL import Image

    from vilem.data import load_split
    from vilem.data.media import load_image
    from vilem.data.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(
        images_train=max(8, batch // 5 + 1), images_val=0, images_test=0,
        videos_train=0, videos_val=0, videos_test=0,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vilem-paper-") as tmp:
        generate(Path(tmp), config, seed=0, workers=1)
        split = load_split("synthetic", "train", Path(tmp))
        pairs = [j for _, j in split.training_pairs(0, 0)][:batch]
        pixels = []
        for j in pairs:
            image = load_image(split.item_paths[int(split.text_to_item[j])])
            image = image.resize((size, size), Image.BICUBIC)
            pixels.append(torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1.0))
    return {
        "captions": [split.texts[j] for j in pairs],
        "item_ids": torch.as_tensor(split.text_to_item[pairs], dtype=torch.long).to(device),
        "pixels": torch.stack(pixels).permute(0, 3, 1, 2).contiguous().to(device),
    }


def _build(itc_only: bool, tiny: bool, batch: dict[str, Any], device: Any, compile_: bool):
    """A training step function of one arm: forward (autocast bf16 on CUDA), backward, AdamW."""
    import torch

    from vilem.model.vilem import ViLEM
    from vilem.train.optim import adamw, param_groups

    torch.manual_seed(0)
    model = ViLEM(paper_config(itc_only, tiny)).to(device).train()
    if not itc_only:
        _attach_mlm(model, tiny)
    optimizer = adamw(param_groups(model, 0.02, 1.0), lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
    ids, mask = model.tokenize(batch["captions"])
    forward = torch.compile(model) if compile_ else model
    amp = torch.bfloat16 if device.type == "cuda" else None
    seeds = iter(range(10**9))

    def step() -> dict[str, float]:
        gen = torch.Generator(device=device).manual_seed(next(seeds))
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            parts = forward(batch["pixels"], ids, mask, batch["item_ids"], alpha=0.4, generator=gen)
        parts["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return parts

    return step, model


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _flops_per_step(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def run_arm(args: argparse.Namespace, itc_only: bool, compile_: bool, batch, device) -> dict:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    tick = time.perf_counter()
    step, model = _build(itc_only, args.tiny, batch, device, compile_)
    step()  # the first step compiles (with torch.compile) and allocates optimizer state
    _sync(device)
    first_s = time.perf_counter() - tick
    # compiled: a new edit count recompiles until the dims are marked dynamic (a few steps)
    for _ in range(args.warmup + (args.compile_warmup if compile_ else 0)):
        step()
    _sync(device)
    tick = time.perf_counter()
    for _ in range(args.steps):
        parts = step()
    _sync(device)
    seconds = (time.perf_counter() - tick) / args.steps
    flops = _flops_per_step(step) if not compile_ else None
    samples = len(batch["captions"])
    peak_mem = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    del model
    return {
        "arm": "itc" if itc_only else "vilem",
        "compile": compile_,
        "batch": samples,
        "step_s": seconds,
        "samples_per_s": samples / seconds,
        "first_step_s": first_s,
        "flops_per_sample": None if flops is None else flops / samples,
        "peak_memory_bytes": int(peak_mem),
        "n_edits": float(parts["n_edits"].detach()) if "n_edits" in parts else 0.0,
        "loss": float(parts["loss"].detach()),
    }


def _print_table(rows: list[dict], peak: float | None, device_name: str) -> None:
    flops = {r["arm"]: r["flops_per_sample"] for r in rows if r["flops_per_sample"]}
    shown = f"{peak / 1e12:.0f} TFLOP/s" if peak else "unknown"
    print(f"device: {device_name}; dense bf16 peak: {shown}")
    print(f"{'arm':6} {'compile':8} {'batch':>5} {'samples/s':>10} {'GFLOP/sample':>13} "
          f"{'MFU':>7} {'peak mem GiB':>12} {'first step s':>12}")  # fmt: skip
    for r in rows:
        f = flops.get(r["arm"])
        r["mfu"] = f * r["samples_per_s"] / peak if f and peak else None
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "unknown"
        print(
            f"{r['arm']:6} {str(r['compile']):8} {r['batch']:5d} {r['samples_per_s']:10.1f} "
            f"{(f or 0) / 1e9:13.4g} {mfu:>7} {r['peak_memory_bytes'] / (1 << 30):12.2f} "
            f"{r['first_step_s']:12.1f}"
        )
    for mode in sorted({r["compile"] for r in rows}):
        arm = {r["arm"]: r for r in rows if r["compile"] == mode}
        if {"itc", "vilem"} <= set(arm):
            ratio = arm["vilem"]["step_s"] / arm["itc"]["step_s"]
            print(f"ViLEM / ITC-only step time, compile={mode}: {ratio:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes, for a CPU smoke test")
    parser.add_argument(
        "--cpu", action="store_true",
        help="run on the CPU even where CUDA is available (fp32; with the paper's sizes, give "
        "a small --batch: one step of 8 samples takes ~10 s on 2 cores)",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=None, help="default 256 (tiny: 4)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (20; tiny: 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (5; tiny: 1)")
    parser.add_argument("--compile", choices=("both", "off", "on"), default="both")
    parser.add_argument(
        "--compile-warmup", type=int, default=5, help="extra untimed steps when compiled"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    args.batch = args.batch or (4 if args.tiny else 256)
    args.steps = args.steps or (2 if args.tiny else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5)

    from vilem.threads import configure

    configure()
    import torch

    if not torch.cuda.is_available() and not (args.tiny or args.cpu):
        print(
            "paper_recipe: CUDA is not available (--tiny runs a CPU smoke test, --cpu the "
            "paper's sizes on the CPU)",
            file=sys.stderr,
        )
        return 1
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    batch = make_batch(args.batch, paper_config(True, args.tiny).vision.image_size, device)
    modes = {"both": (False, True), "off": (False,), "on": (True,)}[args.compile]
    rows = [run_arm(args, itc, c, batch, device) for c in modes for itc in (True, False)]
    peak = bf16_peak(name) if device.type == "cuda" else None
    _print_table(rows, peak, name)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "bf16_peak": peak, "rows": rows}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
