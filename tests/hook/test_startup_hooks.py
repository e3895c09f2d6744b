"""``pip_91n._startup``: the post-import hooks and ``init`` (in-process and plain subprocesses)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pip_91n import _startup
from tests.harness.venvs import REPO


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for throwaway modules; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("p91n_t_"):
            del sys.modules[name]
            _startup.unregister(name)


def _module(d: Path, name: str, body: str = "VALUE = 1\n") -> str:
    (d / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return name


def test_hook_runs_after_the_module_ran_once(modules: Path) -> None:
    name = _module(modules, "p91n_t_before")
    seen: list[ModuleType] = []
    _startup.register(name, seen.append)
    assert _startup.pending(name) == 1 and seen == []
    mod = __import__(name)
    assert seen == [mod] and mod.VALUE == 1
    assert _startup.pending(name) == 0  # popped once fired
    assert mod.__loader__.__class__.__name__ != "_Loader"  # the real loader is back
    del sys.modules[name]
    __import__(name)
    assert len(seen) == 1


def test_hook_registered_after_import_runs_at_once(modules: Path) -> None:
    name = _module(modules, "p91n_t_after")
    mod = __import__(name)
    seen: list[ModuleType] = []
    _startup.register(name, seen.append)
    assert seen == [mod]


def test_a_raising_hook_never_fails_the_import(modules: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    name = _module(modules, "p91n_t_raise")
    calls: list[str] = []

    def broken(module: ModuleType) -> None:
        raise RuntimeError("boom")

    _startup.register(name, broken)
    _startup.register(name, lambda m: calls.append(m.__name__))
    mod = __import__(name)
    assert mod.VALUE == 1 and calls == [name]
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("pip-91n: ") and "boom" in err


def test_hooks_may_import_hooked_modules_without_deadlock(modules: Path) -> None:
    first = _module(modules, "p91n_t_first")
    second = _module(modules, "p91n_t_second")
    order: list[str] = []
    _startup.register(second, lambda m: order.append(m.__name__))
    _startup.register(first, lambda m: (order.append(m.__name__), __import__(second)))
    done = threading.Event()

    def run() -> None:
        __import__(first)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(10)
    assert order == [first, second]


def test_a_failing_module_keeps_its_hook_for_the_next_try(modules: Path) -> None:
    name = _module(modules, "p91n_t_fails", "raise ImportError('not yet')\n")
    seen: list[ModuleType] = []
    _startup.register(name, seen.append)
    with pytest.raises(ImportError):
        __import__(name)
    assert _startup.pending(name) == 1 and seen == []
    _module(modules, name)
    sys.modules.pop(name, None)
    import importlib

    importlib.invalidate_caches()
    __import__(name)
    assert len(seen) == 1


def _startup_probe(env_extra: dict[str, str]) -> list[str]:
    code = (
        "import sys\n"
        "import pip_91n._startup as s\n"
        "s.init(); s.init()\n"
        "print(s.pending('pip._internal.network.session'),\n"
        "      sum(type(f).__name__ == '_Finder' for f in sys.meta_path),\n"
        "      'pip' in sys.modules, 'typing' in sys.modules, 'threading' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env_extra}
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, cwd=REPO)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.split()


def test_init_registers_once_and_imports_nothing_heavy() -> None:
    assert _startup_probe({}) == ["1", "1", "False", "False", "False"]


def test_init_does_nothing_when_disabled() -> None:
    assert _startup_probe({"PIP_91N_DISABLE": "1"}) == ["0", "0", "False", "False", "False"]
