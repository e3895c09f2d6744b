"""What pip-91n trusts over TLS outside pip: what pip trusts.

Inside pip the chain sends over pip's own pools, so it verifies exactly as pip does. Outside
pip (``pip-91n probe``, ``doctor``, the ``auto`` probe, oss_runtime's model downloads) this
module builds the same trust:

- the system's store (with ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, as OpenSSL reads them), through
  truststore when it is there (pip >= 24.2 uses it: the OS's own verifier on macOS and
  Windows; pip's vendored copy counts);
- certifi's bundle, pip's default before 24.2, when certifi is installed;
- pip's ``--cert`` (``PIP_CERT`` or ``cert`` in pip's config), else ``REQUESTS_CA_BUNDLE`` or
  ``CURL_CA_BUNDLE``, as requests applies them to pip.

``trust_sources`` says which of these apply, for ``doctor``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["TrustSource", "trust_context", "trust_sources"]


class TrustSource(NamedTuple):
    """One set of CAs trusted: ``what`` (for people) and ``cafile`` (None for the store)."""

    what: str
    cafile: str | None = None


def _truststore() -> Any:
    for name in ("truststore", "pip._vendor.truststore"):
        try:
            return __import__(name, fromlist=["SSLContext"])
        except Exception:
            continue
    return None


def _certifi() -> str | None:
    for name in ("certifi", "pip._vendor.certifi"):
        try:
            where: str = __import__(name, fromlist=["where"]).where()
        except Exception:
            continue
        if os.path.isfile(where):
            return where
    return None


def trust_sources(environ: Mapping[str, str] | None = None) -> list[TrustSource]:
    """The CAs pip would trust here, in the order they are loaded."""
    from pip_91n.settings.pipconf import pip_cert

    env = os.environ if environ is None else environ
    out = [TrustSource("the system store" + (" (truststore)" if _truststore() else ""))]
    certifi = _certifi()
    if certifi:
        out.append(TrustSource("certifi", certifi))
    cert = pip_cert(env)
    if cert is not None:
        out.append(TrustSource(f"{cert[1]} (pip --cert)", cert[0]))
    else:
        for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            if env.get(var, "").strip():
                out.append(TrustSource(var, env[var].strip()))
                break
    return out


def trust_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A verifying client context that trusts what pip trusts. A CA file that cannot be
    read is skipped (pip would fail on it too; ``doctor`` reports it)."""
    store = _truststore()
    ctx: ssl.SSLContext
    if store is not None:
        ctx = store.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        ctx = ssl.create_default_context()
    for source in trust_sources(environ):
        if source.cafile is None:
            continue
        try:
            if os.path.isdir(source.cafile):
                ctx.load_verify_locations(capath=source.cafile)
            else:
                ctx.load_verify_locations(cafile=source.cafile)
        except (OSError, ssl.SSLError):
            continue
    return ctx
