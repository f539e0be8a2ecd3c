"""The layering README's architecture section promises, checked on the source itself.

    handlers -> wiring -> config kinds -> adapters -> ports -> core     (dependencies point down only)

* the core imports nothing but itself, the ports and the errors, and does no I/O;
* adapters never import the runtime, the wiring, the CLI or a handler;
* a handler never imports another handler, and stays thin;
* no import circle among module-level imports anywhere in processors/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "processors"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, importer: str) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")[: -node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _executed_at_import(stmts):
    """Statements Python runs when the module is imported: not function bodies, not TYPE_CHECKING blocks."""
    for st in stmts:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(st, ast.If) and "TYPE_CHECKING" in ast.unparse(st.test):
            yield from _executed_at_import(st.orelse)
            continue
        yield st
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(st, field, None)
            if isinstance(inner, list):
                yield from _executed_at_import(inner)


def imports(path: Path, *, top_level_only: bool = False, name: str | None = None) -> set[str]:
    """processors.* modules a file imports (a `from m import name` counts name when it is a module).
    With top_level_only, imports inside functions and `if TYPE_CHECKING:` blocks are left out: those
    cannot make a circle at import time."""
    tree = ast.parse(path.read_text(), str(path))
    importer = name or module_name(path)
    nodes = list(_executed_at_import(tree.body)) if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("processors"))
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node, importer)
            if not mod.startswith("processors"):
                continue
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES)
    return {m for m in out if m in MODULES}


def core_problems(path: Path) -> list[str]:
    allowed = ("processors.core", "processors.ports", "processors.errors", "processors.data")
    problems = [f"imports {m}" for m in sorted(imports(path, name="processors.core.x")) if not m.startswith(allowed)]
    tree = ast.parse(path.read_text())
    if any(isinstance(n, ast.Name) and n.id == "open" for n in ast.walk(tree)):
        problems.append("calls open()")
    if any(isinstance(n, ast.Call) and ast.unparse(n.func).endswith(("read_bytes", "write_text", "write_bytes"))
           for n in ast.walk(tree)):
        problems.append("reads or writes files")
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    io_modules = ("os", "pathlib", "socket", "subprocess", "urllib.request", "http", "boto3", "botocore", "requests",
                  "opensearchpy", "slack_sdk", "aws_lambda_powertools")
    problems += [f"imports {m} (I/O)" for m in sorted(mods) if m.startswith(io_modules) and
                 (m in io_modules or m.startswith(tuple(x + "." for x in io_modules)))]
    return problems


def _in(pkg: str) -> list[str]:
    return [m for m in MODULES if m.startswith(pkg + ".")]


@pytest.mark.parametrize("mod", _in("processors.core"))
def test_core_imports_only_core_ports_and_errors_and_does_no_io(mod):
    assert not core_problems(MODULES[mod]), f"{mod}: {core_problems(MODULES[mod])}"


@pytest.mark.parametrize("mod", _in("processors.adapters"))
def test_adapters_do_not_import_upward(mod):
    bad = sorted(m for m in imports(MODULES[mod])
                 if m.startswith(("processors.runtime", "processors.handlers", "processors.commands", "processors.wiring")))
    assert not bad, f"{mod} imports {bad}"


@pytest.mark.parametrize("mod", [m for m in _in("processors.handlers")])
def test_handlers_are_thin_and_never_import_each_other(mod):
    bad = sorted(m for m in imports(MODULES[mod]) if m.startswith("processors.handlers") and m != mod)
    assert not bad, f"{mod} imports {bad}"
    assert len(MODULES[mod].read_text().splitlines()) < 100, f"{mod}: a handler is event -> use case -> response"


def test_no_import_circle():
    graph = {m: imports(p, top_level_only=True) - {m} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checks_see_a_violation(tmp_path):
    """The core check must be able to fail: a core module that imports an adapter and reads a file."""
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom processors.adapters import aws\n\ndef f(p):\n    return open(p).read()\n")
    assert core_problems(probe) == ["imports processors.adapters", "imports processors.adapters.aws", "calls open()",
                                    "imports os (I/O)"]
