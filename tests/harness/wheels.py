"""A factory of real, installable wheels (METADATA, WHEEL, RECORD with sha256 digests).

    make_wheel(tmp, "lib-a", "1.0", requires=["lib-c>=1"])            # small pure-Python
    make_wheel(tmp, "big", "1.0", payload_size=50 * 2**20)            # incompressible payload
    index = tree_index(tmp)          # app -> lib-a, lib-b -> lib-c, versions 1.0 and 2.0
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from .index import PackageIndex

__all__ = [
    "TREE",
    "WheelSpec",
    "build_index",
    "dist_name",
    "import_name",
    "make_wheel",
    "tree_index",
    "tree_specs",
]

# The default dependency tree: app -> lib-a, lib-b; lib-b -> lib-c.
TREE: Mapping[str, Sequence[str]] = {
    "app": ("lib-a", "lib-b"),
    "lib-a": (),
    "lib-b": ("lib-c",),
    "lib-c": (),
}

_DATE = (2026, 1, 1, 0, 0, 0)  # fixed timestamps: identical inputs give identical wheels
_CHUNK = 1 << 20


def dist_name(name: str) -> str:
    """The escaped distribution name used in wheel and .dist-info names (``lib_a``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def import_name(name: str) -> str:
    """The top-level package a factory wheel installs (``lib-a`` -> ``lib_a``)."""
    return dist_name(name)


@dataclass(frozen=True)
class WheelSpec:
    """What :func:`make_wheel` builds; ``yanked`` only matters to :func:`build_index`."""

    name: str
    version: str
    requires: tuple[str, ...] = ()
    requires_python: str | None = None
    payload_size: int = 0
    files: Mapping[str, str] = field(default_factory=dict)
    yanked: bool | str = False


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def make_wheel(
    directory: str | Path,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    payload_size: int = 0,
    files: Mapping[str, str] | None = None,
    summary: str | None = None,
    tag: str = "py3-none-any",
) -> Path:
    """Write ``<dist>-<version>-<tag>.whl`` into ``directory`` and return its path.

    The wheel installs the package ``import_name(name)`` whose ``__init__`` defines
    ``__version__`` and ``NAME``; ``files`` adds more modules (path inside the package -> text).
    ``payload_size`` adds ``<pkg>/payload.bin`` of that many random bytes, stored uncompressed,
    so the wheel is a little larger than ``payload_size`` whatever the compression.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    version = str(Version(version))
    dist = dist_name(name)
    pkg = import_name(name)
    info_dir = f"{dist}-{version}.dist-info"
    path = directory / f"{dist}-{version}-{tag}.whl"
    records: list[str] = []

    meta = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary or f'{name}, a test package made by the pip-91n harness'}",
    ]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in requires]
    text_files = {
        f"{pkg}/__init__.py": f'"""{name} {version}"""\n\n__version__ = "{version}"\nNAME = "{name}"\n',
    }
    for rel, text in (files or {}).items():
        text_files[f"{pkg}/{rel}"] = text
    wheel_txt = f"Wheel-Version: 1.0\nGenerator: pip-91n-harness\nRoot-Is-Purelib: true\nTag: {tag}\n"

    tmp = path.with_suffix(".whl.part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for arc, text in text_files.items():
            data = text.encode()
            zf.writestr(_info(arc), data)
            records.append(f"{arc},{_digest(data)},{len(data)}")
        if payload_size:
            arc = f"{pkg}/payload.bin"
            info = _info(arc)
            info.compress_type = zipfile.ZIP_STORED
            sha = hashlib.sha256()
            left = payload_size
            with zf.open(info, "w", force_zip64=payload_size > 2**31) as out:
                while left:
                    chunk = os.urandom(min(_CHUNK, left))
                    sha.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
            b64 = base64.urlsafe_b64encode(sha.digest()).rstrip(b"=").decode()
            records.append(f"{arc},sha256={b64},{payload_size}")
        for arc, text in ((f"{info_dir}/METADATA", "\n".join(meta) + "\n\n"), (f"{info_dir}/WHEEL", wheel_txt)):
            data = text.encode()
            zf.writestr(_info(arc), data)
            records.append(f"{arc},{_digest(data)},{len(data)}")
        records.append(f"{info_dir}/RECORD,,")
        zf.writestr(_info(f"{info_dir}/RECORD"), "\n".join(records) + "\n")
    os.replace(tmp, path)
    return path


def tree_specs(
    versions: Sequence[str] = ("1.0", "2.0"),
    *,
    tree: Mapping[str, Sequence[str]] = TREE,
    requires_python: str | None = ">=3.8",
) -> list[WheelSpec]:
    """Specs for every project of ``tree`` at every version; dependencies are unpinned
    (``lib-a``), so pip picks the newest version the index offers."""
    return [
        WheelSpec(name, v, requires=tuple(tree[name]), requires_python=requires_python)
        for name in tree
        for v in versions
    ]


def build_index(
    directory: str | Path, specs: Iterable[WheelSpec], index: PackageIndex | None = None
) -> PackageIndex:
    """Build every spec's wheel into ``directory`` and add it to ``index`` (a new one by default)."""
    index = PackageIndex() if index is None else index
    for s in specs:
        path = make_wheel(
            directory,
            s.name,
            s.version,
            requires=s.requires,
            requires_python=s.requires_python,
            payload_size=s.payload_size,
            files=s.files,
        )
        index.add(path, project=s.name, yanked=s.yanked)
    return index


def tree_index(
    directory: str | Path,
    versions: Sequence[str] = ("1.0", "2.0"),
    *,
    tree: Mapping[str, Sequence[str]] = TREE,
) -> PackageIndex:
    """A ready index of the dependency tree ``app -> lib-a, lib-b -> lib-c`` (or ``tree``)."""
    return build_index(directory, tree_specs(versions, tree=tree))
