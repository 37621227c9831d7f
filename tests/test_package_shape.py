"""The package's shape (issue 31): a reading path a student reads in an evening, policy at the edge,
no import circle, no long function. Each test measures what the issue measured, so that a later
change that breaks the shape fails here rather than in a reviewer's `wc -l`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "alexnet_edu"
# shapes -> layers -> model -> transforms -> data -> train -> metrics (+ the four beside them)
READING_PATH = ("shapes", "layers", "model", "transforms", "data", "train", "metrics",
                "checkpoint", "distributed", "device", "evaluation")
EDGE = ("alexnet_edu.cli", "alexnet_edu.profiles", "alexnet_edu.settings", "alexnet_edu.standin",
        "alexnet_edu.notebook", "alexnet_edu.course", "alexnet_edu.__main__")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The alexnet_edu modules `name` imports, at any level of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level \
                else []
            target = ".".join(base + ([node.module] if node.module else []))
            for candidate in [target] + [f"{target}.{alias.name}" for alias in node.names]:
                if candidate in modules and candidate != name:
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_reading_path_is_at_most_1500_lines():
    lines = {name: len((PACKAGE / f"{name}.py").read_text().splitlines())
             for name in READING_PATH}
    assert sum(lines.values()) <= 1500, lines


def test_the_reading_path_reads_no_environment_and_imports_no_edge_module():
    graph, modules = _graph(), _modules()
    reached, todo = set(), [f"alexnet_edu.{name}" for name in READING_PATH]
    while todo:   # everything the reading path imports, directly or not
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(graph[name] - {"alexnet_edu"})
    assert not {m for m in reached if m.startswith(EDGE)}
    assert not [m for m in reached if "os.environ" in modules[m].read_text()
                or "getenv" in modules[m].read_text()]
    assert {"alexnet_edu.validation", "alexnet_edu.images"} <= reached   # the walk walked


def test_no_import_circle():
    graph, index, low, stack, circles = _graph(), {}, {}, [], []

    def visit(node: str) -> None:   # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles
    assert "alexnet_edu.shapes" in graph["alexnet_edu.model"]   # the graph has edges


def test_no_function_over_50_lines():
    long = [f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1})"
            for path in PACKAGE.rglob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > 50]
    assert not long
