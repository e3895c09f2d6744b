"""The layout is what the docs say: every module named in a string exists and defines the name,
modules stay small, imports flow downhill between the wings, and no two modules import each
other."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

from tests.harness.venvs import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Wings of pip_91n, bottom to top; a module may import its own wing and the ones below.
FLOORS = {
    "pip_91n": 0, "pip_91n.errors": 0, "pip_91n._urls": 0, "pip_91n.filelock": 0,
    "pip_91n._statefile": 0, "pip_91n._startup": 0,
    "pip_91n.settings": 1, "pip_91n.index": 2, "pip_91n.net": 2, "pip_91n.downloads": 3,
    "pip_91n.chain": 4, "pip_91n.hook": 5, "pip_91n.serve": 5, "pip_91n.cli": 5,
    "pip_91n.__main__": 6,
}
MAX_LINES = 400


def _source_modules(package: str) -> dict[str, Path]:
    root = REPO / package
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _named_by_strings() -> list[str]:
    """``module:attr`` (or ``module``) for every module name the product spells as a string."""
    from oss_runtime import _LAZY as OSS_LAZY
    from pip_91n import _LAZY as PIP_LAZY
    from pip_91n import _startup
    from pip_91n.cli.parser import COMMANDS
    from pip_91n.downloads import _LAZY as DOWNLOADS_LAZY
    from pip_91n.hook.patch import PREIMPORT

    names = [f"{module}:{name}" for name, module in
             [*PIP_LAZY.items(), *DOWNLOADS_LAZY.items(), *OSS_LAZY.items()]]
    names += [f"{module}:run" for module, _ in COMMANDS.values()]
    names += [m for m in PREIMPORT if m.startswith("pip_91n")]
    names.append(_startup.PATCH)
    names.append((REPO / "pip_91n.start").read_text().strip())
    pth = (REPO / "pip_91n.pth").read_text()
    names += re.findall(r"import (pip_91n[\w.]*)", pth)
    with (REPO / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    names += list(project["scripts"].values())
    return names


def test_every_module_named_in_a_string_imports_and_has_the_name() -> None:
    names = _named_by_strings()
    assert len(names) > 60
    for spec in names:
        module, _, attr = spec.partition(":")
        mod = importlib.import_module(module)
        if attr:
            assert callable(getattr(mod, attr)) or getattr(mod, attr) is not None, spec


def test_lazy_names_are_exactly_the_public_names() -> None:
    import oss_runtime
    import pip_91n
    import pip_91n.downloads

    assert set(pip_91n.__all__) == {"__version__", *pip_91n._LAZY}
    assert set(pip_91n.downloads.__all__) == set(pip_91n.downloads._LAZY)
    assert set(oss_runtime.__all__) == {"__version__", *oss_runtime._LAZY}


@pytest.mark.parametrize("package", ["pip_91n", "oss_runtime"])
def test_modules_stay_small(package: str) -> None:
    big = {name: n for name, path in _source_modules(package).items()
           if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, at module level or in functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                found.add(t)
    return found


def _floor(module: str) -> int:
    while module not in FLOORS:
        module = module.rpartition(".")[0]
    return FLOORS[module]


def test_pip_91n_imports_flow_down_the_wings() -> None:
    modules = _source_modules("pip_91n")
    upward = []
    for name, path in modules.items():
        for target in _imports(name, path, set(modules)):
            if _floor(target) > _floor(name):
                upward.append(f"{name} -> {target}")
    assert not upward, "imports up the wings: " + ", ".join(sorted(upward))


@pytest.mark.parametrize("package", ["pip_91n", "oss_runtime"])
def test_no_two_modules_import_each_other(package: str) -> None:
    modules = _source_modules(package)
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a in graph.get(b, set())})
    assert not pairs, f"modules importing each other: {pairs}"


def test_one_import_style() -> None:
    """Both packages import their own modules by absolute name."""
    relative = [str(p.relative_to(REPO)) for pkg in ("pip_91n", "oss_runtime")
                for p in (REPO / pkg).rglob("*.py")
                if re.search(r"^\s*from \.", p.read_text(), re.M)]
    assert not relative, f"relative imports in {relative}"


def test_oss_runtime_uses_only_public_pip_91n_names() -> None:
    """oss_runtime imports pip_91n through public modules and names, never a ``_private`` one."""
    private = []
    for path in (REPO / "oss_runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pip_91n"):
                names = [*(node.module or "").split("."), *(a.name for a in node.names)]
                if any(n.startswith("_") for n in names):
                    private.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not private, f"private pip_91n names imported in {private}"
