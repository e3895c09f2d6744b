"""The pip-91n test harness: loopback PyPI mirrors with faults, a wheel factory, test venvs.

Public API (stable; see docs/testing.md):

- :class:`MirrorServer`, :class:`PackageIndex`, :class:`DistFile`, :func:`refused_url`,
  :class:`RefusedMirror`, :class:`MirrorFactory` (the ``mirror_factory`` fixture)
- faults: :class:`Fault` and its subclasses (``BlackHole``, ``SlowFirstByte``, ``Throttle``,
  ``HTTPStatus``/``ServerError``/``TooManyRequests``/``NotFound``, ``ResetAfter``, ``Truncate``,
  ``Corrupt``, ``Stale``, ``MetadataMissing``, ``WrongContentType``)
- wheels: :func:`make_wheel`, :class:`WheelSpec`, :func:`build_index`, :func:`tree_index`
- venvs: :func:`clean_env`, :func:`sealed_env`, :class:`Venv`, :func:`create_venv`
"""

from __future__ import annotations

from .faults import (
    BlackHole,
    Corrupt,
    Fault,
    HTTPStatus,
    MetadataMissing,
    NotFound,
    ResetAfter,
    ServerError,
    SlowFirstByte,
    Stale,
    Throttle,
    TooManyRequests,
    Truncate,
    WrongContentType,
)
from .fleet import AnyMirror, MirrorFactory, MirrorSpec
from .index import DistFile, PackageIndex, normalize, read_wheel_metadata
from .netutil import RefusedMirror, refused_port, refused_url
from .pages import HTML_V1, JSON_V1, TEXT_HTML, file_path, negotiate
from .server import MirrorServer
from .stats import RequestRecord, ServerStats
from .venvs import HarnessSetupError, Venv, clean_env, create_venv, sealed_env
from .wheels import (
    TREE,
    WheelSpec,
    build_index,
    dist_name,
    import_name,
    make_wheel,
    tree_index,
    tree_specs,
)

__all__ = [
    "HTML_V1",
    "JSON_V1",
    "TEXT_HTML",
    "TREE",
    "AnyMirror",
    "BlackHole",
    "Corrupt",
    "DistFile",
    "Fault",
    "HTTPStatus",
    "HarnessSetupError",
    "MetadataMissing",
    "MirrorFactory",
    "MirrorServer",
    "MirrorSpec",
    "NotFound",
    "PackageIndex",
    "RefusedMirror",
    "RequestRecord",
    "ResetAfter",
    "ServerError",
    "ServerStats",
    "SlowFirstByte",
    "Stale",
    "Throttle",
    "TooManyRequests",
    "Truncate",
    "Venv",
    "WheelSpec",
    "WrongContentType",
    "build_index",
    "clean_env",
    "create_venv",
    "dist_name",
    "file_path",
    "import_name",
    "make_wheel",
    "negotiate",
    "normalize",
    "read_wheel_metadata",
    "refused_port",
    "refused_url",
    "sealed_env",
    "tree_index",
    "tree_specs",
]
