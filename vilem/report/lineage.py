"""How the models of a report relate: each model's setting (zero-shot, fine-tuned, chance) and
which zero-shot model a fine-tuned one started from, so figures can pair the two versions of one
method and colour them as one family.

The link comes from what the bench recorded: a fine-tuned model's ``request.init`` is the
training-config digest of the model it started from (``request.config``). Results without
requests (schema v1) fall back to the names: ``itc-video`` is a fine-tune of ``itc`` when
``itc`` is a model that is not itself fine-tuned, and ``vilem-ft`` of ``vilem-zs``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vilem.results import Result

ZERO_SHOT, FINE_TUNED, CHANCE = "zero-shot", "fine-tuned", "chance"
_ZERO_SHOT = re.compile(r"zero[-_ ]?shot|(^|[-_ ])zs($|[-_ ])", re.I)
_FINE_TUNED = re.compile(r"fine[-_ ]?tun(ed|e|ing)|(^|[-_ ])ft($|[-_ ])", re.I)
_SEPARATORS = "-_. "


def setting_of(record: Result) -> str | None:
    """``zero-shot`` / ``fine-tuned`` (or any other label) from ``model.setting``, else from the
    model's name; None when neither says."""
    setting = record.model.setting
    if isinstance(setting, str) and setting:
        return setting
    name = record.model.name
    if _ZERO_SHOT.search(name):
        return ZERO_SHOT
    if _FINE_TUNED.search(name):
        return FINE_TUNED
    return None


def base_model_name(record: Result) -> str:
    """The model's name without a zero-shot / fine-tuned marker, to pair the two settings."""
    name = record.model.name
    stripped = _FINE_TUNED.sub(" ", _ZERO_SHOT.sub(" ", name)).strip(" -_")
    return stripped or name


def is_chance(record: Result) -> bool:
    """A model that stands for chance (``setting: chance``, e.g. the random model)."""
    return setting_of(record) == CHANCE


def chance_models(records: Iterable[Result]) -> set[str]:
    return {r.model.name for r in records if is_chance(r)}


def _first_per_model(records: Iterable[Result]) -> dict[str, Result]:
    out: dict[str, Result] = {}
    for r in sorted(records, key=lambda r: (r.model.name, r.model.train_seed or 0)):
        out.setdefault(r.model.name, r)
    return out


def fine_tune_parents(records: Iterable[Result]) -> dict[str, str]:
    """``{fine-tuned model: the model it started from}`` for every fine-tuned model whose start
    is among ``records`` (see the module docstring for how the link is found)."""
    models = _first_per_model(records)
    settings = {name: setting_of(r) for name, r in models.items()}
    digests: dict[str, str] = {}
    for name, r in models.items():
        config = (r.model.request or {}).get("config")
        if isinstance(config, str):
            digests.setdefault(config, name)
    out: dict[str, str] = {}
    for name, r in models.items():
        if settings[name] != FINE_TUNED:
            continue
        starts = [n for n, s in settings.items() if n != name and s not in (FINE_TUNED, CHANCE)]
        init = (r.model.request or {}).get("init")
        if isinstance(init, str) and init in digests and digests[init] != name:
            out[name] = digests[init]
            continue
        same_base = [n for n in starts if base_model_name(models[n]) == base_model_name(r)]
        prefixes = [n for n in starts if name[len(n) : len(n) + 1] in tuple(_SEPARATORS)
                    and name.startswith(n)]  # fmt: skip
        found = same_base or sorted(prefixes, key=len, reverse=True)
        if found:
            out[name] = found[0]
    return out
