"""The Python API in one call: ``vilem.evaluate(model, dataset, task, **options) -> Result``."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from vilem.data.base import Split
from vilem.errors import ConfigError
from vilem.eval.engine import EvalOptions
from vilem.models.base import RetrievalModel
from vilem.registry import closest
from vilem.results import ModelRecord, Result


def evaluate(
    model: RetrievalModel | str,
    dataset: Split | str,
    task: str = "retrieval",
    *,
    split: str = "test",
    root: str | Path | None = None,
    name: str | None = None,
    device: str = "cpu",
    data_options: dict[str, Any] | None = None,
    save_embeddings: str | Path | None = None,
    **options: Any,
) -> Result:
    """Evaluate a model on a dataset split, as ``vilem eval`` does, and return the ``Result``.

    Args:
        model: a ``RetrievalModel``, or a model spec (``random``, ``hf-clip:DIR``, ``vilem:DIR``,
            ``py:package.module:attr``, ...; see ``vilem models``).
        dataset: a loaded ``Split``, or a dataset name (see ``vilem datasets``), loaded with
            ``split``, ``root`` and ``data_options``.
        task: ``retrieval``, ``probe`` or ``proofread`` (see ``vilem.TASKS``).
        name: the model's name in the result (default: its spec, or its config's ``name``).
        device: where a model given as a spec is loaded.
        save_embeddings: a folder to write the embeddings into (retrieval only).
        **options: any ``vilem.EvalOptions`` field: ``frames``, ``sampling``, ``bootstrap``,
            ``seed``, ``recall_ks``, ``precision``, ``limit``, ``batch_size``, ``num_workers``,
            ``cache_dir`` (default None: no embedding cache), ``quiet``, ``rerank``,
            ``i2t_ranking`` (``"grouped"``: CLIP4Clip's multi-caption item->text), ...

    Returns:
        The result: ``result.metrics``, ``result.intervals``, ``result.protocol``;
        ``vilem.results.write_result(path, result)`` writes it as ``vilem eval --out`` does.

    Example::

        import vilem
        result = vilem.evaluate("random", "synthetic", "retrieval", bootstrap=0, limit=100)
        print(result.metrics["rsum"])
    """
    from vilem.data import load_split
    from vilem.eval.engine import evaluate as run
    from vilem.models import load_model

    known = [f.name for f in fields(EvalOptions)]
    for key in options:
        if key not in known:
            raise ConfigError(
                f"unknown evaluation option {key!r}{closest(key, known)}; "
                f"options: {', '.join(known)}"
            )
    options.setdefault("quiet", True)
    options.setdefault("num_workers", 0)
    opts = EvalOptions(**options)
    spec = model if isinstance(model, str) else None
    if isinstance(model, str):
        model = load_model(model, device=device)
    elif not isinstance(model, RetrievalModel):
        raise ConfigError(
            f"model must be a vilem RetrievalModel or a model spec string, "
            f"got {type(model).__name__}"
        )
    given = dict(data_options or {})
    if isinstance(dataset, str):
        dataset = load_split(dataset, split, root=root, **dict(given))
    elif not isinstance(dataset, Split):
        raise ConfigError(
            f"dataset must be a vilem Split or a dataset name, got {type(dataset).__name__}"
        )
    record = ModelRecord(name=name or spec or str(model.config().get("name", "model")), spec=spec)
    return run(
        model, dataset, task, opts, record=record, data_options=given,
        save_embeddings_dir=None if save_embeddings is None else Path(save_embeddings),
    )  # fmt: skip
