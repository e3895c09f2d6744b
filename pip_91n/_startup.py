"""Interpreter start-up entry point, named by ``pip_91n.pth`` and ``pip_91n.start``.

This runs in every Python process of an environment where pip-91n is installed, so it
follows strict rules: standard library only (builtins, in fact), no work at import time,
returns in microseconds, never raises, never writes to stdout, at most one line to stderr
on a fault, and idempotent. ``PIP_91N_DISABLE=1`` turns it into a no-op.

All it does is register a post-import hook (``pip_91n._importhook``) on
``pip._internal.network.session``: the first time a process imports pip's network session
module, ``pip_91n.hook.patch:apply`` (named, like this function in ``pip_91n.start``, and
imported only then) checks pip's structure and patches it. Processes that never import pip
pay for two small module imports and one dict lookup per import.
"""

import os

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PATCH", "SESSION_MODULE", "disabled", "init"]

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


def disable_unclear(environ: "Mapping[str, str]") -> str | None:
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
        from pip_91n._importhook import register

        register(SESSION_MODULE, PATCH)
    except Exception as exc:  # never break the interpreter
        try:
            import sys

            sys.stderr.write(f"pip-91n: start-up hook failed ({type(exc).__name__}: {exc}); pip is left as is\n")
        except Exception:
            pass
