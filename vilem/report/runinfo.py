"""The report's configuration block: how each model was made (bench spec or recipe with its
overrides, the model it started from, its training seeds), the evaluation protocol of each
dataset (``Result.protocol``; "not recorded" for schema-v1 files), and the software that
produced the numbers (``Result.versions``, ``Result.git``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vilem.report.compare import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from vilem.report.document import Doc
from vilem.report.lineage import setting_of
from vilem.results import Result

NOT_RECORDED = "not recorded (schema v1)"


def _distinct(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v is not None and v != ""))


def _joined(values: Iterable[Any], empty: str = "—") -> str:
    shown = [str(v) for v in _distinct(values)]
    return " / ".join(shown) if shown else empty


def _code(values: Iterable[Any]) -> str:
    return ", ".join(f"`{v}`" for v in values) or "—"


def _built_from(r: Result) -> str:
    request = r.model.request or {}
    if isinstance(request.get("train"), str):
        return f"recipe `{request['train']}`"
    if isinstance(request.get("spec"), str):
        return f"spec `{request['spec']}`"
    return f"spec `{r.model.spec}`" if r.model.spec else "—"


def model_rows(records: Sequence[Result], parents: Mapping[str, str]) -> list[list[str]]:
    """One row per model: setting, what it was built from, overrides, start, seeds, fingerprint."""
    by_model: dict[str, list[Result]] = {}
    for r in records:
        by_model.setdefault(r.model.name, []).append(r)
    rows = []
    for name in sorted(by_model):
        runs = by_model[name]
        first = runs[0]
        overrides = _distinct(
            tuple(o)
            for r in runs
            if isinstance(o := (r.model.request or {}).get("overrides"), list)
        )
        seeds = sorted({s for r in runs if isinstance(s := r.model.train_seed, int)})
        prints = _distinct(r.model.fingerprint for r in runs)
        rows.append([
            name,
            setting_of(first) or "—",
            _joined(_built_from(r) for r in runs),
            " / ".join(_code(o) for o in overrides) if overrides else "—",
            parents.get(name, "—"),
            ", ".join(map(str, seeds)) or "—",
            f"`{prints[0]}`" if len(prints) == 1 else f"{len(prints)} (one per seed)" if prints
            else "—",
        ])  # fmt: skip
    return rows


_PROTOCOL_ROWS = (
    ("frames per video", lambda p: p.frames),
    ("frame sampling", lambda p: p.sampling),
    ("recall@K", lambda p: ", ".join(map(str, p.recall_ks))),
    ("bootstrap resamples", lambda p: p.bootstrap),
    ("evaluation seed", lambda p: p.seed),
    ("precision", lambda p: p.precision),
    ("scale", lambda p: "--quick (toy)" if p.quick else f"--limit {p.limit} (toy)"
     if p.limit is not None else "full"),
    ("adapter options", lambda p: ", ".join(f"{k}={v}" for k, v in sorted(p.options.items()))),
    ("device", lambda p: p.device),
    ("text length", lambda p: p.text_max_len),
)  # fmt: skip


def protocol_grid(records: Sequence[Result]) -> tuple[list[str], list[list[str]]]:
    """Rows = evaluation settings, columns = the datasets (label/split); a setting that differs
    between a dataset's results shows every value."""
    by_data: dict[str, list[Result]] = {}
    for r in sorted(records, key=lambda r: (r.dataset.label, r.dataset.split)):
        by_data.setdefault(f"{r.dataset.label}/{r.dataset.split}", []).append(r)
    headers = ["setting", *by_data]
    rows: list[list[str]] = [
        ["adapter · modality", *(_joined(f"{r.dataset.name} · {r.dataset.modality or '?'}"
                                         for r in rs) for rs in by_data.values())],
        ["items · texts", *(_joined(f"{r.dataset.counts.get('items', '?')} · "
                                    f"{r.dataset.counts.get('texts', '?')}"
                                    for r in rs if r.ok) for rs in by_data.values())],
        ["revision", *(_joined(f"`{r.dataset.revision}`" for r in rs if r.dataset.revision)
                       for rs in by_data.values())],
        ["tasks", *(_joined(sorted({r.task for r in rs})) for rs in by_data.values())],
    ]  # fmt: skip
    for label, read in _PROTOCOL_ROWS:
        cells = []
        for rs in by_data.values():
            protos = [r.protocol for r in rs if r.protocol is not None]
            missing = len(protos) < len(rs)
            values = [read(p) for p in protos] + ([NOT_RECORDED] if missing else [])
            cells.append(_joined(values))
        if any(c != "—" for c in cells):
            rows.append([label, *cells])
    return headers, rows


def _machine(record: Any) -> str | None:
    """One machine record as a phrase: "AMD EPYC, AVX512, 2 threads" (+ "following the load")."""
    if not isinstance(record, dict):
        return None
    threads = record.get("threads")
    parts = [str(record.get("cpu", "CPU not recorded")), str(record.get("isa", "ISA not recorded"))]
    if threads is not None:
        moved = record.get("follows_load") and record.get("changes")
        parts.append(f"{threads} threads" + (f" (following the load, fewest {record.get('fewest')})"
                                             if moved else ""))  # fmt: skip
    return ", ".join(parts)


def software_lines(records: Sequence[Result]) -> list[str]:
    """Package versions, the machines, source commits, schema versions and when the results were
    written."""
    packages: dict[str, list[str]] = {}
    for r in records:
        for name, version in (r.versions or {}).items():
            packages.setdefault(name, []).append(str(version))
    lines = []
    if packages:
        lines.append("Packages: " + ", ".join(f"{n} {_joined(v)}" for n, v in packages.items()))
    machines = sorted({_machine(r.extra.get("machine")) for r in records} - {None})
    if machines:
        lines.append("Machine: " + "; ".join(machines))
    commits: dict[str, list[bool]] = {}
    for r in records:
        if (git := r.git or {}).get("commit"):
            commits.setdefault(str(git["commit"]), []).append(bool(git.get("dirty")))
    if commits:
        shown = []
        for commit, dirty in commits.items():
            note = f"{len(dirty)} result(s)" if len(commits) > 1 else ""
            if any(dirty):
                note += (", " if note else "") + f"{sum(dirty)} with uncommitted changes"
            shown.append(f"`{commit[:10]}`" + (f" ({note})" if note else ""))
        lines.append("Source: git commit " + ", ".join(shown))
    else:
        lines.append("Source: git commit not recorded")
    schemas = {v: sum(r.schema_version == v for r in records) for v in
               sorted({r.schema_version for r in records})}  # fmt: skip
    written = sorted(r.created for r in records if r.created)
    when = f"; written {written[0]} to {written[-1]}" if written else ""
    lines.append(
        "Result files: " + ", ".join(f"schema v{v} ({n})" for v, n in schemas.items()) + when
    )
    lines.append(
        f"Deltas: paired bootstrap, {BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}."
    )
    return lines


def configuration_section(
    doc: Doc, records: Sequence[Result], parents: Mapping[str, str], colours: Mapping[str, str]
) -> None:
    doc.heading(2, "Configuration")
    doc.heading(3, "Models")
    rows = model_rows(records, parents)
    headers = ["model", "setting", "built from", "overrides", "starts from", "training seeds",
               "fingerprint"]  # fmt: skip
    doc.grid(headers, rows, cls="config", swatches=[colours.get(r[0]) for r in rows])
    doc.heading(3, "Evaluation protocol")
    headers, rows = protocol_grid(records)
    doc.grid(headers, rows, cls="config")
    doc.heading(3, "Software")
    doc.items(software_lines(records))
