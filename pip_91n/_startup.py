"""Interpreter start-up entry point, named by ``pip_91n.pth`` and ``pip_91n.start``, and the
post-import hooks it registers.

This runs in every Python process of an environment where pip-91n is installed, so it
follows strict rules: standard library only (builtins, in fact: not even ``__future__``, the
annotations that need it are strings), no work at import time, returns in microseconds,
never raises, never writes to stdout, at most one line to stderr on a fault, and idempotent.
``PIP_91N_DISABLE=1`` turns it into a no-op. It is one module on purpose: each module
imported at start-up costs every Python process of the environment about 0.1 ms.

``init()`` registers a post-import hook on ``pip._internal.network.session``: the first time
a process imports pip's network session module, ``pip_91n.hook.patch:apply`` (named, like
``init`` in ``pip_91n.start``, and imported only then) checks pip's structure and patches it.
Processes that never import pip pay for two small module imports and one dict lookup per
import.

Post-import hooks, modelled on wrapt's ``importer.py``: ``register(name, hook)`` runs
``hook(module)`` right after ``name`` has been imported (at once if it already is). ``hook``
is a callable, or its name as ``"package.module:function"`` (imported only when it fires, so
registering costs no import). A meta-path finder, put at the front of ``sys.meta_path`` once,
answers only for module names with pending hooks: it asks the other finders for the real
spec and wraps its loader so that the hooks run after the module's code. Rules:

- hooks run outside this module's lock (no deadlock when a hook imports);
- hooks are popped once they fired, so each runs once;
- every hook is wrapped: an exception in it is reported in one line on stderr and never
  fails the import of the module (wrapt's own warning: a raising hook breaks the import);
- a thread-local guard keeps the finder from recursing into itself.
"""

import _thread
import os
import sys

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

    Hook = Callable[[ModuleType], None] | str

__all__ = ["PATCH", "SESSION_MODULE", "disabled", "init", "pending", "register", "report",
           "unregister"]

#: The pip module whose import triggers the patch.
SESSION_MODULE = "pip._internal.network.session"
#: What patches it, as ``module:function``.
PATCH = "pip_91n.hook.patch:apply"

_initialized = False


def disabled(environ: "Mapping[str, str] | None" = None) -> bool:
    """Whether ``PIP_91N_DISABLE`` (in ``environ``, default ``os.environ``) asks for stock
    pip: ``1``, ``true``, ``yes`` or ``on``, in any case."""
    value = (os.environ if environ is None else environ).get("PIP_91N_DISABLE", "")
    return value.strip().lower() in _ON


def disable_unclear(environ: "Mapping[str, str]") -> "str | None":
    """The ``PIP_91N_DISABLE`` value when it is neither on nor off (the hook stays on)."""
    value = environ.get("PIP_91N_DISABLE", "")
    return value if value.strip().lower() not in _ON | _OFF else None


_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})


def init() -> None:
    """Set up pip-91n for this interpreter (idempotent; never raises)."""
    global _initialized
    try:
        if _initialized:
            return
        _initialized = True
        if disabled():
            return
        register(SESSION_MODULE, PATCH)
    except Exception as exc:  # never break the interpreter
        report(f"start-up hook failed ({type(exc).__name__}: {exc}); pip is left as is")


# -- post-import hooks ----------------------------------------------------------------------

_lock = _thread.RLock()
_hooks: "dict[str, list[Hook]]" = {}
_finder: "_Finder | None" = None
_guard = _thread._local()


def report(message: str) -> None:
    """Write one ``pip-91n:`` line to stderr; never raises."""
    try:
        stream = sys.stderr
        if stream is not None:
            stream.write(f"pip-91n: {message}\n")
            stream.flush()
    except Exception:  # pragma: no cover - a closed or broken stderr
        pass


def _resolve(hook: "Hook") -> "Callable[[ModuleType], None]":
    if not isinstance(hook, str):
        return hook
    module_name, _, attr = hook.partition(":")
    module = __import__(module_name, fromlist=[attr])
    fn: Callable[[ModuleType], None] = getattr(module, attr)
    return fn


def _run(hook: "Hook", module: "ModuleType") -> None:
    try:
        _resolve(hook)(module)
    except Exception as exc:
        name = hook if isinstance(hook, str) else getattr(hook, "__qualname__", repr(hook))
        report(f"post-import hook {name} for {module.__name__} failed ({type(exc).__name__}: {exc}); ignored")


def _fire(module: "ModuleType") -> None:
    with _lock:
        hooks = _hooks.pop(module.__name__, [])
    for hook in hooks:  # outside the lock
        _run(hook, module)


def pending(name: str) -> int:
    """How many hooks wait for ``name`` (for tests and ``pip-91n status``)."""
    with _lock:
        return len(_hooks.get(name, ()))


def register(name: str, hook: "Hook") -> None:
    """Run ``hook(module)`` once ``name`` is imported (now, if it already is)."""
    global _finder
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _hooks.setdefault(name, []).append(hook)
            if _finder is None:
                _finder = _Finder()
                sys.meta_path.insert(0, _finder)
            return
    _run(hook, module)


def unregister(name: str) -> None:
    """Drop the hooks still waiting for ``name``."""
    with _lock:
        _hooks.pop(name, None)


class _Loader:
    """Wraps the real loader: runs the module, then its post-import hooks."""

    def __init__(self, loader: "Any") -> None:
        self.loader = loader

    def create_module(self, spec: "ModuleSpec") -> "ModuleType | None":
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: "ModuleType") -> None:
        # Put the real loader back before the module's code sees it.
        module.__loader__ = self.loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        self.loader.exec_module(module)
        _fire(sys.modules.get(module.__name__, module))


class _Finder:
    """Front of ``sys.meta_path``: answers only for modules with pending hooks."""

    def find_spec(
        self, fullname: str, path: "Sequence[str] | None" = None,
        target: "ModuleType | None" = None,
    ) -> "ModuleSpec | None":
        if fullname not in _hooks:  # unlocked peek: the common case costs one dict lookup
            return None
        busy: set[str] | None = getattr(_guard, "names", None)
        if busy is None:
            busy = _guard.names = set()
        if fullname in busy:
            return None
        busy.add(fullname)
        try:
            for finder in list(sys.meta_path):
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec: ModuleSpec | None = find(fullname, path, target)
                if spec is None:
                    continue
                loader = spec.loader
                if loader is not None and hasattr(loader, "exec_module"):
                    spec.loader = _Loader(loader)  # type: ignore[assignment]
                return spec
            return None
        finally:
            busy.discard(fullname)
