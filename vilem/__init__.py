"""vilem: train and benchmark dual-encoder image-text and video-text retrieval models.

The public API, imported on first use (``import vilem`` stays cheap):

- ``vilem.load_model(spec)``: a ``RetrievalModel`` from ``random``, ``hf-clip:DIR``, ``vilem:DIR``;
- ``vilem.load_split(dataset, split, root=None, **options)``: a dataset split;
- ``vilem.evaluate(model, model_info, split, task, opts)``: one result record;
- ``vilem.collect(results_dir)`` and ``vilem.leaderboard(records, task)``: tables from results;
- ``vilem.RetrievalModel``, ``vilem.EvalOptions``, ``vilem.TASKS`` (the task registry).
"""

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "vilem.models:load_model",
    "load_split": "vilem.data:load_split",
    "RetrievalModel": "vilem.models.base:RetrievalModel",
    "evaluate": "vilem.eval.engine:evaluate",
    "EvalOptions": "vilem.eval.engine:EvalOptions",
    "TASKS": "vilem.eval.tasks:TASKS",
    "collect": "vilem.report:collect",
    "leaderboard": "vilem.report:leaderboard",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vilem' has no attribute {name!r}")
    import importlib

    module, _, attr = _EXPORTS[name].partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
