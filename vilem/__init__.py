"""vilem: train and benchmark dual-encoder image-text and video-text retrieval models.

The public API, imported on first use (``import vilem`` stays cheap):

- ``vilem.evaluate(model, dataset, task="retrieval", **options)``: one ``Result``; model and
  dataset are objects or spec strings (``"random"``, ``"vilem:DIR"``; ``"synthetic"``);
- ``vilem.load_model(spec)``: a ``RetrievalModel`` from ``random``, ``hf-clip:DIR``, ``vilem:DIR``,
  ``py:module:attr``, ...; ``vilem.load_split(dataset, split, root=None, **options)``: a split;
- ``vilem.collect(*results_dirs)`` -> (results, skipped files), ``vilem.leaderboard(results)``
  (Markdown/CSV/LaTeX/HTML), ``vilem.leaderboard_rows(results)`` / ``vilem.leaderboard_frame``
  (plain rows / a pandas DataFrame);
- ``vilem.Result``, ``vilem.RetrievalModel``, ``vilem.EvalOptions``, ``vilem.TASKS``.
"""

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "vilem.models:load_model",
    "load_split": "vilem.data:load_split",
    "RetrievalModel": "vilem.models.base:RetrievalModel",
    "evaluate": "vilem.api:evaluate",
    "EvalOptions": "vilem.eval.engine:EvalOptions",
    "TASKS": "vilem.eval.tasks:TASKS",
    "Result": "vilem.results:Result",
    "collect": "vilem.results:collect",
    "leaderboard": "vilem.report.tables:leaderboard",
    "leaderboard_rows": "vilem.report.tables:rows",
    "leaderboard_frame": "vilem.report.tables:frame",
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
