"""The layer rules of dlfs, checked on the source (``ast``, nothing is imported):

- ``dlfs`` never imports the daemon (``dlfsd``, the ``daemon/`` folder) nor the CLI
  (``dlfs.cli``), except the CLI itself and ``dlfs/__main__.py``;
- each third-party library has one home: pyfuse3 the daemon, boto3 and botocore the
  S3 store (:data:`BOTO_HOMES`), sqlite3 and sqlite-utils the catalog
  (``dlfs/catalog.py`` or a ``dlfs/catalog/`` package);
- nobody outside ``dlfs/stores/`` imports a store's private modules: only
  :data:`PUBLIC_STORES` are the stores' surface;
- no module of ``dlfs/`` or ``daemon/`` is over :data:`MAX_LINES` lines.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a layer
is crossed either way; the one exception is a store's class named in a type hint
(under ``TYPE_CHECKING``): it names what :mod:`dlfs.stores.registry` hands out, not a
store's layout. ``from package import name`` imports ``package.name`` too
when that is a module.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"dlfs": ROOT / "dlfs", "dlfsd": ROOT / "daemon"}
"""Top-level package name -> its folder (``daemon/`` is installed as ``dlfsd``)."""
MAX_LINES = 700
BOTO_HOMES = ("dlfs.stores.s3",)
"""The modules (or packages) that may import boto3 and botocore."""
CATALOG_HOMES = ("dlfs.catalog",)
"""The module (or package) that may import sqlite3 and sqlite_utils."""
PUBLIC_STORES = (
    "dlfs.stores",
    "dlfs.stores.base",
    "dlfs.stores.registry",
    "dlfs.stores.urls",
    "dlfs.stores.manifest",
)
"""What the rest of dlfs and the daemon may import from ``dlfs/stores/``."""
CLI_USERS = ("dlfs.cli", "dlfs.__main__")


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    """Every module of dlfs and of the daemon: dotted name -> file."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            found[module_name(package, folder, path)] = path
    return found


SOURCES = sources()


def within(module: str, homes: tuple[str, ...]) -> bool:
    """True if ``module`` is one of ``homes`` or inside one of them."""
    return any(module == h or module.startswith(f"{h}.") for h in homes)


def imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of everything ``module`` imports, relative imports
    resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                if f"{target}.{alias.name}" in SOURCES:
                    yield node.lineno, f"{target}.{alias.name}"


IMPORTS = [(m, line, target) for m, p in SOURCES.items() for line, target in imports(m, p)]


def type_only_lines(path: Path) -> set[int]:
    """The lines of the ``if TYPE_CHECKING:`` blocks of a file."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


TYPE_ONLY = {m: type_only_lines(p) for m, p in SOURCES.items()}


def broken(library: str, allowed: Callable[[str], bool]) -> list[str]:
    """``file:line imports name`` for each import of ``library`` (or a module in it)
    by a module that ``allowed`` refuses."""
    return [
        f"{SOURCES[m].relative_to(ROOT)}:{line} imports {target}"
        for m, line, target in IMPORTS
        if within(target, (library,)) and not allowed(m)
    ]


def test_the_source_is_found() -> None:
    assert any(within(m, CATALOG_HOMES) for m in SOURCES)
    assert "dlfsd.ops" in SOURCES
    assert len(IMPORTS) > 100


def test_the_library_never_imports_the_daemon() -> None:
    bad = broken("dlfsd", lambda m: m.startswith("dlfsd"))
    bad += broken("daemon", lambda m: False)
    assert not bad, "\n".join(bad)


def test_the_library_never_imports_the_cli() -> None:
    bad = broken("dlfs.cli", lambda m: within(m, CLI_USERS) or m.startswith("dlfsd"))
    assert not bad, "\n".join(bad)


def test_the_daemon_never_imports_the_cli() -> None:
    bad = broken("dlfs.cli", lambda m: not m.startswith("dlfsd"))
    assert not bad, "\n".join(bad)


def test_pyfuse3_only_in_the_daemon() -> None:
    bad = broken("pyfuse3", lambda m: m.startswith("dlfsd"))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("library", ["boto3", "botocore"])
def test_boto_only_in_the_s3_store(library: str) -> None:
    bad = broken(library, lambda m: within(m, BOTO_HOMES))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("library", ["sqlite3", "sqlite_utils"])
def test_sqlite_only_in_the_catalog(library: str) -> None:
    bad = broken(library, lambda m: within(m, CATALOG_HOMES))
    assert not bad, "\n".join(bad)


def test_no_one_outside_the_stores_imports_their_private_modules() -> None:
    bad = [
        f"{SOURCES[m].relative_to(ROOT)}:{line} imports {target}"
        for m, line, target in IMPORTS
        if within(target, ("dlfs.stores",))
        and target not in PUBLIC_STORES
        and not within(m, ("dlfs.stores",))
        and line not in TYPE_ONLY[m]
    ]
    assert not bad, "\n".join(bad)


def test_no_module_is_over_700_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in SOURCES.values()}
    over = [f"{p}: {n} lines" for p, n in sorted(sizes.items()) if n > MAX_LINES]
    assert not over, "\n".join(over)
