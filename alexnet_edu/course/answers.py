"""Which names an exercise's answer defines, and a student's functions without their top-level code.

The grader takes a student's *data* from the student's kernel (`values`) and *functions* from
the source: `student_parts` keeps only the imports and `def`s of an answer cell, annotations
dropped and defaults limited to literals and dotted names, so defining them runs no student code.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["AnswerNames", "answer_names", "define_names", "student_parts", "bound_names"]

_DEFINE = re.compile(r"\*\*Define:\*\*(.*)")
_TICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
# what binds names in a scope of its own (a def binds its name here, nothing inside it does)
_SCOPES = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass
class AnswerNames:
    """What one exercise's answer cell binds: `data` and `functions` are the answer (the student's
    count), `context` is what the released cell sets up around it (the solution's counts)."""

    data: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    context: set[str] = field(default_factory=set)


def _bindings(node: ast.AST) -> Iterable[tuple[str, int]]:
    """(name, line) of every name `node` binds in the module's scope."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name, node.lineno
        return
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            if alias.name != "*":
                yield (alias.asname or alias.name.split(".")[0]), node.lineno
        return
    if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
        yield node.id, node.lineno
        return
    if isinstance(node, ast.NamedExpr):
        yield node.target.id, node.lineno
    if isinstance(node, ast.ExceptHandler) and node.name:
        yield node.name, node.lineno
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, _SCOPES):
            yield from _bindings(child)


def bound_names(source: str) -> set[str]:
    """Every name a cell's code binds at the top level (none where it does not parse)."""
    try:
        return {name for node in ast.parse(source).body for name, _ in _bindings(node)}
    except SyntaxError:
        return set()


def define_names(markdown: str) -> set[str]:
    """The `names` of a task's **Define:** line."""
    return {name for match in _DEFINE.finditer(markdown) for name in _TICKED.findall(match[1])}


def answer_names(source: str, regions: list[tuple[int, int]], defined: set[str]) -> AnswerNames:
    """Split what a solution answer cell binds into the answer (names bound inside a solution
    region `regions`, functions holding one, the task's `defined` names) and context."""
    tree = ast.parse(source)
    inside = lambda line: any(a <= line <= b for a, b in regions)   # noqa: E731
    names = AnswerNames()
    for node in tree.body:
        end = getattr(node, "end_lineno", node.lineno)
        holds_region = any(node.lineno <= a <= end for a, _ in regions)   # END may follow `end`
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                holds_region or inside(node.lineno)):
            names.functions.add(node.name)
            continue
        for name, line in _bindings(node):
            (names.data if inside(line) else names.context).add(name)
    names.data |= defined - names.functions
    names.context -= names.data | names.functions
    return names


def _safe_default(node: ast.AST) -> bool:
    """A literal, a dotted name, or a tuple or list of those."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, (ast.Name, ast.Attribute)) and _safe_default(node.value)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_safe_default(e) for e in node.elts)
    return isinstance(node, (ast.Constant, ast.Name))


def _strip(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """Why `fn` cannot be defined without running student code (None: it can, now stripped)."""
    if fn.decorator_list:
        return f"{fn.name}: decorators are not graded (remove them)"
    args = fn.args
    for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
        if not _safe_default(default):
            return (f"{fn.name}: a default value that is not a literal ({ast.unparse(default)}); "
                    "use None and set it in the body")
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = None
    fn.returns = None
    return None


def student_parts(source: str, names: AnswerNames) -> tuple[list[str], str, list[str]]:
    """For a student's answer cell: the data names to take from the student's kernel, the source
    that defines the student's functions (imports and defs only) and notes on what was left out."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return sorted(names.data), "", [f"the answer cell does not parse: {err.msg}"]
    kept: list[ast.stmt] = []
    notes: list[str] = []
    data = set(names.data)
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            why = _strip(node)
            if why:
                notes.append(why)
            else:
                kept.append(node)
        else:
            data |= {name for name, _ in _bindings(node)}
    defined = {n.name for n in kept if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    data -= names.context | defined
    code = ast.unparse(ast.Module(body=kept, type_ignores=[])) if kept else ""
    return sorted(data), code, notes
