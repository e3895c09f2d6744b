"""``pip-91n env``: the current settings as lines to paste into a shell, Dockerfile, CI or uv.

The ``PIP_91N_*`` formats reproduce the effective configuration (``mirrors`` always, other
settings when they differ from the default; machine-local ``cache_dir`` and ``log`` only with
``--all``). uv cannot load the pip hook, so ``uv`` and ``uv-toml`` print the closest uv
equivalent instead: the best-ranked mirrors as ``UV_INDEX`` / ``UV_DEFAULT_INDEX`` (or
``[[index]]`` tables), best first. Passwords in index URLs are never printed.

With ``--serve URL`` (a running ``pip-91n serve``) every format points its tool at that one
index instead, failover included: ``uv``, ``uv-toml``, ``poetry`` (a ``[[tool.poetry.source]]``),
``pdm``, ``pip`` (a pip without pip-91n), and the shell/Dockerfile/CI formats for all of them.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex

from pip_91n.cli.output import EXIT_OK, Output, UsageError
from pip_91n.settings.catalog import Catalog, Mirror
from pip_91n.settings.config import MirrorConfig

__all__ = ["SERVE_ONLY", "env_variables", "render", "render_serve", "run", "serve_url",
           "uv_mirrors"]

#: Formats that only make sense for a server (``--serve URL``).
SERVE_ONLY = ("poetry", "pdm", "pip")

_LOCAL = {"cache_dir", "log"}


def _redact(url: str, secrets: list[str]) -> str:
    from pip_91n._urls import redact

    shown = redact(url)
    if shown != url:
        secrets.append(shown)
    return shown


def env_variables(config: MirrorConfig, catalog: Catalog, *, include_local: bool = False,
                  secrets: list[str] | None = None) -> dict[str, str]:
    """``PIP_91N_*`` name -> value for the effective configuration."""
    from pip_91n.settings.catalog import mirror_spec
    from pip_91n.settings.values import KEYS

    hidden = secrets if secrets is not None else []
    out: dict[str, str] = {}
    for key, var in KEYS.items():
        src = config.source(key)
        if key != "mirrors" and (src.kind == "default" or (key in _LOCAL and not include_local)):
            continue
        if key == "mirrors":
            value = "auto" if config.auto else ",".join(
                _redact(mirror_spec(m, catalog), hidden) for m in config.chain)
        elif key == "allow_http":
            value = ",".join(config.allow_http)
        elif key in ("timeout", "hedge_delay"):
            value = f"{getattr(config, key):g}"
        else:
            value = str(getattr(config, key) or "")
        out[var] = value
    return out


def uv_mirrors(config: MirrorConfig, count: int, *, probe: bool) -> tuple[list[Mirror], str]:
    """The best ``count`` mirrors of the chain for uv, and how they were ranked. uv cannot
    fail over on a connection error, so mirrors that did not answer the probe (``probe``:
    one now, of an explicit chain too; else the remembered ``auto`` ranking) are left out."""
    from pip_91n.chain.ranking import cached_ranking
    from pip_91n.cli.status import effective_chain

    if probe and not config.auto:
        from pip_91n.chain.probe import measure

        results = measure(config.chain, budget=5.0)
        alive = [r.name for r in results if r.status is not None and r.status < 500]
        chain = tuple(m for name in alive for m in config.chain if m.name == name)
        how = "as configured, the mirrors that answered a probe just now, fastest first"
        return list((chain or config.chain)[:max(1, count)]), how
    chain, how = effective_chain(config, probe=probe)
    cached = cached_ranking(config) if config.auto else None
    if cached is not None:
        latency = cached[2]
        if any(v is not None for v in latency.values()):
            answered = [m for m in chain if latency.get(m.name) is not None]
            chain = tuple(answered) or chain
    return list(chain[:max(1, count)]), how


def _uv_name(mirror: Mirror) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", mirror.name.lower()).strip("-.") or "mirror"


def _yaml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def _docker(value: str) -> str:
    return '"' + re.sub(r'(["\\$])', r"\\\1", value) + '"'


def render(fmt: str, variables: dict[str, str], *, how: str = "") -> str:
    """The text to paste for ``fmt`` (``uv-toml`` excepted: see ``render_uv_toml``)."""
    lines: list[str] = []
    if fmt in ("shell", "uv"):
        lines.append(f"# pip-91n env --format {fmt}" + (f" ({how})" if how else ""))
        lines += [f"export {k}={shlex.quote(v)}" for k, v in variables.items()]
    elif fmt == "dockerfile":
        lines.append("# pip-91n settings for every later RUN pip install (pip-91n env)")
        lines += [f"ENV {k}={_docker(v)}" for k, v in variables.items()]
    elif fmt in ("github-actions", "gitlab-ci"):
        where = "a workflow, job or step" if fmt == "github-actions" else "the file or a job"
        lines.append(f"# pip-91n settings: put under {where} (pip-91n env)")
        lines.append("env:" if fmt == "github-actions" else "variables:")
        lines += [f"  {k}: {_yaml(v)}" for k, v in variables.items()]
    else:  # pragma: no cover - argparse restricts the choices
        raise UsageError(f"unknown format {fmt!r}")
    return "\n".join(lines) + "\n"


def uv_variables(mirrors: list[Mirror], secrets: list[str]) -> dict[str, str]:
    """UV_INDEX (all but the last, best first) and UV_DEFAULT_INDEX (the last)."""
    urls = [(_uv_name(m), _redact(m.simple_url, secrets)) for m in mirrors]
    out: dict[str, str] = {}
    if len(urls) > 1:
        out["UV_INDEX"] = " ".join(f"{n}={u}" for n, u in urls[:-1])
    out["UV_DEFAULT_INDEX"] = urls[-1][1]
    return out


def render_uv_toml(mirrors: list[Mirror], secrets: list[str], how: str) -> str:
    lines = [f"# uv.toml (in pyproject.toml: [[tool.uv.index]]); best-ranked mirrors ({how})",
             "# uv cannot load the pip-91n hook: it asks these in order and moves on only when",
             "# a project is missing (404); a connection error on any of them is fatal."]
    for i, m in enumerate(mirrors):
        lines += ["", "[[index]]", f"name = {json.dumps(_uv_name(m))}",
                  f"url = {json.dumps(_redact(m.simple_url, secrets))}"]
        if i == len(mirrors) - 1:
            lines.append("default = true")
    return "\n".join(lines) + "\n"


def serve_url(raw: str) -> str:
    """The simple-index URL of a ``pip-91n serve`` given as ``--serve`` (``/simple/``
    added to a bare ``http://host:port``). ``UsageError`` for anything else."""
    from urllib.parse import urlsplit

    text = raw.strip()
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or "@" in parts.netloc or any(c.isspace() for c in text):
        from pip_91n._urls import redact_text

        raise UsageError(f"--serve {redact_text(raw)!r}: give the URL `pip-91n serve` printed "
                         "(no password: the server needs none), e.g. "
                         "http://127.0.0.1:3144/simple/")
    path = parts.path or "/"
    if path == "/":
        path = "/simple/"
    if not path.endswith("/"):
        path += "/"
    return parts._replace(path=path).geturl()


def _trusted_host(url: str) -> str | None:
    """pip ignores a plain-http index unless its host is trusted (loopback always is)."""
    from urllib.parse import urlsplit

    from pip_91n._urls import is_loopback

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or is_loopback(host):
        return None
    return host + (f":{parts.port}" if parts.port else "")


def serve_variables(url: str, fmt: str) -> dict[str, str]:
    """The variables that point ``fmt``'s tools at the server ``url``."""
    pip = {"PIP_INDEX_URL": url}
    trusted = _trusted_host(url)
    if trusted:
        pip["PIP_TRUSTED_HOST"] = trusted
    if fmt == "uv":
        return {"UV_DEFAULT_INDEX": url}
    if fmt == "pdm":
        return {"PDM_PYPI_URL": url}
    if fmt == "pip":
        return pip
    return {**pip, "UV_DEFAULT_INDEX": url, "PDM_PYPI_URL": url}


def render_serve(fmt: str, url: str) -> tuple[dict[str, str], str]:
    """(variables, text) that point ``fmt`` at the server ``url``."""
    variables = serve_variables(url, fmt)
    head = f"# pip-91n serve at {url}: failover, cache and verified files for every tool"
    if fmt == "poetry":
        text = "\n".join([
            f"{head}\n# pyproject.toml (or: poetry source add --priority=primary pip-91n {url})",
            "[[tool.poetry.source]]", 'name = "pip-91n"', f"url = {json.dumps(url)}",
            'priority = "primary"']) + "\n"
        return {}, text
    if fmt == "uv-toml":
        text = "\n".join([f"{head}\n# uv.toml (in pyproject.toml: [[tool.uv.index]])",
                          "[[index]]", 'name = "pip-91n"', f"url = {json.dumps(url)}",
                          "default = true"]) + "\n"
        return {"UV_DEFAULT_INDEX": url}, text
    if fmt in ("uv", "pdm", "pip"):
        lines = [head] + [f"export {k}={shlex.quote(v)}" for k, v in variables.items()]
        if fmt == "pdm":
            lines.append(f"# or, once per machine: pdm config pypi.url {url}")
        if fmt == "pip":
            lines.append(f"# or, in pip.conf: [global] index-url = {url}")
        return variables, "\n".join(lines) + "\n"
    return variables, render(fmt, variables).replace(
        "pip-91n settings", "pip-91n serve settings", 1)


def run(args: argparse.Namespace, out: Output) -> int:
    from pip_91n.settings.catalog import load_catalog
    from pip_91n.settings.config import load_config

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.serve is not None:
        url = serve_url(args.serve)
        variables, text = render_serve(args.format, url)
        if _trusted_host(url) and args.format not in ("uv", "uv-toml", "poetry", "pdm"):
            out.note("plain http to another machine: pip needs PIP_TRUSTED_HOST for it; "
                     "prefer https (a TLS reverse proxy in front of pip-91n serve)")
        if out.json_mode:
            out.json({"format": args.format, "serve": url, "variables": variables,
                      "text": text})
        else:
            out.stream.write(text)
        return EXIT_OK
    if args.format in SERVE_ONLY:
        raise UsageError(f"--format {args.format} needs --serve URL: {args.format} cannot load "
                         "the pip-91n hook; run `pip-91n serve` and point it there")
    catalog = load_catalog()
    config = load_config(catalog=catalog)
    secrets: list[str] = []
    how = ""
    if args.format in ("uv", "uv-toml"):
        mirrors, how = uv_mirrors(config, args.count, probe=args.probe)
        variables = uv_variables(mirrors, secrets)
        text = (render_uv_toml(mirrors, secrets, how) if args.format == "uv-toml"
                else render("uv", variables, how=how))
        if "not ranked" in how:
            out.note("no ranking yet: these are in chain order; run `pip-91n probe` first or "
                     "pass --probe")
    else:
        variables = env_variables(config, catalog, include_local=args.all, secrets=secrets)
        text = render(args.format, variables)
    if secrets:
        out.note("passwords in index URLs are shown as ***: supply them as CI or build "
                 "secrets, never in an image layer")
    if out.json_mode:
        out.json({"format": args.format, "variables": variables, "text": text})
    else:
        out.stream.write(text)
    return EXIT_OK
