"""The import rules of the layout (docs/decisions.md, Layout and packaging), read from the
source with `ast`: a rule broken by a new import fails here, not in a reviewer's head."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = {
    "intake": "services/intake",
    "triage": "services/triage",
    "notify": "services/notify",
    "audit_log": "services/audit-log",
}


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module `path` (in `package`) imports, relative ones resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def modules_of(folder: str, package: str) -> list[tuple[Path, str]]:
    """(file, its package) for every module under `folder`."""
    root = REPO / folder
    result = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parent.parts
        result.append((path, ".".join([package, *parts])))
    return result


def test_shared_imports_no_service_and_not_the_cli() -> None:
    forbidden = ("hotline.cli", *(f"hotline.{name}" for name in SERVICES))
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path, package in modules_of("shared", "hotline.shared")
        for module in imported_modules(path, package)
        if module.startswith(forbidden)
    ]
    assert offenders == []


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_imports_no_other_service_and_not_the_cli(service: str) -> None:
    others = tuple(f"hotline.{name}" for name in SERVICES if name != service)
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path, package in modules_of(SERVICES[service], f"hotline.{service}")
        for module in imported_modules(path, package)
        if module.startswith((*others, "hotline.cli"))
    ]
    assert offenders == []


def test_bus_and_store_do_not_import_each_other() -> None:
    bus = imported_modules(REPO / "shared/bus.py", "hotline.shared")
    store = imported_modules(REPO / "shared/store.py", "hotline.shared")
    assert not any(m.startswith("hotline.shared.store") for m in bus)
    assert not any(m.startswith("hotline.shared.bus") for m in store)


def test_the_relative_import_resolution_this_test_relies_on() -> None:
    # `from ..roles import Role` in hotline.shared.audit is hotline.shared.roles.
    found = imported_modules(REPO / "shared/audit/policy.py", "hotline.shared.audit")
    assert "hotline.shared.roles.Role" in found
