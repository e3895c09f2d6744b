"""``pip-91n doctor``: what is wrong with this installation, and how to fix each thing.

Checks, in order: configuration valid; hook file present and loading, pip patched; pip
version supported; pip's own config (trusted-host, plain-http indexes); pip's index reachable;
DNS, TLS and HTTP of each chain mirror (parallel, bounded by the timeout); request log,
verification policy and cache dir (``pip_91n.cli.findings``).
Every finding has a level (ok, info, warn, error) and, unless ok, a fix. Exit 1 when any
finding is an error (with ``--strict``, a warning too).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pip_91n import _startup
from pip_91n._urls import is_loopback, redact
from pip_91n.cli.findings import Finding, check_cache_dir, check_log, check_verify
from pip_91n.cli.output import EXIT_FAILED, EXIT_OK, Output
from pip_91n.settings.catalog import Mirror
from pip_91n.settings.config import MirrorConfig

__all__ = ["Finding", "check_cache_dir", "check_pip_config", "diagnose", "run"]

_MARK = {"ok": "ok", "info": "info", "warn": "warn", "error": "FAIL"}
_TRUSTED_FIX = ("remove the trusted-host setting: pip-91n reaches PyPI's mirrors over https "
                "with verified TLS (e.g. `pip-91n use tuna,aliyun,pypi`)")


def _split(value: str) -> list[str]:
    return [v for v in value.replace(",", " ").split() if v]


def _http_finding(url: str, where: str) -> Finding | None:
    parts = urlsplit(url)
    if parts.scheme != "http" or is_loopback(parts.hostname or ""):
        return None
    shown = redact(url)
    https = shown.replace("http://", "https://", 1)
    return Finding("pip config", "warn",
                   f"{where}: index {shown} uses plain http: packages and pages can be altered "
                   "in transit (security)",
                   f"use {https} if the mirror serves https, or a catalog mirror with "
                   "`pip-91n use NAME`")


def check_pip_config(environ: Mapping[str, str], files: Sequence[Path] | None = None
                     ) -> list[Finding]:
    """trusted-host and plain-http indexes in pip's config files and PIP_* variables."""
    from pip_91n.settings.pipconf import pip_config_files, read_pip_configs

    found: list[Finding] = []
    for var in ("PIP_TRUSTED_HOST",):
        if environ.get(var, "").strip():
            found.append(Finding("pip config", "warn",
                                 f"{var}={environ[var].strip()}: pip skips TLS certificate "
                                 "checks for these hosts (security)", f"unset {var}; "
                                 + _TRUSTED_FIX))
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        for url in _split(environ.get(var, "")):
            f = _http_finding(url, var)
            if f:
                found.append(f)
    for conf in read_pip_configs(pip_config_files(environ) if files is None else files):
        if conf.parser is None:
            found.append(Finding("pip config", "warn", f"{conf.path}: not a valid pip config "
                                 f"({conf.error})", "fix its syntax"))
            continue
        for section in conf.parser.sections():
            for key, raw in conf.parser.items(section):
                key = key.replace("_", "-").lower()
                if key == "trusted-host" and raw.strip():
                    where, line = conf.where(None, key)
                    found.append(Finding(
                        "pip config", "warn", f"{where}: trusted-host = {' '.join(_split(raw))}"
                        ": pip skips TLS certificate checks for these hosts (security)",
                        f"delete line {line or '?'} of {conf.path}; " + _TRUSTED_FIX))
                elif key in ("index-url", "extra-index-url"):
                    where, _ = conf.where(None, key)
                    for url in _split(raw):
                        f = _http_finding(url, where)
                        if f:
                            found.append(f)
    if not found:
        found.append(Finding("pip config", "ok", "no trusted-host and no plain-http index"))
    return found


def check_tls_trust(environ: Mapping[str, str]) -> list[Finding]:
    """What TLS trusts outside pip (the probes, this check, model downloads): what pip does."""
    from pip_91n.net.tls import trust_sources

    sources = trust_sources(environ)
    found = [Finding("tls", "ok", "trusting what pip trusts: "
                     + ", ".join(src.what for src in sources))]
    for src in sources:
        if src.cafile is not None and not Path(src.cafile).exists():
            found.append(Finding("tls", "error", f"{src.what} names {src.cafile}, which does "
                                 "not exist: pip fails every https request too",
                                 f"point {src.what.split(' ')[0]} at an existing CA bundle, or "
                                 "unset it"))
    return found


def _hook_findings(import_pip: bool) -> list[Finding]:
    from pip_91n.cli.hookstate import SUPPORTED_PIP, hook_state, site_dirs

    s = hook_state(import_pip=import_pip)
    out: list[Finding] = []
    reinstall = "reinstall from the wheel: pip install --force-reinstall pip-91n"
    if s.installed:
        out.append(Finding("hook", "ok", f"hook file {s.pth}"))
    elif s.pth:
        out.append(Finding("hook", "error", f"{s.pth} does not name pip_91n._startup",
                           reinstall))
    else:
        dirs = ", ".join(map(str, site_dirs()))
        out.append(Finding("hook", "error", f"pip_91n.pth is not in this interpreter's "
                           f"site-packages ({dirs}): pip runs without pip-91n",
                           f"{reinstall} (an editable or source checkout has no .pth)"))
    if s.installed and sys.version_info >= (3, 15) and not s.start_file:
        out.append(Finding("hook", "warn", "pip_91n.start is missing: Python 3.15+ (PEP 829) "
                           "will stop running import lines in .pth files", reinstall))
    if s.disabled:
        out.append(Finding("hook", "warn", "PIP_91N_DISABLE is set: pip runs as if pip-91n "
                           "were not installed", "unset PIP_91N_DISABLE"))
    elif s.no_site:
        out.append(Finding("hook", "warn", "python -S: .pth files are skipped",
                           "run pip without -S"))
    elif s.installed and not s.startup_ran:
        out.append(Finding("hook", "error", "the hook file is there but did not run in this "
                           "interpreter", "run `python -c 'import pip_91n._startup'` to see "
                           "the error, then " + reinstall))
    if (unclear := _startup.disable_unclear(os.environ)) is not None:
        out.append(Finding("hook", "warn", f"PIP_91N_DISABLE={unclear!r} is neither on nor "
                           "off: the hook stays on", "set PIP_91N_DISABLE=1 to run stock pip, "
                           "or unset it"))
    if s.pip is None:
        out.append(Finding("pip", "warn", "pip is not installed in this interpreter",
                           "python -m ensurepip --upgrade"))
    elif s.pip_supported:
        out.append(Finding("pip", "ok", f"pip {s.pip} is supported"))
    else:
        lo, hi = SUPPORTED_PIP
        out.append(Finding("pip", "warn", f"pip {s.pip} is outside the tested range "
                           f"{lo[0]}.{lo[1]} to {hi[0]}.x; the hook checks pip's structure and "
                           "leaves pip alone if it does not match",
                           f"pip install 'pip>={lo[0]}.{lo[1]}'"))
    if s.patched is True:
        out.append(Finding("hook", "ok", "pip's session is patched" + (
            f" ({s.patch_detail})" if s.patch_detail else "")))
    elif s.patched is False:
        out.append(Finding("hook", "error", f"pip was not patched: {s.patch_detail or 'unknown'}",
                           "run `pip-91n status` and report it with the pip version"))
    for note in s.notes:
        out.append(Finding("hook", "info", note))
    return out


@dataclass(frozen=True)
class _Net:
    name: str
    url: str
    ok: bool
    detail: str


def _net_check(url: str, timeout: float) -> tuple[bool, str]:
    """DNS, TLS (https, trusting what pip trusts) and one GET of a page of ``url``, through
    the same wire as the probes; (reachable, what happened)."""
    import socket
    import ssl
    import urllib.request

    from pip_91n._urls import same_origin, split_credentials
    from pip_91n.net.httpx_pool import tls_context
    from pip_91n.net.httpx_wire import default_wire
    from pip_91n.net.wire import WireError, describe, follow

    bare, creds = split_credentials(url)
    parts = urlsplit(bare)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    steps: list[str] = []
    proxies = urllib.request.getproxies_environment()
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009
    via_proxy = bool(proxies.get(parts.scheme) or proxies.get("all")) and not bypass(
        host, proxies)
    if not via_proxy:
        t0 = time.monotonic()
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            return False, f"DNS lookup of {host} failed ({exc.strerror or exc})"
        steps.append(f"DNS {1000 * (time.monotonic() - t0):.0f} ms")
        if parts.scheme == "https":
            try:
                with socket.create_connection((host, port), timeout=timeout) as sock, \
                        tls_context().wrap_socket(sock, server_hostname=host) as tls:
                    steps.append(f"TLS ok ({tls.version()})")
            except ssl.SSLError as exc:
                return False, (f"TLS to {host} failed ({exc.reason or exc}); trusted: the "
                               "CAs pip trusts (see the tls line)")
            except OSError as exc:
                return False, f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    else:
        steps.append("via proxy")
    page = bare.rstrip("/") + "/pip/"
    wire = default_wire()
    t0 = time.monotonic()
    try:
        resp, _ = follow(wire, page, [("accept", "text/html")], timeout,
                         credentials=lambda hop: creds if same_origin(hop, page) else None)
        resp.close()
    except (WireError, OSError) as exc:
        return False, "; ".join([*steps, f"HTTP failed ({describe(exc, timeout)})"])
    finally:
        wire.close()
    ms = 1000 * (time.monotonic() - t0)
    if resp.status >= 500:
        return False, "; ".join([*steps, f"HTTP {resp.status}"])
    return True, "; ".join([*steps, f"HTTP {resp.status} in {ms:.0f} ms"])


def check_network(mirrors: Sequence[Mirror], timeout: float) -> list[_Net]:

    results: dict[str, _Net] = {}
    lock = threading.Lock()

    def work(m: Mirror) -> None:
        try:
            ok, detail = _net_check(m.simple_url, timeout)
        except Exception as exc:  # never let one mirror break the report
            ok, detail = False, repr(exc)
        with lock:
            results[m.name] = _Net(m.name, redact(m.simple_url), ok, detail)

    threads = [threading.Thread(target=work, args=(m,), daemon=True) for m in mirrors]
    deadline = time.monotonic() + 3 * timeout + 1
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return [results.get(m.name) or _Net(m.name, redact(m.simple_url), False,
                                            "no answer in time") for m in mirrors]


def _chain_findings(config: MirrorConfig, nets: list[_Net]) -> list[Finding]:
    out = []
    dead = [n for n in nets if not n.ok]
    for n in nets:
        if n.ok:
            out.append(Finding("mirror", "ok", f"{n.name}: {n.detail}"))
        else:
            level = "info" if config.auto else "warn"
            out.append(Finding("mirror", level, f"{n.name} ({n.url}): {n.detail}",
                               "nothing to do if others answer (pip-91n skips it); to drop "
                               "it: `pip-91n probe --save` or `pip-91n use` without it"))
    if nets and len(dead) == len(nets):
        out.append(Finding("mirror", "error", "no mirror of the chain answers: pip installs "
                           "will fail", "check the network or proxy (https_proxy), or choose "
                           "mirrors you can reach: `pip-91n probe --catalog --save`"))
    return out


def _pip_index_finding(config: MirrorConfig, environ: Mapping[str, str],
                       chain_urls: set[str], timeout: float) -> Finding | None:
    from pip_91n.settings.pipconf import pip_index_url

    index = pip_index_url(environ)
    if index is None:
        return None
    ok, detail = _net_check(index.url, timeout)
    shown = redact(index.url)
    if ok:
        return Finding("pip index", "ok", f"pip's index {shown} ({index.where}) answers")
    covered = config.head is not None or index.url.rstrip("/") + "/" in chain_urls
    fix = (f"remove index-url from {index.where} (or unset PIP_INDEX_URL) so pip uses PyPI, "
           "and pick mirrors with `pip-91n use NAME ...`")
    if covered:
        return Finding("pip index", "warn", f"pip's index {shown} ({index.where}) does not "
                       f"answer: {detail}; pip-91n fails over to the rest of the chain", fix)
    return Finding("pip index", "error", f"pip's index {shown} ({index.where}) does not "
                   f"answer: {detail}; it is not a PyPI mirror pip-91n knows, so there is no "
                   "failover and pip installs will fail", fix)


def diagnose(*, network: bool = True, import_pip: bool = True) -> list[Finding]:
    from pip_91n.errors import ConfigError
    from pip_91n.settings.config import load_config

    environ = dict(os.environ)
    findings: list[Finding] = []
    try:
        config: MirrorConfig | None = load_config()
        findings.append(Finding("config", "ok", "settings are valid"))
    except ConfigError as exc:
        config = None
        findings.append(Finding("config", "error", str(exc).splitlines()[0],
                                "fix the value named above (`pip-91n config show`)"))
    findings += _hook_findings(import_pip)
    findings += check_pip_config(environ)
    findings += check_tls_trust(environ)
    if config is not None:
        if network:
            chain_urls = {m.simple_url for m in config.chain}
            f = _pip_index_finding(config, environ, chain_urls, config.timeout)
            if f:
                findings.append(f)
            findings += _chain_findings(config, check_network(config.chain, config.timeout))
        log = check_log(config)
        if log is not None:
            findings.append(log)
        findings.append(check_verify(config))
        findings.append(check_cache_dir(config.cache_dir))
    return findings


def run(args: argparse.Namespace, out: Output) -> int:
    with out.status("checking..."):
        findings = diagnose(network=not args.offline)
    bad = [f for f in findings if f.level == "error" or (args.strict and f.level == "warn")]
    code = EXIT_FAILED if bad else EXIT_OK
    if out.json_mode:
        out.json({"ok": not bad, "findings": [asdict(f) for f in findings]})
        return code
    for f in findings:
        out.line(f"[{_MARK[f.level]}] {f.check}: {f.message}", f.level)
        if f.fix and f.level != "ok":
            out.line(f"       fix: {f.fix}", "dim")
    counts = {lvl: sum(f.level == lvl for f in findings) for lvl in ("error", "warn")}
    out.line()
    summary = f"{_n(counts['error'], 'error')}, {_n(counts['warn'], 'warning')}"
    out.line(summary, "error" if bad else "warn" if counts["warn"] else "ok")
    return code


def _n(count: int, word: str) -> str:
    return f"{count or 'no'} {word}{'' if count == 1 else 's'}"
