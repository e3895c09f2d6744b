"""Public names of the mirror chain, lightness of ``import pip_91n``, one-call setup, odds and ends."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import pip_91n
from pip_91n.chain.requestlog import RequestLog
from pip_91n.chain.transport import FailoverTransport, chain_transport
from pip_91n.chain.workers import Workers
from pip_91n.errors import AllMirrorsFailed, Attempt, Pip91nError
from tests.harness import MirrorServer, PackageIndex

CHAIN_NAMES = ["AllMirrorsFailed", "ConfigError", "Mirror", "Catalog", "load_catalog",
               "MirrorConfig", "load_config", "resolve_chain", "HealthStore",
               "FailoverTransport", "chain_transport"]


@pytest.mark.parametrize("name", CHAIN_NAMES)
def test_lazy_public_names(name: str) -> None:
    assert name in pip_91n.__all__
    assert getattr(pip_91n, name) is not None


def test_import_pip_91n_and_config_stay_light() -> None:
    code = ("import sys, pip_91n, pip_91n.settings.config, pip_91n.settings.catalog, pip_91n.index.routing; "
            "bad = [m for m in ('httpx', 'pip', 'packaging') if m in sys.modules]; "
            "print(','.join(bad))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=root, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_all_mirrors_failed_pickles_and_is_in_the_tree() -> None:
    err = AllMirrorsFailed("https://pypi.org/simple/x/", [Attempt("a", "https://a/", "HTTP 503")])
    again = pickle.loads(pickle.dumps(err))
    assert again.attempts == err.attempts and str(again) == str(err)
    assert isinstance(err, Pip91nError)


def test_chain_transport_from_the_environment(tmp_path: Path, dep_tree: PackageIndex) -> None:
    user_config = tmp_path / "config.toml"
    user_config.write_text("timeout = 9\n")
    with MirrorServer(dep_tree) as mirror:
        env = {"PIP_91N_MIRRORS": mirror.simple_url, "PIP_91N_CACHE_DIR": str(tmp_path),
               "PIP_91N_CONFIG": str(user_config), "PIP_CONFIG_FILE": "/dev/null", "HOME": str(tmp_path),
               "PIP_91N_TIMEOUT": "2"}
        transport = chain_transport(env)
        assert isinstance(transport, FailoverTransport) and transport.failover.timeout == 2
        import httpx

        with httpx.Client(transport=transport) as client:
            assert client.get("https://pypi.org/simple/app/").status_code == 200
        transport.close()
    assert (tmp_path / "health.json").exists()


def test_request_log_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = RequestLog("-")
    log.write("tuna", "https://u:pw@h/simple/x/", 503, 10, 0.25, "HTTP 503")
    err = capsys.readouterr().err
    assert "tuna 503 10B 250ms https://u:***@h/simple/x/ failover: HTTP 503" in err
    RequestLog(None).write("x", "u", 200, 0, 0.0)  # no target: nothing, no error


def test_request_log_unwritable_is_dropped(tmp_path: Path) -> None:
    log = RequestLog(str(tmp_path / "missing-dir" / "log.txt"))
    log.write("a", "u", 200, 0, 0.0)
    assert log.target is None


def test_workers_reuse_idle_threads_and_never_queue_behind_a_stuck_job() -> None:
    pool = Workers(idle_exit=5)
    done = threading.Event()
    stuck = threading.Event()
    pool.submit(lambda: stuck.wait(5))  # a black-holed attempt
    pool.submit(done.set)
    assert done.wait(2)
    for _ in range(5):
        time.sleep(0.05)  # let the last worker go idle again
        ev = threading.Event()
        pool.submit(ev.set)
        assert ev.wait(2)
    assert pool.started == 2
    stuck.set()
    pool.close()


@pytest.mark.parametrize(
    ("url", "proxies", "expected"),
    [
        ("https://pypi.org/simple/", {}, None),
        ("https://pypi.org/simple/", {"https": "http://proxy:3128"}, "http://proxy:3128"),
        ("http://127.0.0.1:9/simple/", {"https": "http://p:1"}, None),
        ("https://pypi.org/simple/", {"all": "socks5://p:1"}, "socks5://p:1"),
        ("https://pypi.org/simple/", {"https": "http://p:1", "no": "pypi.org"}, None),
        ("https://files.pythonhosted.org/x", {"https": "http://p:1", "no": ".pythonhosted.org"},
         None),
        ("https://mirrors.aliyun.com/x", {"https": "http://p:1", "no": "pypi.org"}, "http://p:1"),
    ],
)
def test_default_inner_uses_the_environment_proxy(url: str, proxies: dict[str, str],
                                                  expected: str | None) -> None:
    import httpx

    from pip_91n._urls import proxy_for
    from pip_91n.net.httpx_pool import EnvProxyTransport

    assert proxy_for(url, proxies) == expected
    chosen: list[str | None] = []

    def factory(proxy: str | None) -> httpx.BaseTransport:
        chosen.append(proxy)
        return httpx.MockTransport(lambda r: httpx.Response(204))

    t = EnvProxyTransport(proxies, factory=factory)
    assert t.handle_request(httpx.Request("GET", url)).status_code == 204
    t.handle_request(httpx.Request("GET", url))
    assert chosen == [expected]  # one pool per proxy, reused
    t.close()


def test_default_inner_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pip_91n.net.httpx_pool import EnvProxyTransport

    monkeypatch.setenv("HTTPS_PROXY", "http://corp-proxy:8080")
    assert EnvProxyTransport().proxies.get("https") == "http://corp-proxy:8080"
