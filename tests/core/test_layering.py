"""DESIGN.md's layering, read from the source with ast: dependencies point down only, and no import circles.

Every import statement counts, at module level or inside a function (a lazy import is still a dependency). Those under
`if TYPE_CHECKING:` only name types and never run: the layer tests skip them, the circle test counts them too (a
type-only circle is still two modules that know each other).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ("gancli.train", "gancli.nn", "gancli.data", "gancli.objectives", "gancli.metrics")
ABOVE_CORE = ("recipes", "gancli.api", "gancli.runs", "gancli.cli", "gancli.serve")
# what the CLI may import: the API and run folders, the studies, the page server (a client of the API like them), the
# base modules and its own UI (and the package's face, for its version)
CLI_ALLOWED = ("gancli.api", "gancli.runs", "gancli.study", "gancli.study_report", "gancli.serve", "gancli.config",
               "gancli.errors", "gancli.paths", "gancli.device", "gancli.cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    files = [*ROOT.joinpath("gancli").rglob("*.py"), *ROOT.joinpath("recipes").rglob("*.py")]
    return {module_name(p): p for p in files if "__pycache__" not in p.parts}


def imports_of(name: str, path: Path, known: dict[str, Path], type_only: bool = False) -> set[str]:
    """The project modules that a module imports (a name imported from a package counts as its submodule when one
    exists, else as the package); type_only: with those under `if TYPE_CHECKING:`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only and not type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import gancli.metrics.generative.features as f` → the module itself
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def graph(type_only: bool = False) -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known, type_only) for name, path in known.items()}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_core_imports_nothing_above_it():
    wrong = sorted(f"{module} imports {target}" for module, targets in graph().items() if within(module, CORE)
                   for target in targets if within(target, ABOVE_CORE))
    assert not wrong, "the core reaches up:\n" + "\n".join(wrong)


def test_the_cli_imports_no_recipe():
    wrong = sorted(f"{module} imports {target}" for module, targets in graph().items()
                   if within(module, ("gancli.cli",)) for target in targets if within(target, ("recipes",)))
    assert not wrong, "the CLI reaches a recipe:\n" + "\n".join(wrong)


def test_the_cli_imports_only_the_api_runs_studies_base_modules_and_its_ui():
    wrong = sorted(f"{module} imports {target}" for module, targets in graph(type_only=True).items()
                   if within(module, ("gancli.cli",)) for target in targets
                   if target != "gancli" and not within(target, CLI_ALLOWED))
    assert not wrong, "the CLI reaches past the API:\n" + "\n".join(wrong)


def test_the_page_server_opens_runs_only_through_the_api():
    wrong = sorted(f"{module} imports {target}" for module, targets in graph(type_only=True).items()
                   if within(module, ("gancli.serve",))
                   for target in targets if within(target, ("gancli.runs", "recipes", "gancli.cli", "gancli.study")))
    assert not wrong, "gancli serve reaches past the API:\n" + "\n".join(wrong)


def test_recipes_do_not_open_runs_or_reach_the_cli():
    wrong = sorted(f"{module} imports {target}" for module, targets in graph().items() if within(module, ("recipes",))
                   for target in targets if within(target, ("gancli.api", "gancli.runs", "gancli.cli")))
    assert not wrong, "a recipe reaches up:\n" + "\n".join(wrong)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle (as the list of its modules), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_circles_type_only_imports_included():
    cycle = find_cycle(graph(type_only=True))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_reader_resolves_relative_and_package_imports(tmp_path):
    known = {"pkg": tmp_path / "pkg/__init__.py", "pkg.a": tmp_path / "pkg/a.py", "pkg.b": tmp_path / "pkg/b.py"}
    source = tmp_path / "a.py"
    source.write_text("from typing import TYPE_CHECKING\nfrom . import b\nfrom pkg import thing\n\ndef f():\n"
                      "    import pkg.b.inner\nif TYPE_CHECKING:\n    from pkg import a\n")
    assert imports_of("pkg.a", source, known) == {"pkg.b", "pkg"}
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n")
    assert imports_of("pkg.a", source, known) == set()
    assert imports_of("pkg.a", source, known, type_only=True) == {"pkg.b"}
