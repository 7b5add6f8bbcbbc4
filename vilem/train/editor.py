"""The negative editor a training run uses, built from the training config: the frozen MLM at
``mlm_path`` (ViLEM) or a lexicon of word classes (the ablations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vilem.errors import ConfigError
from vilem.model.negatives import Editor, build_editor
from vilem.train.config import TrainConfig


def check_mlm(cfg: TrainConfig) -> None:
    """Say how to get the negatives' masked LM when the recipe points at a missing folder."""
    neg, path = cfg.model.negatives, cfg.mlm_path
    if cfg.model.itc_only or neg.kind != "mlm" or not path or Path(path).is_dir():
        return
    raise ConfigError(
        f"mlm_path {path!r} does not exist; train the small masked LM for the synthetic "
        f"captions with `vilem train-lm --dataset synthetic --out {path}`, or point it at a "
        "local fill-mask folder with the text vocabulary"
    )


def make_editor(cfg: TrainConfig, tokenizer: Any) -> Editor | None:
    """The editor ``cfg`` asks for; None for an ITC-only model (it edits nothing)."""
    if cfg.model.itc_only:
        return None
    neg, groups = cfg.model.negatives, None
    if neg.kind == "lexicon" and neg.lexicon == "synthetic" and not neg.lexicon_path:
        # exactly the synthetic grammar's word classes: every edit stays grammatical
        from vilem.train.plausibility import synthetic_lexicon

        groups = synthetic_lexicon()
    return build_editor(neg, tokenizer, mlm_path=cfg.mlm_path, groups=groups)
