"""Layers (docs/architecture.md "Layers"): apps import downwards only, so no import cycle between
apps. The contract is `.importlinter` (CI runs `lint-imports` after ruff); these tests run the same
contract and, independently of import-linter, read every import of every module (lazy imports
inside functions included) and check the same order, so a new upward import fails the suite."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
NOT_APPS = {"tests", "bench", "deploy", "scripts", "docs", "locale", "static", "templates"}


def _contract() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _layers() -> list[set[str]]:
    """Top to bottom; each layer a set of independent packages."""
    return [
        {name.strip() for name in line.split("|")}
        for line in _lines(_contract()["importlinter:contract:layers"]["layers"])
    ]


def _ignored() -> tuple[set[tuple[str, str]], set[str]]:
    """(importer, imported) pairs listed, and the importers whose imports are all exempt (`x -> **`)."""
    pairs, wholly = set(), set()
    for line in _lines(_contract()["importlinter:contract:layers"]["ignore_imports"]):
        importer, imported = (part.strip() for part in line.split("->"))
        if imported == "**":
            wholly.add(importer)
        else:
            pairs.add((importer, imported))
    return pairs, wholly


def _packages_on_disk() -> set[str]:
    return {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in NOT_APPS and not path.parent.name.startswith(".")
    }


def _modules() -> dict[str, Path]:
    modules = {}
    for package in _packages_on_disk():
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imports() -> set[tuple[str, str]]:
    """(importer, imported module) for every import statement in every module, wherever it is
    (module level, inside functions, under TYPE_CHECKING), relative ones resolved."""
    modules = _modules()
    found = set()
    for importer, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = importer.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from a import b` imports the module a.b when there is one, else a name of a.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules:
                    found.add((importer, target))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_contract_covers_every_package():
    """A new app must be placed in a layer (and be a root package) before it can be imported."""
    packages = _packages_on_disk()
    roots = set(_lines(_contract()["importlinter"]["root_packages"]))
    layered = [name for layer in _layers() for name in layer]
    assert roots == packages
    assert sorted(layered) == sorted(packages)  # each exactly once
    assert {"portal", "staff", "zenzefi"} <= packages


def test_import_linter_contract_is_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    configuration.configure()  # what the lint-imports command does first
    kept = lint_imports(config_filename=str(CONFIG), cache_dir=None, no_logo=True)
    assert kept, "the import contract is broken: run `lint-imports` for the imports that break it"


def test_every_import_between_apps_points_down():
    """The same rule, read from the source without import-linter: every import from one
    top-level package to another goes to a lower layer (siblings in a layer import nothing of
    each other), apart from the edges the contract lists."""
    rank = {name: index for index, layer in enumerate(_layers()) for name in layer}  # 0 = top
    pairs, wholly = _ignored()
    upward = []
    for importer, imported in sorted(_imports()):
        if _top(importer) == _top(imported) or importer in wholly or (importer, imported) in pairs:
            continue
        if rank[_top(importer)] >= rank[_top(imported)]:
            upward.append(f"{importer} -> {imported}")
    assert upward == []


def test_no_cycle_between_apps():
    """The app graph (lazy imports included, the wiring and the listed edges left out) has no
    cycle: a topological sort consumes every package."""
    pairs, wholly = _ignored()
    edges: dict[str, set[str]] = {name: set() for name in _packages_on_disk()}
    for importer, imported in _imports():
        if _top(importer) != _top(imported) and importer not in wholly and (importer, imported) not in pairs:
            edges[_top(importer)].add(_top(imported))
    remaining = dict(edges)
    while remaining:
        leaves = [name for name, targets in remaining.items() if not targets & remaining.keys()]
        assert leaves, f"import cycle among {sorted(remaining)}"
        for name in leaves:
            del remaining[name]


def test_listed_exceptions_still_exist():
    """Each upward edge the contract tolerates is a real import today: once the change named
    next to it removes the import, the line must go too (import-linter fails on it as well)."""
    pairs, _ = _ignored()
    assert pairs <= _imports(), sorted(pairs - _imports())


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The source reader counts an import inside a function (the kind that hid today's cycles)."""
    imports = _imports()
    assert ("payments.deposits", "referrals.services") in imports  # module level
    assert ("tokens.events", "webhooks.services") in imports  # inside a function


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("analytics.tasks.refresh_gauges", "monitoring.tasks.refresh_gauges"),
        ("monitoring.tasks.run_health_checks", "monitoring.tasks.run_health_checks"),
    ],
)
def test_moved_jobs_keep_their_celery_names(path, name):
    """Beat rows store the task's registered name: a task moved to another app keeps it."""
    from django.utils.module_loading import import_string

    assert import_string(path).name == name


@pytest.mark.parametrize(
    ("name", "kwargs", "path", "module"),
    [
        ("accounts:landing", {}, "/", "portal.views"),
        ("accounts:dashboard", {}, "/account/", "portal.views"),
        ("accounts:profile", {}, "/account/profile/", "portal.views"),
        ("admin-users", {}, "/api/v1/admin/users", "staff.admin_api"),
        ("rate-limit-bans", {}, "/admin/rate-limit-bans/", "staff.views"),
        ("tokens-revoke", {"token_id": 7}, "/api/v1/tokens/7", "renewals.api"),
        ("metrics", {}, "/metrics", "analytics.metrics_export"),
        ("health", {}, "/health", "monitoring.views"),
    ],
)
def test_moved_views_keep_their_addresses_and_names(name, kwargs, path, module):
    from django.urls import resolve, reverse

    assert reverse(name, kwargs=kwargs) == path
    assert resolve(path).func.__module__ == module


def test_user_admin_is_registered_from_the_staff_app():
    from django.contrib import admin

    from accounts.models import User

    assert type(admin.site._registry[User]).__module__ == "staff.admin"
    assert admin.site._registry[User].opts.app_label == "accounts"  # admin URLs and permissions unchanged
