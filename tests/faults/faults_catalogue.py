"""The fault catalogue as one list, grouped by class, and as the Markdown tables of
docs/reliability.md: ``python tests/faults/faults_catalogue.py`` prints them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

GROUPS = [  # (test module, its test function, the class as the docs title it)
    ("test_faults_annotations", "test_annotation_fault", "Annotations"),
    ("test_faults_media", "test_media_fault", "Media"),
    ("test_faults_flags", "test_flag_fault", "Flags"),
    ("test_faults_outputs", "test_output_fault", "Output locations"),
    ("test_faults_configs", "test_config_fault", "Configs and specs"),
    ("test_faults_checkpoints", "test_checkpoint_fault", "Checkpoints"),
    ("test_faults_kill", "test_kill_during_write", "kill -9 during a write"),
    ("test_faults_concurrency", "test_concurrent_runs", "Concurrent runs"),
    ("test_faults_disk", "test_full_disk", "A full disk"),
]


def groups():
    """(title, module, function, cases) per class."""
    for module, function, title in GROUPS:
        yield title, module, function, importlib.import_module(module).CASES


def all_ids() -> list[str]:
    return [c.id for _, _, _, cases in groups() for c in cases]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    out = []
    for title, module, function, cases in groups():
        out += [f"### {title} ({len(cases)})", "",
                "| input or fault | what vilem does | test id |", "|---|---|---|"]  # fmt: skip
        for c in cases:
            does = c.does if "exit" in c.does else f"{c.does} (exit {c.code})"
            out.append(f"| {_cell(c.fault)} | {_cell(does)} | `{c.id}` |")
        out += ["", f"`tests/faults/{module}.py::{function}[ID]`", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
    print(f"{len(all_ids())} cases", file=sys.stderr)
