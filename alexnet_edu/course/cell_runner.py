"""Run a list of cells in one IPython shell and report each cell's start and end on a pipe.

    python -m alexnet_edu.course.cell_runner JOB.json FD

Started by the grader inside the sandbox, never by hand. A cell past the job's timeout gets a
KeyboardInterrupt, as Jupyter's interrupt would. Events are JSON lines on file descriptor FD:
{"cell": k, "event": "start"} and {"cell": k, "event": "end", "error": "Name: message" | null}.
The cells can write to that pipe too: the grader believes it only about this runner's notebook.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import symtable
import sys
import threading

from . import values


def _one_line(err: BaseException | None) -> str | None:
    if err is None:
        return None
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text and text[0] else type(err).__name__


def _run(shell, source: str) -> str | None:
    result = shell.run_cell(source, store_history=False)
    return _one_line(result.error_before_exec or result.error_in_exec)


def _lenient(shell, source: str) -> None:
    """Each top-level statement on its own, errors ignored: the context around a cell's stubs."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in tree.body:   # a parsed statement has its position: the segment is never None
        _run(shell, ast.get_source_segment(source, node))


_UNKNOWN = object()


def _imported(node: ast.Import | ast.ImportFrom) -> list[tuple[str, object]]:
    """(name, what it will be bound to) per name an import binds; _UNKNOWN where its module is
    not loaded yet."""
    if isinstance(node, ast.Import):
        return [(a.asname or a.name.partition(".")[0],
                 sys.modules.get(a.name if a.asname else a.name.partition(".")[0], _UNKNOWN))
                for a in node.names]
    module = sys.modules.get(node.module or "") if node.level == 0 else None
    return [(a.asname or a.name, getattr(module, a.name, _UNKNOWN)) for a in node.names]


def _globals_read(table: symtable.SymbolTable) -> set[str]:
    """The names the functions (and their nested scopes) in `table` read as globals."""
    names: set[str] = set()
    for child in table.get_children():
        names |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced()}
        names |= _globals_read(child)
    return names


def _clashes(source: str, ns: dict, extra: dict, answer_names: set[str]) -> set[str]:
    """The names the answer's functions read that the answer binds (its imports and defs in
    `source`, its other names in `extra`) to something else than the kernel holds under them.
    Importing the very module the kernel has (`import torch`) is no clash; a star import
    clashes with every kernel name the functions read."""
    table = symtable.symtable(source, "<answer>", "exec")
    top = {s.get_name(): s for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    imports = [item for node in ast.walk(ast.parse(source))
               if isinstance(node, (ast.Import, ast.ImportFrom)) for item in _imported(node)]
    read = _globals_read(table) & ns.keys() - answer_names
    if any(name == "*" for name, _ in imports):   # binds names unknown until it runs
        return read
    other = {name for name, value in imports if value is not ns.get(name, _UNKNOWN)}
    return {name for name in read & (top.keys() | extra.keys())
            if name in extra or top[name].is_assigned() or name in other}


def _load(ns: dict, cell: dict) -> str | None:
    """Replace the answer's names by the student's (data from their kernel, functions from their
    source); their other names only where the checks have no such name (checks read theirs).

    The answer's functions look up globals in the kernel, live, as in the student's notebook.
    Where they read a name the answer binds and the kernel holds otherwise (`import math as m`
    beside the notebook's `m`), one namespace cannot hold both: the answer then runs in a copy
    of the kernel with its own names, so its functions see their `m` (and the rest of the
    kernel as it was at this cell: later changes and `global` writes stay apart), and the
    checks keep the notebook's `m`."""
    for name in cell["delete"]:
        ns.pop(name, None)
    values.load(ns, cell["names"], cell["folder"])
    extra: dict = {}
    values.load(extra, cell["extra"], cell["folder"])
    defined: dict = {}
    if cell["source"]:
        try:
            code = compile(cell["source"], "<answer>", "exec")
            if _clashes(cell["source"], ns, extra, {*cell["functions"], *cell["names"]}):
                own = {**ns, **extra}
                exec(code, own)   # noqa: S102
                defined = {name: value for name, value in own.items()
                           if name not in ns or value is not ns[name]}
            else:
                exec(code, ns, defined)   # noqa: S102
        except Exception as err:   # noqa: BLE001 - reported as the answer's error
            return _one_line(err)
    for name, value in [*extra.items(), *defined.items()]:
        if name in cell["functions"] or name not in ns:
            ns[name] = value
    return None


def main(argv: list[str]) -> int:
    job = json.loads(open(argv[0], encoding="utf-8").read())
    events = os.fdopen(int(argv[1]), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)   # the notebook's own prints are not graded
    os.dup2(devnull, 2)
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    timeout = float(job["timeout"])

    def send(**event) -> None:
        events.write(json.dumps(event) + "\n")

    for k, cell in enumerate(job["cells"]):
        send(cell=k, event="start")
        # a real SIGINT to the main thread, as Jupyter's interrupt: it also wakes a sleep
        timer = threading.Timer(timeout, signal.pthread_kill,
                                (threading.main_thread().ident, signal.SIGINT))
        timer.start()
        error = None
        try:
            mode = cell["mode"]
            if mode == "run":
                error = _run(shell, cell["source"])
            elif mode == "lenient":
                _lenient(shell, cell["source"])
            elif mode == "export":
                values.export(shell.user_ns, cell["names"], cell["folder"])
            elif mode == "load":
                error = _load(shell.user_ns, cell)
        except KeyboardInterrupt as err:   # the timeout arrived between two statements
            error = _one_line(err)
        finally:
            timer.cancel()
        send(cell=k, event="end", error=error)
    send(event="done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
