"""The content a loopback mirror serves: projects, their distribution files, serials.

A :class:`PackageIndex` is a thread-safe, mutable collection of :class:`DistFile` records. Each
file lives on disk (it can be large); the index keeps its size, sha256, blake2b-256 (for PyPI's
``/packages/aa/bb/<hash>/`` layout), requires-python, yank state and PEP 658 metadata bytes.
Every change bumps a serial, like PyPI's changelog serial, so each project has a last serial.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from packaging.version import InvalidVersion, Version

__all__ = ["DistFile", "PackageIndex", "normalize", "read_wheel_metadata"]

_CHUNK = 1 << 20


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _hash_file(path: Path) -> tuple[int, str, str]:
    sha = hashlib.sha256()
    blake = hashlib.blake2b(digest_size=32)
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            blake.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), blake.hexdigest()


def read_wheel_metadata(path: Path) -> bytes:
    """The ``*.dist-info/METADATA`` bytes of a wheel (what PEP 658 serves)."""
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise ValueError(f"{path.name}: expected one .dist-info/METADATA, found {names}")
        return zf.read(names[0])


def _parse_filename(filename: str) -> tuple[str, str]:
    """(project, version) from a wheel or sdist file name."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        if len(parts) not in (5, 6):
            raise ValueError(f"not a wheel file name: {filename}")
        return parts[0], parts[1]
    for ext in (".tar.gz", ".zip", ".tar.bz2"):
        if filename.endswith(ext):
            stem = filename[: -len(ext)]
            name, sep, version = stem.rpartition("-")
            if sep:
                return name, version
    raise ValueError(f"cannot parse project and version from {filename!r}; pass them explicitly")


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


@dataclass(frozen=True)
class DistFile:
    """One distribution file as an index lists it."""

    project: str  # normalized project name
    version: str
    filename: str
    path: Path
    size: int
    sha256: str
    blake2b: str
    serial: int
    requires_python: str | None = None
    yanked: bool | str = False  # False, True, or the reason (a non-empty str)
    metadata: bytes | None = None  # PEP 658 core metadata, None = not advertised

    @property
    def metadata_sha256(self) -> str | None:
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()

    @property
    def etag(self) -> str:
        return f'"{self.sha256[:32]}"'

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """File bytes [start, end) in chunks."""
        end = self.size if end is None else end
        with self.path.open("rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    raise OSError(f"{self.path} shrank while being served")
                left -= len(chunk)
                yield chunk


class PackageIndex:
    """A thread-safe collection of distribution files, grouped by normalized project name.

    Mutations (``add``, ``yank``, ``unyank``, ``remove``) may happen while servers serve it; each
    bumps the global serial and the touched project's serial.
    """

    def __init__(self, files: Iterable[Path] = ()) -> None:
        self._lock = threading.RLock()
        self._files: dict[str, DistFile] = {}  # filename -> file
        self._project_serial: dict[str, int] = {}
        self._display: dict[str, str] = {}
        self._serial = 0
        for path in files:
            self.add(path)

    # -- mutation -----------------------------------------------------------------------------
    def add(
        self,
        path: str | Path,
        *,
        project: str | None = None,
        version: str | None = None,
        requires_python: str | bool | None = True,
        yanked: bool | str = False,
        metadata: bool | bytes = True,
    ) -> DistFile:
        """Add a file. ``requires_python=True`` and ``metadata=True`` read them from a wheel's
        METADATA (sdists get no metadata); pass a value to override, ``False`` to omit."""
        path = Path(path).resolve()
        parsed_name, parsed_version = ("", "")
        if project is None or version is None:
            parsed_name, parsed_version = _parse_filename(path.name)
        name = project or parsed_name
        version = version or parsed_version
        size, sha, blake = _hash_file(path)
        wheel_meta = read_wheel_metadata(path) if path.name.endswith(".whl") else None
        meta: bytes | None
        if metadata is True:
            meta = wheel_meta
        elif metadata is False:
            meta = None
        else:
            meta = metadata
        rp: str | None
        if requires_python is True:
            rp = None
            if wheel_meta is not None:
                rp = BytesHeaderParser().parsebytes(wheel_meta).get("Requires-Python")
        elif requires_python is False:
            rp = None
        else:
            rp = requires_python
        key = normalize(name)
        with self._lock:
            self._serial += 1
            dist = DistFile(key, version, path.name, path, size, sha, blake, self._serial, rp, yanked, meta)
            self._files[path.name] = dist
            self._project_serial[key] = self._serial
            self._display.setdefault(key, name)
            return dist

    def _replace(self, filename: str, **changes: object) -> DistFile:
        with self._lock:
            old = self._files[filename]
            self._serial += 1
            new = dataclasses.replace(old, serial=self._serial, **changes)  # type: ignore[arg-type]
            self._files[filename] = new
            self._project_serial[new.project] = self._serial
            return new

    def yank(self, filename: str, reason: str | bool = True) -> DistFile:
        return self._replace(filename, yanked=reason or True)

    def unyank(self, filename: str) -> DistFile:
        return self._replace(filename, yanked=False)

    def remove(self, filename: str) -> None:
        with self._lock:
            dist = self._files.pop(filename)
            self._serial += 1
            self._project_serial[dist.project] = self._serial

    # -- queries ------------------------------------------------------------------------------
    @property
    def serial(self) -> int:
        """The global last serial."""
        with self._lock:
            return self._serial

    def project_serial(self, project: str) -> int:
        with self._lock:
            return self._project_serial.get(normalize(project), 0)

    def projects(self) -> list[str]:
        """Normalized names of all projects, sorted."""
        with self._lock:
            return sorted(self._project_serial)

    def display_name(self, project: str) -> str:
        with self._lock:
            return self._display.get(normalize(project), project)

    def files(self, project: str) -> list[DistFile]:
        """A project's files, oldest version first (then by file name)."""
        key = normalize(project)
        with self._lock:
            found = [f for f in self._files.values() if f.project == key]
        return sorted(found, key=lambda f: (_version_key(f.version), f.filename))

    def versions(self, project: str) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.files(project):
            seen.setdefault(f.version, None)
        return list(seen)

    def newest_version(self, project: str) -> str | None:
        versions = self.versions(project)
        return versions[-1] if versions else None

    def get(self, filename: str) -> DistFile | None:
        with self._lock:
            return self._files.get(filename)

    def __contains__(self, project: object) -> bool:
        return isinstance(project, str) and normalize(project) in self.projects()

    def __iter__(self) -> Iterator[DistFile]:
        with self._lock:
            files = list(self._files.values())
        return iter(files)

    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    def __repr__(self) -> str:
        return f"PackageIndex({len(self)} files, {len(self.projects())} projects, serial={self.serial})"
