"""The package's shape: no import cycles, no upward imports, no file over 600 lines and no
function over 80. Imports are read from the source (module level and inside functions; those
under ``if TYPE_CHECKING:`` never run and are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

import vilem

PACKAGE = Path(vilem.__file__).parent
# lower layers never import higher ones; a layer may import itself and anything below
LAYERS = {
    "errors": 0, "io": 0, "registry": 0, "config": 0, "dist": 0, "threads": 0,
    "metrics": 1,
    "data": 2,
    "model": 3,
    "models": 4, "results": 4,
    "eval": 5,
    "train": 6, "report": 6,
    "bench": 7,
    "cli": 8, "__main__": 8, "__init__": 8, "api": 8,
}  # fmt: skip
MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(("vilem", *parts)) if parts != ("__init__",) else "vilem"] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    type_only = {  # imports under `if TYPE_CHECKING:` never run
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("vilem"):
                found.add(t)
    return found


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return LAYERS[top]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # importing vilem.a.b runs vilem/a/__init__.py: a package's own __init__ is not an edge
    return {m: {t for t in deps if not m.startswith(t + ".")} for m, deps in graph.items()}


def test_every_top_level_module_has_a_layer():
    tops = {m.split(".")[1] for m in _modules() if "." in m}
    assert tops <= set(LAYERS), f"add {sorted(tops - set(LAYERS))} to LAYERS"


def test_no_upward_imports():
    upward = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, deps in _graph().items()
        for t in sorted(deps)
        if _layer(t) > _layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph, cycles = _graph(), []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_method_imports_without_the_trainer_data_or_cli():
    reach, todo, graph = set(), ["vilem.model.vilem", "vilem.model.checkpoint"], _graph()
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in reach:
                reach.add(dep)
                todo.append(dep)
    assert not {m for m in reach if m.split(".")[1] in ("train", "data", "bench", "cli", "eval")}


def test_files_and_functions_stay_short():
    long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > MAX_FILE_LINES:
            long.append(f"{path.relative_to(PACKAGE)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)
