"""URLs in one place: credentials, redaction, origins, proxies and the ``#sha256=`` fragment.

Every rule about what a URL may carry and to whom lives here, so that the chain, the
download engine, the pip hook and every command line output apply the same one:

- a mirror's ``user:password@`` is sent only to its own origin, and is shown as ``***``;
- secret headers (``Authorization``, ``Proxy-Authorization``, ``Cookie``) never cross to
  another origin;
- a proxy is chosen as the standard library chooses it (``https_proxy``, ``all_proxy``,
  ``no_proxy``);
- a file's expected sha256 travels as the ``#sha256=<hex>`` fragment of its link.

Standard library only, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = [
    "SECRET_HEADERS",
    "cross_host_headers",
    "is_loopback",
    "origin",
    "proxy_for",
    "redact",
    "redact_text",
    "same_origin",
    "split_credentials",
    "split_sha256",
]

#: Request headers that never leave their own origin.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_DEFAULT_PORTS = {"https": 443, "http": 80}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
#: ``scheme://user[:password]@`` inside free text (an error message, a repr).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*)"
                       r"(?::(?P<password>[^\s/@]*))?@")


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and that part (or None)."""
    if "@" not in url:  # the common case, on every request: no parsing
        return url, None
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (and a lone token user too)."""
    bare, creds = split_credentials(url)
    if creds is None:
        return url
    user, password = creds
    shown = f"{quote(user, safe='')}:***" if password else "***"
    b = urlsplit(bare)
    return urlunsplit((b.scheme, f"{shown}@{b.netloc}", b.path, b.query, b.fragment))


def redact_text(text: str) -> str:
    """``text`` (an error message, a repr) with the password of every URL in it shown as
    ``***``."""
    if "@" not in text:
        return text

    def hide(m: re.Match[str]) -> str:
        if m.group("password") is not None:
            return f"{m.group('scheme')}{m.group('user')}:***@"
        return f"{m.group('scheme')}***@"

    return _USERINFO.sub(hide, text)


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port of the scheme spelled as None."""
    p = urlsplit(url)
    scheme = p.scheme.lower()
    port = p.port if p.port != _DEFAULT_PORTS.get(scheme) else None
    return (scheme, (p.hostname or "").lower(), port)


def same_origin(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` share scheme, host and port (default ports spelled or not)."""
    return origin(a) == origin(b)


def cross_host_headers(
    headers: Iterable[tuple[str, str]], source_url: str, target_url: str
) -> list[tuple[str, str]]:
    """Request headers safe to send to ``target_url``: secrets stay on their own origin."""
    if same_origin(source_url, target_url):
        return list(headers)
    return [(k, v) for k, v in headers if k.lower() not in SECRET_HEADERS]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def proxy_for(url: str, proxies: Mapping[str, str]) -> str | None:
    """The proxy URL for ``url`` under ``proxies`` (as ``getproxies_environment()`` gives):
    the scheme's, else ``all``, unless ``no`` (no_proxy) exempts the host."""
    if not proxies:
        return None
    import urllib.request

    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    # proxy_bypass_environment is the stdlib's no_proxy matcher (not in typeshed)
    bypass: Callable[[str, Mapping[str, str]], bool] = getattr(  # noqa: B009
        urllib.request, "proxy_bypass_environment")
    if "no" in proxies and bypass(host, proxies):
        return None
    return proxies.get(parts.scheme.lower()) or proxies.get("all")


def split_sha256(url: str) -> tuple[str, str | None]:
    """``url`` without its fragment, and the lower-case hex of a ``#sha256=<hex>`` fragment
    (None for any other fragment or none)."""
    bare, sep, fragment = url.partition("#")
    if not sep:
        return url, None
    name, _, value = fragment.partition("=")
    if name.lower() == "sha256" and _HEX64.fullmatch(value):
        return bare, value.lower()
    return bare, None
