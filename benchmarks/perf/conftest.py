"""Shared fixtures of the performance suite, and the outcome log ``run_perf.py`` reads.

Each case compares a candidate with a reference measured in the same run (see
``benchmarks/run_perf.py`` for the cases and targets). Nothing here asserts a time: the runner
turns the timings into ratios. A case whose prerequisites are missing (decord, the ViLEM model
code, ...) is skipped with a reason, and the runner prints that reason instead of a number.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from vilem.threads import configure

# the suite never reaches a hub: every model is random-init, every input generated here
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# the thread settings the `vilem` command applies at start (a fixed count from the CPU
# affinity; how idle threads wait), before torch loads; child processes inherit them. A child
# measuring the libraries' defaults (contention_child.py --setup none) imports this module
# without them
THREADS = {} if os.environ.get("VILEM_PERF_SETUP") == "none" else configure()

if os.environ.get("VILEM_PERF_THREADS"):  # run_perf.py --threads N
    import torch

    torch.set_num_threads(int(os.environ["VILEM_PERF_THREADS"]))

# the embedded synthetic data used by the model cases: 64x64 images, 5 captions each
TRAIN_IMAGES = 500  # 2,500 captions: 78 batches of 32 for the loader
TEST_IMAGES = 200  # 1,000 captions for the embedding-cache evaluation

_OUTCOMES: dict[str, dict[str, str]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--perf-outcomes",
        default=None,
        help="write {test name: {outcome, reason}} as JSON here (read by run_perf.py)",
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = report.nodeid.split("::")[-1]
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _OUTCOMES[name] = {"outcome": "skipped", "reason": reason.removeprefix("Skipped: ")}
    elif report.failed:
        lines = [ln for ln in str(report.longreprtext).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("E ")]
        reason = (errors[-1] if errors else lines[-1] if lines else "failed")[:300]
        _OUTCOMES[name] = {"outcome": "failed", "reason": f"{report.when}: {reason}"}
    elif report.when == "call":
        _OUTCOMES.setdefault(name, {"outcome": "passed", "reason": ""})


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--perf-outcomes")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(_OUTCOMES, indent=2) + "\n")


def interleaved(variants: Sequence[str], rounds: int) -> pytest.MarkDecorator:
    """Parametrize a benchmark over ``(variant, round_)`` so the variants of a case take turns:
    round 0 of each, then round 1 of each (in a rotated order), and so on. Machines are noisy
    in bursts; taking turns lets every variant see the same conditions, so their ratio holds.
    Ids are ``<variant>-r<round>``; ``run_perf.py`` pools the rounds of each variant."""
    params = [
        (variants[(i + r) % len(variants)], r) for r in range(rounds) for i in range(len(variants))
    ]
    return pytest.mark.parametrize(
        ("variant", "round_"), params, ids=[f"{v}-r{r}" for v, r in params]
    )


def require(module: str, why: str) -> Any:
    """Import ``module`` or skip the case, saying why it is needed and what went wrong (a missing
    package and a broken install, e.g. a missing shared library, both skip)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"{module} unavailable ({exc}); {why}")


# ------------------------------------------------------------------------------ data


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic image dataset generated for this run (no videos)."""
    return make_synthetic(tmp_path_factory.mktemp("synthetic"))


def make_synthetic(root: Path) -> Path:
    """Generate the suite's small synthetic image dataset (no videos) into ``root``."""
    from vilem.data.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(
        images_train=TRAIN_IMAGES,
        images_val=0,
        images_test=TEST_IMAGES,
        videos_train=0,
        videos_val=0,
        videos_test=0,
    )
    # one worker: a process pool would cost more than it saves at this size
    generate(root, config, seed=0, workers=1)
    return root


# ------------------------------------------------------------------------------ models


def vilem_config(recipe: str, **overrides: Any) -> Any:
    """The ``model`` section of a packaged training recipe (a ViLEMConfig) with ``overrides``
    of its top-level fields, or skip the case when the ViLEM model code is not there (yet)."""
    import dataclasses

    try:
        from vilem.model.vilem import ViLEM  # noqa: F401  (only checks the model code exists)
        from vilem.train.config import load_config
    except ImportError as exc:
        pytest.skip(f"model code missing: {exc}")
    cfg = dataclasses.replace(load_config(recipe).model, **overrides)
    cfg.validate()
    return cfg


def build_vilem(recipe: str, seed: int = 0, **overrides: Any) -> Any:
    """A random-init ViLEM (or ITC-only) model of a recipe, without its negatives generator
    (attach one with ``attach_random_mlm``: the recipe's MLM folder is a training output)."""
    import torch

    from vilem.model.vilem import ViLEM

    cfg = vilem_config(recipe, **overrides)
    torch.manual_seed(seed)
    return ViLEM(cfg)


def attach_random_mlm(model: Any) -> None:
    """Give ``model`` ViLEM's MLM negatives generator with a random-init masked LM of exactly
    the architecture ``vilem train-lm`` trains by default.

    A random-init MLM spreads its fills over the whole vocabulary, so the recipe's plausibility
    filter (``min_prob``) would drop every one and the ViLEM step would run EC on no edit at
    all (the suite measured that step before). The filter is off here: every picked position is
    edited, about ``p`` of the eligible words (~1.5-2 a caption, as a trained MLM keeps; the
    step reports ``n_edits``)."""
    import dataclasses

    import torch
    from transformers import BertConfig, BertForMaskedLM

    from vilem.model.negatives import MLMEditor
    from vilem.train.lm import train_lm

    defaults = {k: p.default for k, p in inspect.signature(train_lm).parameters.items()}
    tokenizer = model.tokenizer
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=defaults["hidden"],
        num_hidden_layers=defaults["layers"],
        num_attention_heads=defaults["heads"],
        intermediate_size=4 * defaults["hidden"],
        max_position_embeddings=max(64, defaults["max_len"]),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(1)
    negatives = dataclasses.replace(model.config.negatives, min_prob=0.0)
    model.editor = MLMEditor(BertForMaskedLM(config), tokenizer, negatives)


def train_settings() -> tuple[int, int, float | None]:
    """(batch size, loader workers, grad clip) of the small recipe."""
    from vilem.train.config import load_config

    cfg = load_config("small-vilem")
    return cfg.optim.batch_size, cfg.num_workers, cfg.optim.clip_grad
