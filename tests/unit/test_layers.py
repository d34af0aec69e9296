"""The layout's import rules (STYLE.md), read from the source with ast: service/ never
imports workers/ (the workers build on the service, not the other way round),
service/domain imports no I/O, and the edges (REST, the console, MCP) reach nothing below
the use cases."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "service"

IO_MODULES = {"sqlite3", "redis", "rq", "fastapi", "starlette", "httpx", "uvicorn", "socket",
              "http", "urllib", "workers"}  # fmt: skip


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, at any depth (a function's too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def top(module: str) -> str:
    return module.partition(".")[0]


def in_domain(module: str) -> bool:
    return module == "service.domain" or module.startswith("service.domain.")


def python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_imported_modules_sees_imports_at_any_depth(tmp_path: Path) -> None:
    """The walker finds top-level, from- and function-level imports, not relative ones."""
    source = tmp_path / "m.py"
    source.write_text(
        "import os.path\nfrom workers import events\nfrom . import sibling\n"
        "def f():\n    import workers.scheduler\n"
    )

    assert [(1, "os.path"), (2, "workers"), (5, "workers.scheduler")] == sorted(
        imported_modules(source)
    )


@pytest.mark.parametrize("path", python_files(SERVICE), ids=relative)
def test_service_module_does_not_import_workers(path: Path) -> None:
    """No module of service/ imports workers/, not even inside a function."""
    assert [] == [(line, m) for line, m in imported_modules(path) if top(m) == "workers"]


@pytest.mark.parametrize("path", python_files(SERVICE / "domain"), ids=relative)
def test_domain_module_imports_no_io(path: Path) -> None:
    """service/domain imports no I/O library and nothing of service/ outside the domain."""
    offending = [
        (line, m)
        for line, m in imported_modules(path)
        if top(m) in IO_MODULES or (top(m) == "service" and not in_domain(m))
    ]

    assert [] == offending


def _edge_reaches_below(module: str) -> bool:
    return top(module) in {"redis", "rq", "sqlite3"} or module.startswith("service.store")


EDGES = [*python_files(SERVICE / "api"), *python_files(SERVICE / "console"),
         *python_files(SERVICE / "mcp")]  # fmt: skip


@pytest.mark.parametrize("path", EDGES, ids=relative)
def test_edge_module_only_translates(path: Path) -> None:
    """service/api, service/console and service/mcp import neither the store nor a Redis,
    RQ or SQLite client: they call the use cases (service/usecases.py) and translate their
    answers and errors."""
    assert [] == [(line, m) for line, m in imported_modules(path) if _edge_reaches_below(m)]


def test_the_edge_rule_sees_what_it_forbids() -> None:
    """The rule above catches each kind of forbidden import, and lets the use cases through."""
    assert [True, True, True, True, False] == [
        _edge_reaches_below(m)
        for m in ("redis.exceptions", "rq", "sqlite3", "service.store.db", "service.usecases")
    ]
