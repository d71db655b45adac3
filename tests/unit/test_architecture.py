"""The engine stays easy to change: no import cycles, no private names across modules, short functions, small files.

Read with `ast` (nothing is imported), so each rule names the module, line and what breaks it.
"""
from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("common", "core", "models", "processing_provider", "ui", "plugin")  # the plugin's own code
MAX_FUNCTION_LINES = 80  # in core/ and models/
MAX_FILE_LINES = 700


def modules() -> dict[str, Path]:
    """Dotted module name (relative to the plugin root) -> file, for every module of the plugin's own folders."""
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")) if (ROOT / folder).is_dir() else []:
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute dotted name (relative to the plugin root) a `from … import` refers to."""
    if node.level == 0:
        name = node.module or ""
        return name.split(".", 1)[1] if name.startswith("landslide_mapper.") else name
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def imports(mods: dict[str, Path]) -> dict[str, list[tuple[str, int, list[str]]]]:
    """module -> [(imported module, line, names)], imports inside functions included."""
    out: dict[str, list[tuple[str, int, list[str]]]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_package, node)
                names = [a.name for a in node.names]
                # `from . import raster` imports the module core.raster, not a name of core
                subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
                for sub in subs:
                    found.append((sub, node.lineno, []))
                rest = [n for n in names if f"{target}.{n}" not in mods]
                if rest and target in mods:
                    found.append((target, node.lineno, rest))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name.split(".", 1)[1] if alias.name.startswith("landslide_mapper.") else ""
                    if target in mods:
                        found.append((target, node.lineno, []))
        out[name] = found
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_modules():
    mods = modules()
    graph = {m: {t for t, _, _ in deps if t != m and not m.startswith(t + ".")} for m, deps in imports(mods).items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_top_level_folders():
    graph: dict[str, set[str]] = {}
    for module, deps in imports(modules()).items():
        top = module.split(".")[0]
        graph.setdefault(top, set()).update(t.split(".")[0] for t, _, _ in deps if t.split(".")[0] != top)
    cycle = _cycle(graph)
    assert cycle is None, "folders import each other: " + " -> ".join(cycle)


def test_no_private_name_is_imported_from_another_module():
    bad = [f"{m} line {line} imports {n} from {t}" for m, deps in imports(modules()).items()
           for t, line, names in deps for n in names if n.startswith("_") and not n.startswith("__") and t != m]
    assert not bad, "private names cross modules:\n" + "\n".join(bad)


def test_no_function_in_core_or_models_is_over_80_lines():
    long = []
    for module, path in modules().items():
        if module.split(".")[0] not in ("core", "models", "common"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                length = node.end_lineno - start + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} has {length} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_no_file_of_the_plugin_is_over_700_lines():
    big = [f"{p.relative_to(ROOT)} has {n} lines" for p in modules().values()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES]
    assert not big, f"files over {MAX_FILE_LINES} lines:\n" + "\n".join(big)


def test_the_rules_see_a_cycle_and_a_private_import(tmp_path):
    """The checker itself can fail: a two-module cycle and a private import are found."""
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    node = ast.parse("from ..core.training import _float_metrics").body[0]
    assert _resolve("core.ensemble", False, node) == "core.training"
    node = ast.parse("from . import raster").body[0]
    assert _resolve("core.chips", False, node) == "core"
