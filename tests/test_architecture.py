"""Architecture guards: the engine never imports Qt, no import cycles, the app's run time never reaches
meta-training, and functions and app modules stay small enough to read."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CODE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'superqt', 'pyqtgraph', 'app'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import pkgutil, importlib, anil_engine
for m in pkgutil.walk_packages(anil_engine.__path__, 'anil_engine.'):
    if not m.name.endswith('__main__'):
        importlib.import_module(m.name)
print('ok')
"""


def test_engine_imports_without_qt():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# -- the shape of the code: guards a newcomer can rely on ------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80
MAX_APP_MODULE_LINES = 500
# What the app's classifier, evaluation and export need at run time; meta-training is not part of it.
RUN_TIME = ("classifier", "evaluation", "export", "runtime", "loading", "adaptation", "models", "listing")


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("anil_engine", "app"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that `name` imports, at module level or inside functions."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # imports for annotations only are not run
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {
        n: {m for m in _imports(n, p, known) if not (n.startswith(m + ".") and p.name != "__init__.py")}
        for n, p in modules.items()
    }


def test_no_import_cycles():
    graph = _graph()
    # Package __init__ files that only re-export are not edges back into their package.
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own modules
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_what_the_app_runs_never_imports_meta_training():
    graph = _graph()
    for short in RUN_TIME:
        name = f"anil_engine.{short}"
        seen, todo = set(), [name]
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            todo.extend(graph.get(m, ()))
        meta = sorted(m for m in seen if m.startswith("anil_engine.meta"))
        assert not meta, f"{name} reaches meta-training through {meta}"


def test_functions_and_app_modules_stay_small():
    long_functions, long_modules = [], []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if name.startswith("app") and len(text.splitlines()) > MAX_APP_MODULE_LINES:
            long_modules.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {n} lines")
    assert not long_functions, long_functions
    assert not long_modules, long_modules
