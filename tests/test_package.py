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
    "history": {"errors", "storage"},
    "client": {"errors", "ids", "config", "protocol", "storage", "schema", "derived", "presence", "client"},
    "server": {"errors", "ids", "config", "protocol", "storage", "schema", "derived", "presence", "server", "export", "history"},
    "cli": {"errors", "ids", "config", "protocol", "storage", "schema", "derived", "server", "export", "history"},
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


# -- the lazy root (PEP 562) ----------------------------------------------------------

#: what importing a leaf must never load: the web stack and the WebSocket client
WEB_STACK = ("uvicorn", "starlette", "prometheus_client", "websockets", "httptools", "uvloop")


def _modules_after(statement: str) -> set[str]:
    """Top-level names of the modules loaded by ``statement`` in a fresh interpreter."""
    import json
    import subprocess
    import sys

    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_a_leaf_does_not_load_the_web_stack() -> None:
    """``import vmv_sync.storage`` (and protocol, schema) loads neither server nor client."""
    for leaf in ("vmv_sync.storage", "vmv_sync.protocol", "vmv_sync.schema", "vmv_sync.presence", "vmv_sync.history"):
        loaded = _modules_after(f"import {leaf}")
        heavy = {m for m in loaded if m.split(".")[0] in WEB_STACK}
        assert not heavy, f"import {leaf} loaded {sorted(heavy)}"
        ours = {m for m in loaded if m.startswith(("vmv_sync.server", "vmv_sync.client", "vmv_sync.cli"))}
        assert not ours, f"import {leaf} loaded {sorted(ours)}"


def test_the_client_loads_websockets_only_to_connect() -> None:
    """The client package (replica, session, memory channels) works without the ``client`` extra."""
    loaded = _modules_after("from vmv_sync import WorkshopClient")
    assert not {m for m in loaded if m.split(".")[0] in WEB_STACK}
    assert not {m for m in loaded if m.startswith("vmv_sync.server")}


def test_the_root_resolves_its_names_lazily_and_submodules_still_import() -> None:
    loaded = _modules_after("import vmv_sync")
    assert {m for m in loaded if m.startswith("vmv_sync")} == {"vmv_sync", "vmv_sync.errors", "vmv_sync.ids"}
    assert set(vmv_sync.__all__) <= set(dir(vmv_sync))
    from vmv_sync import schema  # a submodule, not a lazy name: falls through to the import system

    assert schema.__name__ == "vmv_sync.schema"
    import pytest

    with pytest.raises(AttributeError):
        vmv_sync.no_such_name  # noqa: B018


def test_only_the_websocket_channel_imports_websockets() -> None:
    """The transport is a seam: one module of the client knows WebSockets (client/websocket.py)."""
    for path in (PACKAGE / "client").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        if any(n.split(".")[0] == "websockets" for n in names):
            assert path.name == "websocket.py", f"{path.relative_to(PACKAGE)} imports websockets"


def test_one_awareness_clock_rule() -> None:
    """The y-protocols clock rule is written once (presence.supersedes) and the client uses it."""
    source = (PACKAGE / "client" / "presence.py").read_text(encoding="utf-8")
    assert "supersedes(" in source and "current < entry.clock" not in source
