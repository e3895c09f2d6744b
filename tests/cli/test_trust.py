"""Outside pip, TLS trusts what pip trusts: a loopback https mirror signed by a throwaway CA
answers ``doctor`` and ``probe`` when the CA comes through any of pip's ways to name one, and
is refused when it comes through none."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pip_91n.net import httpx_pool
from pip_91n.net.tls import trust_context, trust_sources
from tests.cli.conftest import CliEnv, Runner
from tests.harness import MirrorServer, PackageIndex

trustme = pytest.importorskip("trustme")


@pytest.fixture
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def https_mirror(ca: Any, dep_tree: PackageIndex) -> Iterator[MirrorServer]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    with MirrorServer(dep_tree, tls=server_ctx, name="tls") as mirror:
        yield mirror


@pytest.fixture(autouse=True)
def _fresh_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CA from this machine's environment, and no context cached by an earlier test."""
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(httpx_pool, "_tls", {})


def _ca_file(ca: Any, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _set_pip_config_cert(cli_env: CliEnv, cafile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cert`` in the pip config file pip reads last (it wins over the machine's own)."""
    cli_env.pip_conf.parent.mkdir(parents=True, exist_ok=True)
    cli_env.pip_conf.write_text(f"[global]\ncert = {cafile}\n", encoding="utf-8")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(cli_env.pip_conf))


WAYS = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "pip.conf cert"]


@pytest.mark.parametrize("way", WAYS)
def test_doctor_and_probe_trust_a_ca_named_the_way_pip_reads_it(
    way: str, ca: Any, https_mirror: MirrorServer, cli: Runner, cli_env: CliEnv,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cafile = _ca_file(ca, tmp_path)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no `cert` of this machine's pip
    if way == "pip.conf cert":
        _set_pip_config_cert(cli_env, cafile, monkeypatch)
    else:
        monkeypatch.setenv(way, cafile)
    monkeypatch.setenv("PIP_91N_MIRRORS", https_mirror.simple_url)
    doctor = cli("doctor", "--json")
    mirror = [f for f in doctor.json["findings"] if f["check"] == "mirror"]
    assert [f["level"] for f in mirror] == ["ok"], mirror
    assert "TLS ok" in mirror[0]["message"]
    probe = cli("probe", "--project", "app", "--json")
    assert probe.code == 0 and probe.json["results"][0]["ok"], probe.out


def test_without_the_ca_doctor_says_tls_failed(
    https_mirror: MirrorServer, cli: Runner, cli_env: CliEnv, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_91N_MIRRORS", https_mirror.simple_url)
    doctor = cli("doctor", "--json")
    assert doctor.code == 1
    mirror = [f for f in doctor.json["findings"] if f["check"] == "mirror"]
    assert "TLS to 127.0.0.1 failed (CERTIFICATE_VERIFY_FAILED)" in mirror[0]["message"]
    assert not cli("probe", "--project", "app", "--json").json["results"][0]["ok"]


def test_a_missing_ca_file_is_a_doctor_error(
    cli: Runner, cli_env: CliEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_CERT", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("PIP_91N_MIRRORS", "pypi")
    doctor = cli("doctor", "--offline", "--json")
    tls = [f for f in doctor.json["findings"] if f["check"] == "tls"]
    assert [f["level"] for f in tls] == ["ok", "error"] and "missing.pem" in tls[1]["message"]


def test_pip_cert_wins_over_requests_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/requests.pem")
    assert [s.what for s in trust_sources()][-1] == "REQUESTS_CA_BUNDLE"
    monkeypatch.setenv("PIP_CERT", "/etc/pip.pem")
    assert [(s.what, s.cafile) for s in trust_sources()][-1] == (
        "PIP_CERT (pip --cert)", "/etc/pip.pem")
    assert isinstance(trust_context(), ssl.SSLContext)


def test_plain_http_pools_never_load_a_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    import pip_91n.net.tls as tls

    built: list[int] = []
    real = tls.trust_context
    monkeypatch.setattr(tls, "trust_context", lambda *a, **k: built.append(1) or real(*a, **k))
    t = httpx_pool.EnvProxyTransport({})
    t._pool(None, False)
    assert built == []
    pool = t._pool(None, True)
    assert built == [1] and t._pool(None, True) is pool
    assert httpx_pool.tls_context() is httpx_pool.tls_context() and built == [1]
    assert isinstance(pool, httpx.HTTPTransport)
    t.close()
