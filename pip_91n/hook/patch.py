"""The one module that touches ``pip._internal``: a verified, reversible patch of PipSession.

``apply(module)`` runs from the post-import hook on ``pip._internal.network.session``
(``pip_91n._startup`` names it as ``pip_91n.hook.patch:apply``):

1. it checks the structure it relies on: ``PipSession`` is a requests ``Session`` whose
   ``__init__`` takes ``retries``, ``cache``, ``trusted_hosts`` and ``index_urls``, and pip's
   vendored requests has ``BaseAdapter.send(request, stream, timeout, verify, cert,
   proxies)``, ``Response`` and ``CaseInsensitiveDict`` (true from pip 23.x to 26.x);
2. it wraps ``PipSession.__init__``: after pip mounted its own adapters (HTTP cache,
   truststore TLS, ``--trusted-host``, ``file://``), a ``ChainAdapter`` is mounted for the
   origins of pypi.org, files.pythonhosted.org and each chain mirror. It serves what the
   chain owns (files through pip's HTTP cache) and hands every other request on that origin
   to the adapter pip had mounted;
3. at the first session it loads the pip-91n configuration (a broken one: one stderr line,
   pip stays stock) and imports what serving pages and small files needs (``PREIMPORT``),
   before pip starts installing (pip 26.1+ warns about, and 26.3 refuses, imports after that
   point).

The originals are captured once, in a typed record, and ``unpatch()`` puts them back. Any
mismatch or fault leaves pip unpatched, with one line on stderr.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from pip_91n._startup import SESSION_MODULE, disabled, register, report, unregister

if TYPE_CHECKING:
    from pip_91n.hook.pool import PipPool
    from pip_91n.hook.shim import ChainShim

__all__ = ["MARKER", "PREIMPORT", "PatchState", "apply", "check", "reset", "state", "unpatch"]

#: Set on ``PipSession`` while patched.
MARKER = "_pip_91n_patched"
FINDER_MODULE = "pip._internal.index.package_finder"
_INIT_PARAMS = frozenset({"retries", "cache", "trusted_hosts", "index_urls"})
_SEND_PARAMS = ("self", "request", "stream", "timeout", "verify", "cert", "proxies")
#: Imported when the shim is built, so that serving a page or a small file never imports
#: once pip installs (pip 26.1+ audits, and 26.3 blocks, imports from that point: pip's
#: version check still asks for a page then). None of it is httpx: the chain reaches the
#: mirrors over pip's own pools, and so does the download engine. Left to first use, which
#: is always while pip resolves and downloads: the download engine (large, resumed or
#: failed-over files) and ``packaging`` (exact pins).
PREIMPORT = (
    "pip_91n.hook.adapter", "pip_91n.hook.bodies", "pip_91n.hook.pool", "pip_91n.hook.shim",
    "pip_91n.chain.agreement", "pip_91n.chain.attempt", "pip_91n.chain.failover",
    "pip_91n.chain.health", "pip_91n.chain.memory", "pip_91n.chain.quorum",
    "pip_91n.chain.ranking", "pip_91n.chain.requestlog", "pip_91n.chain.session",
    "pip_91n.chain.workers",
    "pip_91n.downloads.api", "pip_91n.downloads.small", "pip_91n.downloads.files", "pip_91n.downloads.options",
    "pip_91n.downloads.partials", "pip_91n.downloads.resume", "pip_91n.downloads.segments",
    "pip_91n.index.pages", "pip_91n.index.routing", "pip_91n.index.staleness",
    "pip_91n.net.wire", "pip_91n.filelock", "pip_91n._statefile", "encodings.idna",
)


class PatchState(NamedTuple):
    """What the patch did in this process: ``patched``, else ``reason``; the chain's names."""

    patched: bool
    reason: str | None
    chain: tuple[str, ...] = ()


class _Originals:
    """What ``apply`` replaced, captured once, for ``unpatch``. (Plain slotted classes here:
    a dataclass costs every pip process about half a millisecond to create.)"""

    __slots__ = ("finder", "session_cls", "session_init")

    def __init__(self, session_cls: Any, session_init: Callable[..., None]) -> None:
        self.session_cls = session_cls
        self.session_init = session_init
        self.finder: tuple[Any, Any] | None = None  # (PackageFinder, find_best_candidate)


class _State:
    """What the patch did and holds in this process."""

    __slots__ = ("adapter_cls", "failed", "originals", "pool", "reason", "shim", "warned")

    def __init__(self) -> None:
        self.originals: _Originals | None = None  # set while patched
        self.reason: str | None = None  # why pip is not patched
        self.failed: str | None = None  # why the shim could not be built (pip stays stock)
        self.shim: ChainShim | None = None
        self.adapter_cls: type | None = None
        self.pool: PipPool | None = None
        self.warned = False


_lock = threading.RLock()
_state = _State()
_sessions: weakref.WeakSet[Any] = weakref.WeakSet()


def _warn(message: str) -> None:
    """At most one stderr line per process."""
    if not _state.warned:
        _state.warned = True
        report(message)


def state() -> PatchState:
    """What happened in this process (for ``pip-91n status`` and ``doctor``)."""
    with _lock:
        shim = _state.shim
        return PatchState(_state.originals is not None, _state.reason,
                          tuple(m.name for m in shim.chain) if shim is not None else ())


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
    raw = getattr(importlib.import_module("pip._vendor.urllib3.response"), "HTTPResponse", None)
    if not isinstance(raw, type):
        return "urllib3 HTTPResponse is missing"
    return None


def pip_version() -> str:
    """The running pip's version (``?`` when it cannot tell)."""
    with contextlib.suppress(Exception):
        return str(importlib.import_module("pip").__version__)
    return "?"


def release(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version (``"25.2.dev0"`` -> ``(25, 2)``; ``()`` when
    it starts with none): enough to compare pip versions without ``packaging``."""
    import re

    m = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(n) for n in m.group().split(".")) if m else ()


def apply(module: Any = None) -> bool:
    """Patch pip's session module (default: import it). True when patched; never raises."""
    try:
        with _lock:
            return _apply(module)
    except Exception as exc:
        _state.reason = f"internal error: {type(exc).__name__}: {exc}"
        _warn(f"could not patch pip ({type(exc).__name__}: {exc}); pip runs without the mirror chain")
        return False


def _apply(module: Any) -> bool:
    if module is None:
        module = importlib.import_module(SESSION_MODULE)
    if _state.originals is not None:
        return True
    if disabled():
        _state.reason = "PIP_91N_DISABLE is set"
        return False
    reason = check(module)
    if reason is not None:
        _state.reason = f"unknown pip structure: {reason}"
        _warn(f"pip {pip_version()} has an unknown structure ({reason}); "
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
    _state.originals = _Originals(cls, original)
    _state.reason = None
    register(FINDER_MODULE, _wrap_finder)
    return True


def _prepare() -> ChainShim | None:
    """At the first PipSession (pip commands without network never get here): load the
    configuration, import everything the shim needs, build the shim. None, and pip
    unpatched, when the configuration is broken or disables pip-91n."""
    from pip_91n.errors import ConfigError
    from pip_91n.settings.config import load_config

    try:
        config = load_config()
    except ConfigError as exc:
        _state.failed = f"configuration error: {exc}"
        _warn(f"{exc}; pip runs without the mirror chain")
        return None
    if config.disabled:
        _state.failed = "disabled by configuration"
        return None
    for name in PREIMPORT:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _quiet_loggers()
    from pip_91n.chain.ranking import resolve_chain
    from pip_91n.hook.adapter import make_adapter_class
    from pip_91n.hook.bodies import BUFFER_MAX
    from pip_91n.hook.pool import PipPool
    from pip_91n.hook.shim import ChainShim

    adapters = importlib.import_module("pip._vendor.requests.adapters")
    models = importlib.import_module("pip._vendor.requests.models")
    structures = importlib.import_module("pip._vendor.requests.structures")
    exceptions = importlib.import_module("pip._vendor.urllib3.exceptions")
    raw = importlib.import_module("pip._vendor.urllib3.response")
    _state.adapter_cls = make_adapter_class(
        adapters.BaseAdapter, models.Response, structures.CaseInsensitiveDict,
        lambda url, msg: exceptions.ReadTimeoutError(None, url, msg), raw.HTTPResponse)
    pool = _state.pool = PipPool(adapters.HTTPAdapter, models.PreparedRequest,
                                 structures.CaseInsensitiveDict)
    # Large files stream only to pips that resume a broken download themselves (>= 25.2):
    # older ones get every file whole and verified.
    stream_from = BUFFER_MAX if release(pip_version()) >= (25, 2) else None
    return ChainShim(config, resolve_chain(config), pool, stream_from=stream_from)


def _quiet_loggers() -> None:
    """pip sends INFO records of every logger to stdout: httpx's per-request lines and the
    chain's own notes must not appear there (``PIP_91N_LOG`` is the place for them)."""
    import logging

    for name in ("httpx", "httpcore", "pip_91n"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _shim() -> ChainShim | None:
    with _lock:
        if _state.shim is None and _state.failed is None:
            _state.shim = _prepare()
        return _state.shim


def _mount(session: Any) -> None:
    try:
        shim = _shim()
        if shim is None:
            reason = _state.failed
            unpatch()
            _state.reason = reason
            return
        from pip_91n.hook.adapter import mount_prefixes

        assert _state.adapter_cls is not None and _state.pool is not None
        trusted = getattr(session, "pip_trusted_origins", ())
        prefixes = mount_prefixes(shim.chain, trusted)
        adapter = _state.adapter_cls(shim, dict(session.adapters))
        _state.pool.bind(session, adapter.pip_adapter)  # the chain sends over its pools
        for prefix in prefixes:
            session.mount(prefix, adapter)
        session._pip_91n_prefixes = prefixes
        _sessions.add(session)
    except Exception as exc:
        _warn(f"could not route pip through the mirror chain ({type(exc).__name__}: {exc}); pip runs as is")


def _unmount(session: Any) -> None:
    for prefix in getattr(session, "_pip_91n_prefixes", ()):
        adapter = session.adapters.get(prefix)
        if adapter is not None and hasattr(adapter, "shim"):
            del session.adapters[prefix]
    session._pip_91n_prefixes = []


# -- pins: tell the chain which version pip is looking for (principle 6), and which hashes
#    the user pinned (they win over the sources' vote) -------------------------------------

def _wrap_finder(module: Any) -> None:
    """Wrap ``PackageFinder.find_best_candidate`` (when its signature is the known one) to
    note ``name==version`` pins, so a lagging mirror's page without that version is not
    served while another mirror may have it, and the user's ``--hash`` pins. The wrapper keeps what callers use of pip's
    cached method (pip-tools calls ``cache_clear``)."""
    cls: Any = getattr(module, "PackageFinder", None)
    originals = _state.originals
    if not inspect.isclass(cls) or originals is None:
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
        _note_pin(project_name, specifier, kwargs.get("hashes", args[0] if args else None))
        return method(self, project_name, specifier, *args, **kwargs)

    for name in ("cache_clear", "cache_info", "cache_parameters"):
        if hasattr(method, name):
            setattr(find_best_candidate, name, getattr(method, name))
    setattr(find_best_candidate, MARKER, True)
    setattr(cls, "find_best_candidate", find_best_candidate)  # noqa: B010
    originals.finder = (cls, method)


def _note_pin(project: str, specifier: Any, hashes: Any) -> None:
    try:
        from pip_91n.index.routing import normalize_name
        from pip_91n.index.staleness import pinned_version

        version = pinned_version(specifier or ())
        shim = _state.shim
        if (version is not None or hashes) and shim is not None:
            shim.note_pin(normalize_name(project), version, hashes)
    except Exception:  # a hint only
        return


def unpatch() -> bool:
    """Undo ``apply``: restore ``PipSession.__init__`` (and the finder), unmount the adapter
    from live sessions. True when something was undone."""
    with _lock:
        originals, _state.originals = _state.originals, None
        if originals is None:
            return False
        originals.session_cls.__init__ = originals.session_init
        with contextlib.suppress(AttributeError):
            delattr(originals.session_cls, MARKER)
        if originals.finder is not None:
            cls, method = originals.finder
            setattr(cls, "find_best_candidate", method)  # noqa: B010
        unregister(FINDER_MODULE)
        for session in list(_sessions):
            _unmount(session)
        _sessions.clear()
        shim = _state.shim
        _state.failed, _state.pool, _state.shim = None, None, None
        if shim is not None:
            with contextlib.suppress(Exception):
                shim.close()
        _state.reason = "unpatched"
        return True


def reset() -> None:
    """Undo everything and forget what happened (tests)."""
    global _state
    unpatch()
    with _lock:
        _state = _State()
