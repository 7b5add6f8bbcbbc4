"""benchmarks/scaling_curve.py at toy size: each gallery point runs in its own process, the
metric path against the bare GEMM floor, and the table reports every point."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _script():
    path = REPO / "benchmarks" / "scaling_curve.py"
    spec = importlib.util.spec_from_file_location("scaling_curve", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scaling_curve_measures_each_gallery_in_its_own_process(tmp_path, capsys):
    out = tmp_path / "curve.json"
    assert _script().main(["--items", "40", "80", "--per-item", "2", "--dim", "8",
                           "--threads", "1", "--out", str(out)]) == 0  # fmt: skip
    rows = json.loads(out.read_text())
    assert [(r["metrics"]["items"], r["metrics"]["texts"]) for r in rows] == [(40, 80), (80, 160)]
    assert all(r["matmul"]["mode"] == "matmul" and r["metrics"]["seconds"] > 0 for r in rows)
    assert rows[0]["metrics"]["metrics"]["t2i_R@10"] >= rows[0]["metrics"]["metrics"]["t2i_R@1"]
    printed = capsys.readouterr().out
    assert "| 40 x 80 | 3.20e+03 |" in printed and "| 80 x 160 | 1.28e+04 |" in printed
