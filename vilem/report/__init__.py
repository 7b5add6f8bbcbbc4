"""Leaderboards, plots and reports built from result files (see vilem.results)."""

from typing import Any

from vilem.report.render import FORMATS
from vilem.report.tables import leaderboard
from vilem.results import Problem, collect

__all__ = ["FORMATS", "Problem", "build_report", "collect", "leaderboard"]


def __getattr__(name: str) -> Any:
    # build_report pulls in matplotlib; importing it lazily keeps `vilem leaderboard` light
    if name == "build_report":
        from vilem.report.report import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
