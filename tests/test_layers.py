"""The import graph is one-way: each layer imports only the layers below it, and the shells
(CLI, page, evaluation) reach kb only through the facade, the answer types and the errors.

Read from the source with `ast`, so imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each installed package's source lives (ingest/ and ui/ install under kb.).
PACKAGES = {"kb": ROOT / "kb", "kb.ingest": ROOT / "ingest", "kb.ui": ROOT / "ui"}

LAYERS: list[tuple[str, list[str]]] = [
    (
        "core",
        [
            "kb",
            "kb.config",
            "kb.errors",
            "kb.text",
            "kb.segment",
            "kb.offline",
            "kb.jsonl",
            "kb.filters",
            "kb.access",
        ],
    ),
    ("models", ["kb.models"]),
    ("store", ["kb.manifest", "kb.keyword", "kb.store", "kb.users", "kb.audit"]),
    ("retrieve", ["kb.retrieve"]),
    ("ingest", ["kb.ingest"]),
    ("answer", ["kb.answer"]),
    ("facade", ["kb.app", "kb.status", "kb.doctor"]),
    ("shells", ["kb.cli", "kb.__main__", "kb.ui", "kb.eval", "kb.server"]),
]
# Retrieval and ingestion sit side by side: neither may import the other.
RANK = {"core": 0, "models": 1, "store": 2, "retrieve": 3, "ingest": 3}
RANK |= {"answer": 4, "facade": 5, "shells": 6}
# All a shell may import from kb besides the shells' own modules.
SHELL_MAY_IMPORT = {
    "kb",
    "kb.app",
    "kb.answer.types",
    "kb.errors",
    "kb.config",
    "kb.jsonl",
    "kb.offline",
}


def module_files() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "kb" and parts[:1] in (["ingest"], ["ui"]):
                continue
            found[name] = path
    return found


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            # `from kb import prompts` imports the module kb.prompts.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def layer_of(module: str) -> str | None:
    best, length = None, -1
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            matches = module == prefix or (prefix != "kb" and module.startswith(prefix + "."))
            if matches and len(prefix) > length:
                best, length = layer, len(prefix)
    return best


MODULES = module_files()


def kb_imports(module: str) -> set[str]:
    return {
        name
        for name in imports_of(MODULES[module], module)
        if (name == "kb" or name.startswith("kb.")) and name in MODULES
    }


def test_every_module_has_a_layer():
    assert "kb.ingest.pipeline" in MODULES and "kb.ui.app" in MODULES
    assert [m for m in MODULES if layer_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    own = layer_of(module)
    for name in kb_imports(module):
        other = layer_of(name)
        same_package = name.split(".")[:2] == module.split(".")[:2]
        if other == own and (same_package or own in ("core", "shells", "facade", "store")):
            continue
        assert RANK[other] < RANK[own], f"{module} ({own}) imports {name} ({other})"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) == "shells"))
def test_shells_use_only_the_facade_types_and_errors(module):
    for name in kb_imports(module):
        if layer_of(name) == "shells":
            continue
        assert name in SHELL_MAY_IMPORT, f"{module} reaches past the facade into {name}"


def test_no_generic_top_level_names_are_imported():
    for module, path in MODULES.items():
        names = imports_of(path, module)
        assert not {n.split(".")[0] for n in names} & {"ingest", "ui", "services"}, module
