"""Is the pip hook installed and active in this interpreter, and which pip did it patch?

Read-only inspection for ``pip-91n status`` and ``pip-91n doctor``:

- installed: ``pip_91n.pth`` (and ``pip_91n.start``) in one of this interpreter's
  site-packages directories, naming ``pip_91n._startup``;
- active: the start-up hook ran in this process and its post-import hook is waiting for
  (or has fired on) ``pip._internal.network.session``;
- patched: with ``import_pip``, pip's session module is imported here, which fires the hook
  exactly as in a ``pip install``; then ``pip_91n.hook.patch`` is asked what it did.
"""

from __future__ import annotations

import contextlib
import os
import site
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SUPPORTED_PIP", "HookState", "hook_state", "pip_version", "site_dirs"]

#: The pip versions the hook is tested against (tox hook-pip* envs), as (min, max) majors.
SUPPORTED_PIP = ((23, 2), (26, 99))
_PTH = "pip_91n.pth"
_START = "pip_91n.start"


@dataclass(frozen=True)
class HookState:
    pth: str | None = None  # path of pip_91n.pth, if found
    pth_ok: bool = False  # it names pip_91n._startup
    start_file: str | None = None
    no_site: bool = False  # python -S: .pth files are not processed
    disabled: bool = False  # PIP_91N_DISABLE
    startup_ran: bool = False  # _startup.init() ran in this process
    registered: bool = False  # the post-import hook waits for pip's session module
    pip: str | None = None  # installed pip version
    pip_location: str | None = None
    pip_supported: bool | None = None
    patched: bool | None = None  # None: not checked
    patch_detail: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def installed(self) -> bool:
        return self.pth is not None and self.pth_ok

    @property
    def active(self) -> bool:
        return self.installed and self.startup_ran and not self.disabled and (
            self.registered or bool(self.patched))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(installed=self.installed, active=self.active, notes=list(self.notes))
        return data


def site_dirs() -> list[Path]:
    """Directories whose .pth files this interpreter processes (or would)."""
    dirs: list[str] = []
    with contextlib.suppress(AttributeError):  # old virtualenv site.py lacks it
        dirs.extend(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    seen: list[Path] = []
    for d in dirs:
        p = Path(d)
        if p not in seen:
            seen.append(p)
    return seen


def pip_version() -> tuple[str | None, str | None]:
    """(version, location) of the installed pip, read without importing pip."""
    from importlib import metadata

    try:
        dist = metadata.distribution("pip")
    except metadata.PackageNotFoundError:
        return None, None
    return dist.version, str(dist.locate_file(""))


def _supported(version: str) -> bool:
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return SUPPORTED_PIP[0] <= parts <= SUPPORTED_PIP[1]


def _patch_state() -> tuple[bool, str]:
    """Import pip's session module (fires the hook) and ask the patch what it did."""
    from pip_91n._startup import PATCH, SESSION_MODULE

    try:
        import importlib

        importlib.import_module(SESSION_MODULE)
    except Exception as exc:
        return False, f"cannot import {SESSION_MODULE}: {type(exc).__name__}: {exc}"
    patch = sys.modules.get(PATCH.partition(":")[0])
    if patch is None:
        return False, f"pip's session module was imported but {PATCH} never ran"
    info = patch.state()
    if info.patched:
        chain = f", chain: {', '.join(info.chain)}" if info.chain else ""
        return True, f"pip {pip_version()[0]} PipSession{chain}"
    return False, info.reason or "not patched"


def hook_state(*, import_pip: bool = False) -> HookState:
    """What is true of the hook in this interpreter (imports pip only with ``import_pip``)."""
    from pip_91n import _startup

    notes: list[str] = []
    pth = start = None
    pth_ok = False
    for d in site_dirs():
        if pth is None and (d / _PTH).is_file():
            pth = str(d / _PTH)
            try:
                pth_ok = "pip_91n._startup" in (d / _PTH).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                pth_ok = False
        if start is None and (d / _START).is_file():
            start = str(d / _START)
    registered = _startup.pending(_startup.SESSION_MODULE) > 0
    version, location = pip_version()
    patched: bool | None = None
    detail = ""
    if import_pip and version is not None and not _startup.disabled():
        if pth is not None and not _startup._initialized:
            notes.append("the start-up hook did not run in this process")
        if _startup._initialized:
            patched, detail = _patch_state()
    elif version is None:
        notes.append("pip is not installed in this interpreter")
    return HookState(
        pth=pth, pth_ok=pth_ok, start_file=start, no_site=bool(sys.flags.no_site),
        disabled=_startup.disabled(), startup_ran=_startup._initialized,
        registered=registered, pip=version, pip_location=location,
        pip_supported=_supported(version) if version else None, patched=patched,
        patch_detail=detail, notes=tuple(notes),
    )


def describe(state: HookState) -> list[tuple[str, str, str]]:
    """(label, text, style) rows for people."""
    rows: list[tuple[str, str, str]] = []
    if state.installed:
        rows.append(("hook file", str(state.pth), "ok"))
    elif state.pth:
        rows.append(("hook file", f"{state.pth} does not name pip_91n._startup", "error"))
    else:
        rows.append(("hook file", f"not found in {os.pathsep.join(map(str, site_dirs()))}",
                     "error"))
    if state.disabled:
        active = ("disabled by PIP_91N_DISABLE", "warn")
    elif state.no_site:
        active = ("no: python -S skips .pth files", "warn")
    elif state.active:
        active = ("yes", "ok")
    else:
        active = ("no: the start-up hook did not run in this interpreter", "error")
    rows.append(("hook active", *active))
    pip = f"{state.pip} in {state.pip_location}" if state.pip else "not installed"
    if state.pip and state.pip_supported is False:
        pip += " (untested by pip-91n)"
    rows.append(("pip", pip, "ok" if state.pip_supported else "warn"))
    if state.patched is not None:
        text = ("yes: " if state.patched else "no: ") + (state.patch_detail or (
            f"pip {state.pip} PipSession" if state.patched else "not patched"))
        rows.append(("pip patched", text, "ok" if state.patched else "error"))
    return rows
