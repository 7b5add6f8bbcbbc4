"""The report's training section: per trained model its validation trend, the negatives it
trained on (``negatives.json``) and its training curves with the ED/EC ramp marked.

The ramp (``proxy_ramp_steps``, ``model.proxy_weight``) is read from what the run left: the
training state beside its log (``checkpoint/train_state.json``), the checkpoint the result was
evaluated from (``vilem:DIR``), or the bench request's recipe and overrides (schema v2). Older
configs kept ``proxy_ramp_steps`` in the model block; both places are read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vilem.errors import DataError, VilemError
from vilem.io import read_json
from vilem.report import plots
from vilem.report.colours import colour_of
from vilem.report.document import Doc, FigureFiles
from vilem.report.plot_training import Ramp
from vilem.results import Result

Draw = Callable[[str, str, Callable[[list[Path]], Path]], FigureFiles | None]


def resolve(rel: str, bases: list[Path]) -> Path | None:
    p = Path(rel)
    if p.is_absolute():
        return p if p.is_file() else None
    for base in bases:
        if (base / p).is_file():
            return base / p
    return None


def bases(record: Result, results_dir: Path) -> list[Path]:
    """Folders a relative path of ``record`` may be relative to: the result's folder and its
    parents up to the results folder's parent, then the working folder."""
    here = Path(record.path or results_dir).parent
    chain = [here, *here.parents]
    stop = results_dir.resolve().parent
    found = [d for d in chain if stop == d.resolve() or stop in d.resolve().parents]
    return [*found, results_dir, results_dir.parent, Path.cwd()]


def _ramp_in(config: Any) -> Ramp | None:
    if not isinstance(config, dict):
        return None
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    steps = config.get("proxy_ramp_steps", model.get("proxy_ramp_steps"))
    weight = model.get("proxy_weight", 1.0)
    if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0:
        return Ramp(steps, float(weight) if isinstance(weight, (int, float)) else 1.0)
    return None


def _ramp_from_request(request: dict[str, Any]) -> Ramp | None:
    if not isinstance(request.get("train"), str):
        return None
    from vilem.train.config import load_config

    try:
        cfg = load_config(request["train"], [str(o) for o in request.get("overrides") or []])
    except (VilemError, OSError):
        return None
    return Ramp(cfg.proxy_ramp_steps, float(cfg.model.proxy_weight))


def ramp_of(record: Result, log: Path | None) -> Ramp | None:
    """The run's ED/EC ramp (see the module docstring); None when nothing records it."""
    files = []
    if log is not None:
        files += [(log.parent / "checkpoint" / "train_state.json", "config"),
                  (log.parent / "model" / "config.json", None)]  # fmt: skip
    spec = record.model.spec or ""
    if spec.startswith("vilem:"):
        ckpt = Path(spec.removeprefix("vilem:"))
        files += [(ckpt.parent / "checkpoint" / "train_state.json", "config"),
                  (ckpt / "config.json", None)]  # fmt: skip
    for path, key in files:
        if not path.is_file():
            continue
        try:
            data = read_json(path, "training state")
        except DataError:
            continue
        ramp = _ramp_in(data.get(key) if key and isinstance(data, dict) else data)
        if ramp is not None:
            return ramp
    return _ramp_from_request(record.model.request or {})


def val_trend(name: str, log: Path | None) -> str | None:
    """One line: a model's validation RSUM at each validation and the gain of the last interval
    (how far from converged the run stopped); None without validation records."""
    if log is None:
        return None
    try:
        rows = plots.read_train_log(log)
    except DataError:
        return None
    points = [
        (r["step"], r["val/rsum"]) for r in rows if isinstance(r.get("val/rsum"), (int, float))
    ]
    if not points:
        return None
    trend = " → ".join(f"{v:.1f} ({s})" for s, v in points)
    line = f"{name}: validation RSUM (step) {trend}"
    if len(points) > 1:
        (s0, v0), (s1, v1) = points[-2:]
        rel = f" ({(v1 - v0) / v0:+.1%})" if v0 else ""
        line += f"; last {s1 - s0} steps: {v1 - v0:+.1f}{rel}"
    return line


def negatives_line(name: str, log: Path | None) -> str | None:
    """One line from the ``negatives.json`` beside a training log; None where there is none."""
    from vilem.train.negatives_report import REPORT_FILE, summary_line

    if log is None or not (log.parent / REPORT_FILE).is_file():
        return None
    try:
        report = read_json(log.parent / REPORT_FILE, "negatives report")
        mix = ", ".join(f"{k} {v}" for k, v in report["mix_pct"].items())
        return f"{name}: {summary_line(report)}; edit mix (% of edits) {mix}"
    except (DataError, KeyError, TypeError, AttributeError):
        return None


def _logs(
    records: list[Result], results_dir: Path
) -> dict[str, tuple[str, Path | None, Result, int]]:
    """Per trained model: its log (as recorded, resolved), the run drawn (the lowest training
    seed) and how many seeds it has."""
    out: dict[str, tuple[str, Path | None, Result, int]] = {}
    seeds: dict[str, set] = {}
    for r in sorted(records, key=lambda r: (r.model.name, r.model.train_seed or 0, r.task)):
        rel = r.model.train_log
        if not isinstance(rel, str) or not rel:
            continue
        seeds.setdefault(r.model.name, set()).add(r.model.train_seed)
        if r.model.name not in out:
            out[r.model.name] = (rel, resolve(rel, bases(r, results_dir)), r, 0)
    return {n: (rel, p, r, len(seeds[n])) for n, (rel, p, r, _) in out.items()}


def training_section(
    doc: Doc, draw: Draw, records: list[Result], results_dir: Path, colours: Mapping[str, str],
    failed: list[str],
) -> None:  # fmt: skip
    logs = _logs(records, results_dir)
    if not logs:
        return
    doc.heading(2, "Training curves")
    doc.items([line for name, (_, path, _, _) in sorted(logs.items())
               if (line := val_trend(name, path))])  # fmt: skip
    negatives = [line for name, (_, path, _, _) in sorted(logs.items())
                 if (line := negatives_line(name, path))]  # fmt: skip
    if negatives:
        doc.para(
            "Negatives each ViLEM run trained on, measured against the synthetic caption grammar "
            "before training (only grammatical edits need the image; a text-only detector's AP "
            "near its prior means the edits cannot be found from the text alone):"
        )
        doc.items(negatives)
    missing = [rel for rel, path, _, _ in logs.values() if path is None]
    if missing:
        doc.para(
            f"{len(missing)} training log(s) not found next to the results (e.g. `{missing[0]}`, "
            "relative to the bench folder): copy the bench's `models/*/log.jsonl` beside the "
            "results folder to draw their curves."
        )
    for name, (rel, path, record, n_seeds) in sorted(logs.items()):
        if path is None:
            failed.append(f"training curves of {name}: log {rel} not found")
            continue
        ramp = ramp_of(record, path) if _has_proxy_losses(path) else None
        fig = draw(
            f"train_{name}",
            f"training curves of {name}",
            lambda p, log=path, n=name, ramp=ramp: plots.training_curves(
                log, p, f"training — {n}", ramp=ramp, colour=colour_of(colours, n)
            ),
        )
        if fig:
            doc.figure(fig, _caption(name, record, n_seeds, ramp))


def _has_proxy_losses(log: Path) -> bool:
    try:
        rows = plots.read_train_log(log)
    except DataError:
        return False
    return any(k.startswith(("ed_", "ec_", "loss_ed", "loss_ec")) for r in rows for k in r)


def _caption(name: str, record: Result, n_seeds: int, ramp: Ramp | None) -> str:
    seed = record.model.train_seed
    which = f" (training seed {seed} of {n_seeds})" if n_seeds > 1 and seed is not None else ""
    text = (
        f"Training of {name}{which}: losses against the optimizer step (left), validation "
        "recall@K, ranks and RSUM on their own axes."
    )
    if ramp is not None and ramp.steps > 0:
        text += (
            f" The ED/EC weight ramps linearly from 0 to {ramp.weight:g} over the first "
            f"{ramp.steps} steps (shaded; dotted: the weight): the total loss is ITC plus the "
            "weighted ED/EC parts, so it can rise while every part falls."
        )
    elif ramp is not None:
        text += f" ED/EC losses at full weight ({ramp.weight:g}) from the first step."
    return text
