"""benchmarks/perf/paper_recipe.py (the GPU check's paper mode), run on the CPU at toy size: both
arms train, their FLOPs are counted forward and backward, and the bf16 peak table finds a GPU by
its reported name."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks" / "perf"))
import paper_recipe  # noqa: E402


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA GH200 480GB", 989.4),
        ("NVIDIA A100-SXM4-40GB", 312.0),
        ("NVIDIA L40", 181.0),
        ("NVIDIA L40S", 362.1),
        ("Tesla T4", None),
    ],
)
def test_bf16_peak_by_device_name(name, tflops):
    assert paper_recipe.bf16_peak(name) == (None if tflops is None else tflops * 1e12)


def test_tiny_paper_recipe_trains_both_arms_and_counts_their_flops(tmp_path, capsys):
    out = tmp_path / "paper.json"
    assert paper_recipe.main(["--tiny", "--compile", "off", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["device"] == "cpu" and got["bf16_peak"] is None
    rows = {r["arm"]: r for r in got["rows"]}
    assert set(rows) == {"itc", "vilem"}
    itc, vilem = rows["itc"], rows["vilem"]
    for r in (itc, vilem):
        assert r["batch"] == 4 and r["compile"] is False and r["mfu"] is None
        assert r["step_s"] > 0 and r["samples_per_s"] == pytest.approx(4 / r["step_s"])
        assert torch.isfinite(torch.tensor(r["loss"]))
    # ViLEM edits captions and adds the editor, two branches and the ED/EC heads to the same
    # towers: more work per sample; ITC-only edits nothing
    assert vilem["n_edits"] > 0 and itc["n_edits"] == 0
    assert vilem["flops_per_sample"] > itc["flops_per_sample"] > 0
    printed = capsys.readouterr().out
    assert "ViLEM / ITC-only step time, compile=False:" in printed


def test_flops_are_counted_over_forward_and_backward():
    # one Linear(8 -> 4, no bias) on 2 rows: 2*2*8*4 = 128 forward; backward computes the
    # input and weight gradients, 128 each
    layer = torch.nn.Linear(8, 4, bias=False)
    x = torch.randn(2, 8, requires_grad=True)
    assert paper_recipe._flops_per_step(lambda: layer(x).sum().backward()) == 3 * 128


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_without_cuda_the_paper_sizes_need_a_flag(capsys):
    assert paper_recipe.main(["--compile", "off"]) == 1
    assert "--cpu the paper's sizes on the CPU" in capsys.readouterr().err
