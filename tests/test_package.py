"""The package's shape: a curated public API and the import direction of the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import vmv_sync

PACKAGE = Path(vmv_sync.__file__).parent

# Layer -> the vmv_sync modules it may import (style.md, section A).
ALLOWED = {
    "ids": set(),
    "errors": {"ids"},
    "config": {"errors"},
    "protocol": {"errors", "protocol", "ids"},
    "storage": {"errors", "storage"},
    "schema": {"errors", "schema"},
    "derived": {"errors", "schema", "derived"},
    "presence": {"errors", "schema"},
    "export": {"errors", "schema", "derived"},
    "client": {"errors", "ids", "config", "protocol", "storage", "schema", "derived", "presence", "client"},
    "server": {"errors", "ids", "config", "protocol", "storage", "schema", "derived", "presence", "server", "export"},
    "cli": {"errors", "ids", "config", "protocol", "storage", "schema", "derived", "server", "export"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth = len(path.relative_to(PACKAGE).parts) - 1
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("vmv_sync."):
                found.add(node.module.split(".")[1])
            elif node.level > 0:
                up = node.level - 1
                if up < depth:  # a sibling inside the same subpackage
                    found.add(path.relative_to(PACKAGE).parts[0])
                elif node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vmv_sync."):
                    found.add(alias.name.split(".")[1])
    return found


def test_public_api_is_curated() -> None:
    public = {name for name in vmv_sync.__all__}
    for name in public:
        assert hasattr(vmv_sync, name), name
    assert {"create_app", "WorkshopClient", "Settings", "VmvSyncError", "export_json"} <= public
    assert len(public) == len(vmv_sync.__all__), "duplicates in __all__"


def test_import_direction_of_the_layers() -> None:
    problems = []
    for path in PACKAGE.rglob("*.py"):
        layer = _layer(path)
        if layer in {"__init__", "__main__"}:
            continue
        allowed = ALLOWED[layer] | {layer}
        for imported in _imported_layers(path) - allowed:
            problems.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert not problems, "\n".join(sorted(problems))


def test_server_and_client_never_import_each_other() -> None:
    """Read from the code itself (not from ALLOWED): neither package imports the other."""
    for layer, other in (("server", "client"), ("client", "server")):
        for path in (PACKAGE / layer).rglob("*.py"):
            assert other not in _imported_layers(path), f"{path.relative_to(PACKAGE)} imports {other}"


def _public_names(module: object) -> set[str]:
    import inspect

    names = set()
    for name in dir(module):
        if name.startswith("_") or name == "annotations":
            continue
        value = getattr(module, name)
        if inspect.ismodule(value):
            continue  # subpackages and submodules are reached by their own __all__
        names.add(name)
    return names


def test_every_public_name_is_listed_and_every_listed_name_exists() -> None:
    """Both directions, like anyio's and httpx's tests: ``__all__`` is the public API."""
    import importlib

    for package in ("vmv_sync", "vmv_sync.protocol", "vmv_sync.storage", "vmv_sync.schema", "vmv_sync.derived",
                    "vmv_sync.client", "vmv_sync.server"):  # fmt: skip
        module = importlib.import_module(package)
        listed = set(module.__all__)
        assert len(listed) == len(module.__all__), f"duplicates in {package}.__all__"
        assert listed <= set(dir(module)), f"{package}: listed but missing: {sorted(listed - set(dir(module)))}"
        unlisted = _public_names(module) - listed
        assert not unlisted, f"{package}: public but not in __all__: {sorted(unlisted)}"
