"""Dependencies point one way: no import cycle inside fastrecur/, the kernel library never imports
fastrecur, the data package and the model know nothing of training.

Imports are read from the source with ``ast`` (nothing is imported), including the ones inside
functions: a lazy import that closes a cycle is still a cycle.
"""

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
PACKAGES = {"fastrecur": "fastrecur", "fastrecur_kernels": "kernels"}  # import name → folder


def modules(package: str) -> dict[str, str]:
    """Every module of ``package``: dotted name → file."""
    folder = os.path.join(ROOT, PACKAGES[package])
    found = {}
    for directory, _, files in os.walk(folder):
        for file in files:
            if file.endswith(".py"):
                parts = os.path.relpath(os.path.join(directory, file), folder)[: -len(".py")].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join([package, *parts])] = os.path.join(directory, file)
    return found


ALL = {**modules("fastrecur"), **modules("fastrecur_kernels")}


def imports(module: str) -> set[str]:
    """The modules ``module`` imports (a name imported from a package counts as its submodule when
    there is one)."""
    path = ALL[module]
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in ALL else base)
    return found


def internal_graph(package: str) -> dict[str, set[str]]:
    names = [m for m in ALL if m.split(".")[0] == package]
    return {m: {i for i in imports(m) if i in names and i != m} for m in names}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert imports("fastrecur.train") >= {"fastrecur.backends", "fastrecur.checkpoint", "fastrecur.config"}


@pytest.mark.parametrize("package", list(PACKAGES))
def test_no_import_cycles(package):
    assert cycles(internal_graph(package)) == []


def test_the_kernel_library_never_imports_fastrecur():
    offenders = {m: sorted(i for i in imports(m) if i.split(".")[0] == "fastrecur") for m in modules("fastrecur_kernels")}
    assert not {m: i for m, i in offenders.items() if i}


def test_the_reference_math_needs_only_torch():
    allowed = {"__future__", "math", "typing", "torch", "torch.nn.functional"}
    assert imports("fastrecur_kernels.reference") <= allowed


@pytest.mark.parametrize(
    "module,forbidden",
    [
        ("fastrecur.data", ("model", "train", "evaluate", "backends", "checkpoint", "commands", "config")),
        ("fastrecur.model", ("train", "evaluate", "backends", "checkpoint", "commands", "config", "data")),
        ("fastrecur.checkpoint", ("train", "evaluate", "commands")),
        ("fastrecur.commands.evaluate", ("train",)),
        ("fastrecur.commands.sweep", ("train",)),
        ("fastrecur.generation", ("train", "evaluate", "backends", "checkpoint", "commands", "config")),
        ("fastrecur.objectives", ("train", "evaluate", "checkpoint", "commands", "config")),
        ("fastrecur.evaluate_cot", ("train", "evaluate", "checkpoint", "commands")),
    ],
)
def test_dependencies_point_one_way(module, forbidden):
    """Everything ``module`` reaches through fastrecur's own imports stays clear of ``forbidden``."""
    graph = internal_graph("fastrecur")
    starts = [m for m in graph if m == module or m.startswith(module + ".")]
    reached, todo = set(), list(starts)
    while todo:
        for nxt in graph[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    bad = sorted(m for m in reached for f in forbidden if m == f"fastrecur.{f}" or m.startswith(f"fastrecur.{f}."))
    assert not bad, f"{module} reaches {bad}"
