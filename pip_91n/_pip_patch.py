"""The one module that touches ``pip._internal``: a verified, reversible patch of PipSession.

``apply(module)`` runs from the post-import hook on ``pip._internal.network.session``:

1. it checks the structure it relies on: ``PipSession`` is a requests ``Session`` whose
   ``__init__`` takes ``retries``, ``cache``, ``trusted_hosts`` and ``index_urls``, and pip's
   vendored requests has ``BaseAdapter.send(request, stream, timeout, verify, cert,
   proxies)``, ``Response`` and ``CaseInsensitiveDict`` (true from pip 23.x to 26.x);
2. it loads the pip-91n configuration (a broken one: one stderr line, pip stays stock);
3. it imports what serving pages and small files needs (``PREIMPORT``), now, before pip
   starts installing (pip 26.1+ warns about, and 26.3 refuses, imports after that point);
4. it wraps ``PipSession.__init__``: after pip mounted its own adapters (HTTP cache,
   truststore TLS, ``--trusted-host``, ``file://``), a ``ChainAdapter`` is mounted for the
   origins of pypi.org, files.pythonhosted.org and each chain mirror. It serves what the
   chain owns and hands every other request on that origin to the adapter pip had mounted.

Any mismatch or fault leaves pip unpatched, with one line on stderr. ``unpatch()`` undoes it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from pip_91n._importhook import report
from pip_91n._startup import SESSION_MODULE, disabled

__all__ = ["MARKER", "apply", "check", "mount_prefixes", "state", "unpatch"]

#: Set on ``PipSession`` while patched.
MARKER = "_pip_91n_patched"
_INIT_PARAMS = frozenset({"retries", "cache", "trusted_hosts", "index_urls"})
_SEND_PARAMS = ("self", "request", "stream", "timeout", "verify", "cert", "proxies")
_PYPI_ORIGINS = ("https://pypi.org/", "https://files.pythonhosted.org/",
                 "https://pypi.python.org/")
#: Imported when the shim is built, so that serving a page or a small file never imports
#: once pip installs (pip 26.1+ audits, and 26.3 blocks, imports from that point: pip's
#: version check still asks for a page then). None of it is httpx: the chain reaches the
#: mirrors over pip's own pools. Left to first use, which is always while pip resolves and
#: downloads: httpx and the download engine (large, resumed or failed-over files) and
#: ``packaging`` (exact pins).
PREIMPORT = (
    "pip_91n._pip_adapter", "pip_91n._pip_body", "pip_91n._pip_pool", "pip_91n.failover",
    "pip_91n._attempt", "pip_91n.wire",
    "pip_91n.download", "pip_91n.download_http", "pip_91n.partials",
    "pip_91n.segments", "pip_91n.filelock", "pip_91n._statefile", "pip_91n._workers",
    "pip_91n.staleness", "pip_91n.pages", "pip_91n.known_files", "pip_91n.ranking",
    "pip_91n.health", "pip_91n.requestlog", "pip_91n.routing", "encodings.idna",
)

_lock = threading.RLock()
_state: dict[str, Any] = {}
_sessions: weakref.WeakSet[Any] = weakref.WeakSet()
_warned = False


def _warn(message: str) -> None:
    """At most one stderr line per process."""
    global _warned
    if not _warned:
        _warned = True
        report(message)


def state() -> dict[str, Any]:
    """What happened: ``patched`` (bool), ``reason`` (why not), ``chain`` (names)."""
    with _lock:
        out = {"patched": bool(_state.get("cls") is not None), "reason": _state.get("reason")}
        shim = _state.get("shim")
        if shim is not None:
            out["chain"] = [m.name for m in shim.chain]
        return out


def check(module: Any) -> str | None:
    """None when pip's structure is the one this patch knows, else what differs."""
    cls: Any = getattr(module, "PipSession", None)
    if not inspect.isclass(cls):
        return "no PipSession class"
    sessions = importlib.import_module("pip._vendor.requests.sessions")
    if sessions.Session not in cls.__mro__:
        return "PipSession is not a requests Session"
    try:
        params = set(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return "PipSession.__init__ has no signature"
    missing = _INIT_PARAMS - params
    if missing:
        return f"PipSession.__init__ lacks {', '.join(sorted(missing))}"
    for name in ("mount", "get_adapter", "send"):
        if not callable(getattr(cls, name, None)):
            return f"PipSession.{name} is missing"
    adapters = importlib.import_module("pip._vendor.requests.adapters")
    base: Any = getattr(adapters, "BaseAdapter", None)
    if not inspect.isclass(base):
        return "requests.adapters.BaseAdapter is missing"
    send = tuple(inspect.signature(getattr(base, "send")).parameters)  # noqa: B009
    if send != _SEND_PARAMS:
        return f"BaseAdapter.send{send} differs"
    http: Any = getattr(adapters, "HTTPAdapter", None)
    if not inspect.isclass(http) or not all(
            callable(getattr(http, n, None)) for n in ("send", "build_response")):
        return "requests.adapters.HTTPAdapter is missing"
    models = importlib.import_module("pip._vendor.requests.models")
    structures = importlib.import_module("pip._vendor.requests.structures")
    if not isinstance(getattr(models, "Response", None), type) or not isinstance(
            getattr(structures, "CaseInsensitiveDict", None), type):
        return "requests Response/CaseInsensitiveDict missing"
    return None


def _pip_version() -> str:
    with contextlib.suppress(Exception):
        return str(importlib.import_module("pip").__version__)
    return "?"


def _preimport(names: Iterable[str] = PREIMPORT) -> None:
    for name in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _quiet_loggers() -> None:
    """pip sends INFO records of every logger to stdout: httpx's per-request lines and the
    chain's own notes must not appear there (``PIP_91N_LOG`` is the place for them)."""
    import logging

    for name in ("httpx", "httpcore", "pip_91n"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def apply(module: Any = None) -> bool:
    """Patch pip's session module (default: import it). True when patched; never raises."""
    try:
        with _lock:
            return _apply(module)
    except Exception as exc:
        _state["reason"] = f"internal error: {exc!r}"
        _warn(f"could not patch pip ({exc!r}); pip runs without the mirror chain")
        return False


def _apply(module: Any) -> bool:
    if module is None:
        module = importlib.import_module(SESSION_MODULE)
    if _state.get("cls") is not None:
        return True
    if disabled():
        _state["reason"] = "PIP_91N_DISABLE is set"
        return False
    reason = check(module)
    if reason is not None:
        _state["reason"] = f"unknown pip structure: {reason}"
        _warn(f"pip {_pip_version()} has an unknown structure ({reason}); "
              "pip runs without the mirror chain")
        return False
    cls = module.PipSession
    original = cls.__dict__.get("__init__", cls.__init__)

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _mount(self)

    cls.__init__ = __init__
    setattr(cls, MARKER, True)
    _state.update(cls=cls, init=original, reason=None)
    _patch_finder()
    return True


def _prepare() -> Any:
    """At the first PipSession (pip commands without network never get here): load the
    configuration, import everything the shim needs, build the shim. None, and pip
    unpatched, when the configuration is broken or disables pip-91n."""
    from pip_91n.config import load_config
    from pip_91n.errors import ConfigError

    try:
        config = load_config()
    except ConfigError as exc:
        _state["failed"] = f"configuration error: {exc}"
        _warn(f"{exc}; pip runs without the mirror chain")
        return None
    if config.disabled:
        _state["failed"] = "disabled by configuration"
        return None
    _preimport()
    _quiet_loggers()
    from pip_91n._pip_adapter import ChainShim, make_adapter_class
    from pip_91n._pip_pool import PipPool
    from pip_91n.ranking import resolve_chain

    adapters = importlib.import_module("pip._vendor.requests.adapters")
    models = importlib.import_module("pip._vendor.requests.models")
    structures = importlib.import_module("pip._vendor.requests.structures")
    exceptions = importlib.import_module("pip._vendor.urllib3.exceptions")
    _state["adapter_cls"] = make_adapter_class(
        adapters.BaseAdapter, models.Response, structures.CaseInsensitiveDict,
        lambda url, msg: exceptions.ReadTimeoutError(None, url, msg))
    _state["config"] = config
    pool = _state["pool"] = PipPool(adapters.HTTPAdapter, models.PreparedRequest,
                                    structures.CaseInsensitiveDict)
    return ChainShim(config, resolve_chain(config), pool, stream_from=_stream_from())


def mount_prefixes(chain: Sequence[Any], trusted: Iterable[tuple[str, int | None]] = ()
                   ) -> list[str]:
    """The origins the adapter is mounted on (``scheme://host[:port]/``), minus the hosts
    the user marked ``--trusted-host`` (those stay pip's)."""
    trusted = set(trusted)
    out: list[str] = []
    for url in (*_PYPI_ORIGINS, *(p for m in chain for p in m.prefixes)):
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or (host, parts.port) in trusted or (host, None) in trusted:
            continue
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        out.append(f"{parts.scheme.lower()}://{netloc}/")
    return list(dict.fromkeys(out))


def _stream_from() -> int | None:
    """Stream large files only to pips that resume a broken download themselves (>= 25.2):
    older ones get every file whole and verified."""
    from pip_91n._pip_body import BUFFER_MAX

    return BUFFER_MAX if _release(_pip_version()) >= (25, 2) else None


def _release(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version (``"25.2.dev0"`` -> ``(25, 2)``; ``()`` when
    it starts with none): enough to compare pip versions without ``packaging``."""
    import re

    m = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(n) for n in m.group().split(".")) if m else ()


def _shim() -> Any:
    with _lock:
        if "shim" not in _state and "failed" not in _state:
            _state["shim"] = _prepare()
            if _state["shim"] is None:
                _state.pop("shim")
        return _state.get("shim")


def _mount(session: Any) -> None:
    try:
        shim = _shim()
        if shim is None:
            reason = _state.get("failed")
            unpatch()
            _state["reason"] = reason
            return
        trusted = getattr(session, "pip_trusted_origins", ())
        prefixes = mount_prefixes(shim.chain, trusted)
        adapter = _state["adapter_cls"](shim, dict(session.adapters))
        _state["pool"].bind(session, adapter.pip_adapter)  # the chain sends over its pools
        for prefix in prefixes:
            session.mount(prefix, adapter)
        session._pip_91n_prefixes = prefixes
        _sessions.add(session)
    except Exception as exc:
        _warn(f"could not route pip through the mirror chain ({exc!r}); pip runs as is")


def _unmount(session: Any) -> None:
    for prefix in getattr(session, "_pip_91n_prefixes", ()):
        adapter = session.adapters.get(prefix)
        if adapter is not None and hasattr(adapter, "shim"):
            del session.adapters[prefix]
    session._pip_91n_prefixes = []


# -- exact pins (principle 6): tell the chain which version pip is looking for -------------

def _patch_finder() -> None:
    """Wrap ``PackageFinder.find_best_candidate`` (when its signature is the known one) to
    note ``name==version`` pins, so a lagging mirror's page without that version is not
    served while another mirror may have it. Registered as a post-import hook."""
    from pip_91n._importhook import register

    register("pip._internal.index.package_finder", _wrap_finder)


def _wrap_finder(module: Any) -> None:
    cls: Any = getattr(module, "PackageFinder", None)
    if not inspect.isclass(cls) or _state.get("cls") is None:
        return
    method = cls.__dict__.get("find_best_candidate")
    if method is None or getattr(method, MARKER, False):
        return
    params = tuple(inspect.signature(method).parameters)[:3]
    if params != ("self", "project_name", "specifier"):
        return  # unknown shape: no pin hints, everything else still works

    @functools.wraps(method)
    def find_best_candidate(self: Any, project_name: str, specifier: Any = None,
                            *args: Any, **kwargs: Any) -> Any:
        _note_pin(project_name, specifier)
        return method(self, project_name, specifier, *args, **kwargs)

    setattr(find_best_candidate, MARKER, True)
    setattr(cls, "find_best_candidate", find_best_candidate)  # noqa: B010
    _state["finder"] = (cls, method)


def _note_pin(project: str, specifier: Any) -> None:
    try:
        specs = list(specifier or ())
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            from pip_91n.routing import normalize_name

            shim = _state.get("shim")
            if shim is not None:
                shim.note_pin(normalize_name(project), specs[0].version)
    except Exception:  # a hint only
        return


def unpatch() -> bool:
    """Undo ``apply``: restore ``PipSession.__init__`` (and the finder), unmount the adapter
    from live sessions. True when something was undone."""
    with _lock:
        cls = _state.pop("cls", None)
        if cls is None:
            return False
        cls.__init__ = _state.pop("init")
        with contextlib.suppress(AttributeError):
            delattr(cls, MARKER)
        finder = _state.pop("finder", None)
        if finder is not None:
            setattr(finder[0], "find_best_candidate", finder[1])  # noqa: B010
        from pip_91n._importhook import unregister

        unregister("pip._internal.index.package_finder")
        for session in list(_sessions):
            _unmount(session)
        _sessions.clear()
        _state.pop("failed", None)
        _state.pop("pool", None)
        shim = _state.pop("shim", None)
        if shim is not None:
            with contextlib.suppress(Exception):
                shim.close()
        _state["reason"] = "unpatched"
        return True

