"""The task registry: what one result cell can measure, and everything the rest of vilem needs to
know about it. A task owns its run function, its main metric (what leaderboards rank by and
findings compare), its default columns, its title and its paired-delta recipe.

Adding a task is one module with a ``run`` function plus one ``register_task`` call. Importing this
module is cheap (no torch): run functions are named as ``"module:function"`` and imported on use.

``run(task_run)`` gets a ``vilem.eval.engine.TaskRun`` (the model, the validated split, its item
embeddings already encoded by the engine, the options and the cache) and returns a ``TaskOutput``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vilem.errors import ConfigError
from vilem.metrics.info import DIRECTIONS, RECALL_KS
from vilem.metrics.paired import Paired, probe_inputs, retrieval_inputs
from vilem.registry import closest, import_attr

if TYPE_CHECKING:
    from vilem.results import Protocol


@dataclass
class TaskOutput:
    scores: dict[str, Any]  # metric -> value, plus "intervals" when bootstrapped
    per_query: dict[str, list] | None = None  # what paired deltas resample
    extra: dict[str, Any] = field(default_factory=dict)  # stored under the result's "extra"
    examples: list[Any] = field(default_factory=list)  # vilem.results.ProofreadExample


@dataclass(frozen=True)
class Task:
    name: str
    title: str  # section title in reports
    run: str  # "module:function", see the module docstring
    main_metric: str
    columns: tuple[str, ...] = ()  # leaderboard columns in order; () = every metric present
    # paired-delta recipe: (metric, per_query A, per_query B, their protocol) -> Paired; None =
    # no paired deltas
    paired: Callable[[str, dict, dict, Protocol | None], Paired] | None = None
    compared: bool = False  # whether findings compare models on it
    needs_heads: bool = False  # runs only on ViLEM models with error-detection heads

    def runner(self) -> Callable[..., TaskOutput]:
        return import_attr(self.run)  # type: ignore[return-value]


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task ``name``; ConfigError with a did-you-mean otherwise."""
    if name not in TASKS:
        raise ConfigError(
            f"unknown task {name!r}{closest(name, list(TASKS))}; tasks: {', '.join(TASKS)}"
        )
    return TASKS[name]


def task_names() -> list[str]:
    return list(TASKS)


def main_metric(task: str, available: list[str] | tuple[str, ...] = ()) -> str | None:
    """The metric ``task`` is ranked by; for a task vilem does not know, the first available."""
    if task in TASKS:
        return TASKS[task].main_metric
    return available[0] if available else None


register_task(
    Task(
        name="retrieval",
        title="Retrieval",
        run="vilem.eval.retrieval:run",
        main_metric="rsum",
        columns=(
            *(f"{d}_R@{k}" for d in DIRECTIONS for k in RECALL_KS),
            "rsum",
            *(f"{d}_{s}" for d in DIRECTIONS for s in ("medr", "meanr")),
        ),
        paired=retrieval_inputs,
        compared=True,
    )
)
register_task(
    Task(
        name="probe",
        title="Probes",
        run="vilem.eval.probes:run",
        main_metric="macro",
        paired=probe_inputs,
        compared=True,
    )
)
register_task(
    Task(
        name="proofread",
        title="Proofreading",
        run="vilem.eval.proofread:run",
        main_metric="ed_f1",
        columns=(
            "ed_precision", "ed_recall", "ed_f1", "ed_ap", "ec_accuracy",
            "ed_flag_colour_binding", "ed_flag_colour_absent",
        ),  # fmt: skip
        needs_heads=True,
    )
)
