"""The layout README's "Scripts" section promises: steps flat in ci_cd_scripts/, the library in cicdkit/, the local
stand-ins in local_cloud/, imports pointing one way (entry → library, local_cloud → cicdkit, never back), no
import cycle (type-checking imports included), no module past the size a reader can hold."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import SCRIPTS

PACKAGES = ("cicdkit", "local_cloud")
MAX_MODULE_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SCRIPTS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((SCRIPTS / package).rglob("*.py"))}


def imports_of(path: Path, name: str) -> set[str]:
    """Modules of ours that `path` imports, anywhere in the file (inside functions and TYPE_CHECKING too)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    known = set(package_modules())
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def test_the_top_level_holds_only_steps_and_entry_scripts() -> None:
    for path in sorted(SCRIPTS.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert 'if __name__ == "__main__":' in text, f"{path.name} is not a step: library code goes into cicdkit/"
    folders = sorted(p.name for p in SCRIPTS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(PACKAGES)


def test_nothing_imports_a_step_and_the_library_never_imports_the_local_stand_ins() -> None:
    steps = {p.stem for p in SCRIPTS.glob("*.py")}
    for name, path in package_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                roots = (
                    [alias.name.split(".")[0] for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [(node.module or "").split(".")[0]]
                )
                assert not steps.intersection(roots), f"{name} imports a step: {roots}"
                if name.startswith("cicdkit"):
                    assert "local_cloud" not in roots, f"{name} imports local_cloud"


def test_the_import_graph_has_no_cycle() -> None:
    modules = package_modules()
    graph = {name: imports_of(path, name) for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how packages re-export; count only the other way.
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = trail[trail.index(target) :] + [target] if target in trail else [node, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_module_is_past_the_size_a_reader_can_hold() -> None:
    too_long = {}
    for name, path in package_modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            too_long[name] = lines
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by responsibility): {too_long}"


def test_a_step_can_use_databricks_sdk_next_to_our_client() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPTS)!r})\n"
        "import databricks.sdk\nfrom cicdkit import dbclient\n"
        "assert databricks.sdk.WorkspaceClient and dbclient.Client\n"
        "assert databricks.__name__ == 'databricks' and 'site-packages' in databricks.__path__[0]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
