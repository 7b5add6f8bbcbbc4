"""Shared fixtures for the training tests: a small synthetic dataset, a tiny masked LM and a
tiny model/training config (random init, seconds per run on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from vilem.model.towers import default_text_folder


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    from vilem.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(
        root,
        SyntheticConfig(
            images_train=16,
            images_val=8,
            images_test=4,
            videos_train=4,
            videos_val=2,
            videos_test=2,
            frames=6,
        ),
        seed=0,
    )
    return root


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory) -> str:
    """A random-init fill-mask folder with the MiniLM vocabulary (the editor only needs logits)."""
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mlm")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    BertForMaskedLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(default_text_folder()).save_pretrained(folder)
    return str(folder)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # tiny models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP's
    # spinning threads made these runs ~6x slower; results are compared at one thread count
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
