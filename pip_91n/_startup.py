"""Interpreter start-up entry point, named by ``pip_91n.pth`` and ``pip_91n.start``.

This runs in every Python process of an environment where pip-91n is installed, so it
follows strict rules: standard library only (builtins, in fact), no work at import time,
returns in microseconds, never raises, never writes to stdout, at most one line to stderr
on a fault, and idempotent. ``PIP_91N_DISABLE=1`` turns it into a no-op.

All it does is register a post-import hook (``pip_91n._importhook``) on
``pip._internal.network.session``: the first time a process imports pip's network session
module, ``pip_91n._pip_patch.apply`` checks pip's structure and patches it. Processes that
never import pip pay for two small module imports and one dict lookup per import.
"""

import os

__all__ = ["SESSION_MODULE", "disabled", "init"]

#: The pip module whose import triggers the patch.
SESSION_MODULE = "pip._internal.network.session"

_initialized = False


def disabled() -> bool:
    """Whether ``PIP_91N_DISABLE`` asks for stock pip."""
    return os.environ.get("PIP_91N_DISABLE", "").strip().lower() in {"1", "true", "yes", "on"}


def _on_session_module(module: object) -> None:
    from pip_91n._pip_patch import apply

    apply(module)


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

        register(SESSION_MODULE, _on_session_module)
    except Exception as exc:  # never break the interpreter
        try:
            import sys

            sys.stderr.write(f"pip-91n: start-up hook failed ({exc!r}); pip is left as is\n")
        except Exception:
            pass
