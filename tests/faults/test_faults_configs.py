"""Bad training recipes and bench specs: malformed or oversized YAML, alias bombs, unknown keys,
bad override values, unknown recipes, ``base:`` cycles. Each is one line naming the file or key,
before any work: no run folder, no results."""

from __future__ import annotations

import pytest
import yaml
from faults_build import BOM, write
from faults_cases import Case, check, params
from faults_runner import valid_json, visible_results

# "billion laughs": 9 levels of 10 aliases each, 10^9 strings once expanded
ALIAS_BOMB = (
    "a: &a ["
    + ", ".join(['"lol"'] * 10)
    + "]\n"
    + "".join(
        f"{a}: &{a} [{', '.join(['*' + p] * 10)}]\n"
        for p, a in zip("abcdefgh", "bcdefghi", strict=True)
    )
)
HUGE = "# padding\n" * 110_000 + "name: huge\n"  # 1.1 MB of comments


def _untouched(*names):
    def then(ctx, outcome):
        for name in names:
            assert not (ctx.dir / name).exists(), f"{name} was created"
        assert outcome.seconds < 10, f"took {outcome.seconds:.1f} s"

    return then


def train(text: str | bytes | None = None, *overrides, config=None, patch=None):
    """``vilem train`` on a recipe: the tiny one ``patch``ed, or ``text`` as the file."""

    def setup(ctx):
        path = ctx.dir / "recipe.yaml"
        if text is not None:
            write(path, text)
        else:
            recipe = yaml.safe_load(ctx.base.recipe.read_text())
            write(path, yaml.safe_dump(patch(recipe) if patch else recipe))
        return ["train", "--config", config or path, "--out", ctx.dir / "newrun", "--quiet",
                *overrides]  # fmt: skip

    return setup


def bench(text=None, raw: bytes | None = None, bom=False):
    def setup(ctx):
        path = ctx.dir / "spec.yaml"
        if raw is not None or text is not None:
            write(path, raw if raw is not None else text)
        else:
            ctx.bench_spec()
        if bom:
            path.write_bytes(BOM + path.read_bytes())
        return ["bench", path, "--quiet"]

    return setup


def _cycle(ctx):
    write(ctx.dir / "a.yaml", "base: b.yaml\nseed: 1\n")
    write(ctx.dir / "b.yaml", "base: a.yaml\nseed: 2\n")
    return ["train", "--config", ctx.dir / "a.yaml", "--out", ctx.dir / "newrun", "--quiet"]


def _bench_done(ctx, outcome):
    results = visible_results(ctx.dir / "bench" / "results")
    assert [p.name for p in results] == ["s__retrieval.json"]
    assert valid_json(results[0])["status"] == "ok"


def _rename(old, new):
    def patch(recipe):
        recipe[new] = recipe.pop(old)
        return recipe

    return patch


def _vision_typo(recipe):
    recipe["model"]["vision"]["widht"] = recipe["model"]["vision"].pop("width")
    return recipe


NO_RUN = _untouched("newrun")
NO_BENCH = _untouched("bench")
CASES = [
    Case("cfg-train-malformed-yaml", "a recipe with an unclosed bracket",
         "refuses: not valid YAML, names the file", train("model: {vision: [1, 2\nseed: 0\n"),
         words=("recipe.yaml", "yaml"), then=NO_RUN),
    Case("cfg-train-alias-bomb", "a recipe that is a YAML alias bomb (10^9 nodes)",
         "refuses at once (< 10 s), without expanding it", train(ALIAS_BOMB),
         words=("recipe.yaml", ("alias", "nodes")), then=NO_RUN),
    Case("cfg-train-over-1mib", "a 1.1 MB recipe", "refuses: over the 1 MiB limit",
         train(HUGE), words=("recipe.yaml", ("limit", "bytes", "mib"))),
    Case("cfg-train-not-mapping", "a recipe that is a YAML list", "refuses: must hold a mapping",
         train("- seed: 1\n"), words=("recipe.yaml", "mapping"), then=NO_RUN),
    Case("cfg-train-unknown-key", "top-level key 'modle'", "refuses: did you mean 'model'",
         train(patch=_rename("model", "modle")), words=("modle", "did you mean 'model'"),
         then=NO_RUN),
    Case("cfg-train-unknown-nested-key", "key model.vision.widht",
         "refuses: names the full key, did you mean 'width'", train(patch=_vision_typo),
         words=("model.vision.widht", "width"), then=NO_RUN),
    Case("cfg-override-bad-value", "override model.temp_init=fast",
         "refuses: names the key and the type", train(None, "model.temp_init=fast"),
         words=("model.temp_init", "fast"), then=NO_RUN),
    Case("cfg-override-unknown-key", "override optim.lrr=1e-3", "refuses: did you mean 'lr'",
         train(None, "optim.lrr=1e-3"), words=("optim.lrr", "did you mean 'lr'"), then=NO_RUN),
    Case("cfg-override-out-of-range", "override optim.steps=0", "refuses: must be >= 1",
         train(None, "optim.steps=0"), words=("optim.steps", ">= 1"), then=NO_RUN),
    Case("cfg-override-into-value", "override optim.lr.peak=1", "refuses: optim.lr is a value",
         train(None, "optim.lr.peak=1"), words=("optim.lr", "value"), then=NO_RUN),
    Case("cfg-unknown-recipe", "--config small-vilme", "refuses: did you mean 'small-vilem'",
         train(config="small-vilme"), words=("small-vilme", "did you mean 'small-vilem'"),
         then=NO_RUN),
    Case("cfg-base-cycle", "a.yaml has base b.yaml, b.yaml has base a.yaml",
         "refuses: names the cycle", _cycle, words=("cycle", "a.yaml", "b.yaml"), then=NO_RUN),
    Case("cfg-base-unknown", "base: no-such-recipe", "refuses: names the base",
         train("base: no-such-recipe\nseed: 1\n"), words=("no-such-recipe",), then=NO_RUN),
    Case("cfg-bench-malformed-yaml", "a spec with a tab-indented mapping",
         "refuses: not valid YAML", bench("name: t\nmodels:\n\t r: {spec: random}\n"),
         words=("spec.yaml", "yaml"), then=NO_BENCH),
    Case("cfg-bench-alias-bomb", "a spec that is a YAML alias bomb", "refuses at once (< 10 s)",
         bench(ALIAS_BOMB), words=("spec.yaml", ("alias", "nodes")), then=NO_BENCH),
    Case("cfg-bench-over-1mib", "a 1.1 MB spec", "refuses: over the 1 MiB limit", bench(HUGE),
         words=("spec.yaml", ("limit", "bytes", "mib")), then=NO_BENCH),
    Case("cfg-bench-unknown-key", "spec key 'modles'", "refuses: did you mean 'models'",
         bench("name: t\nmodles: {r: {spec: random}}\n"), words=("modles", "did you mean 'models'"),
         then=NO_BENCH),
    Case("cfg-bench-unknown-task", "spec task 'retrival'", "refuses: did you mean 'retrieval'",
         bench("name: t\nmodels: {r: {spec: random}}\ndatasets: {s: {dataset: synthetic}}\n"
               "tasks: [retrival]\n"), words=("retrival", "did you mean 'retrieval'"),
         then=NO_BENCH),
    Case("cfg-bench-missing", "a spec path that does not exist", "refuses: not found",
         lambda ctx: ["bench", ctx.dir / "nope.yaml"], words=("nope.yaml", "not found")),
    Case("cfg-bench-binary", "a spec that is binary junk", "refuses: cannot read it",
         bench(raw=bytes(range(256)) * 4), words=("spec.yaml",), then=NO_BENCH),
    Case("cfg-bench-bom", "a spec starting with a UTF-8 BOM", "accepts it (exit 0)",
         bench(bom=True), code=0, then=_bench_done),
]  # fmt: skip


@pytest.mark.parametrize("case", params(CASES))
def test_config_fault(case, ctx, vilem):
    check(case, ctx, vilem)
