"""Start several mirrors of one index (some faulty, some refused) and stop them all at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

from .faults import Fault
from .index import PackageIndex
from .netutil import RefusedMirror
from .server import MirrorServer

__all__ = ["AnyMirror", "MirrorFactory", "MirrorSpec"]

# One mirror of a chain: None (healthy), "refused", a Fault, or a sequence of faults.
MirrorSpec = Union[None, str, Fault, Sequence[Fault]]
AnyMirror = Union[MirrorServer, RefusedMirror]


class MirrorFactory:
    """Starts mirrors and stops them all in :meth:`stop_all` (or on leaving ``with``).

    The ``mirror_factory`` fixture is one; benchmarks can use their own.
    """

    def __init__(self) -> None:
        self.servers: list[AnyMirror] = []

    def __call__(self, index: PackageIndex, *faults: Fault, **options: Any) -> MirrorServer:
        """One running :class:`MirrorServer` of ``index`` with ``faults`` (options: layout,
        absolute_urls, name, io_timeout, page_cache_control)."""
        server = MirrorServer(index, faults=faults, **options)
        self.servers.append(server)
        return server.start()

    def refused(self, name: str = "refused") -> RefusedMirror:
        """A mirror whose port refuses connections."""
        dead = RefusedMirror(name)
        self.servers.append(dead)
        return dead

    def many(self, index: PackageIndex, specs: int | Sequence[MirrorSpec], **options: Any) -> list[AnyMirror]:
        """Mirrors named ``m0``, ``m1``, ... in chain order. ``specs``: a count of healthy
        mirrors, or one entry per mirror: ``None`` (healthy), a :class:`Fault`, a sequence of
        faults, or ``"refused"``."""
        if isinstance(specs, int):
            specs = [None] * specs
        out: list[AnyMirror] = []
        for i, spec in enumerate(specs):
            name = f"m{i}"
            if spec == "refused":
                out.append(self.refused(name))
            elif spec is None:
                out.append(self(index, name=name, **options))
            elif isinstance(spec, Fault):
                out.append(self(index, spec, name=name, **options))
            elif isinstance(spec, str):
                raise ValueError(f"unknown mirror spec {spec!r}")
            else:
                out.append(self(index, *spec, name=name, **options))
        return out

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    def __enter__(self) -> MirrorFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
