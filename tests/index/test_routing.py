"""Pure routing: chain membership, resources, per-mirror URLs, credentials, redaction."""

from __future__ import annotations

import pytest

from pip_91n._urls import cross_host_headers, redact, split_credentials
from pip_91n.index.routing import (
    Resource,
    classify,
    mirror_for_url,
    normalize_name,
    project_from_filename,
    resource_url,
)
from pip_91n.settings.catalog import BUILTIN_MIRRORS, Mirror, builtin_catalog

CAT = builtin_catalog()
CHAIN = BUILTIN_MIRRORS
H = "ab/cd/" + "0123456789" * 6
WHL = "Foo_Bar-1.0-py3-none-any.whl"
CAS = f"{H}/{WHL}"
FLAT = Mirror("flat", "http://127.0.0.1:8000/simple/")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Foo_Bar", "foo-bar"), ("foo.bar", "foo-bar"), ("A--B__C", "a-b-c"), ("x", "x")],
)
def test_normalize_name(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


@pytest.mark.parametrize(
    ("filename", "project"),
    [
        ("Foo_Bar-1.0-py3-none-any.whl", "foo-bar"),
        ("torch-2.4.0-1-cp311-cp311-linux_x86_64.whl", "torch"),
        ("foo-bar-1.0.tar.gz", "foo-bar"),
        ("Django-5.0.zip", "django"),
        ("pkg-1.0.tar.bz2", "pkg"),
        ("thing-1.0-py2.7.egg", "thing"),
        ("bad.whl", None),
        ("noversion.tar.gz", None),
        ("README.txt", None),
    ],
)
def test_project_from_filename(filename: str, project: str | None) -> None:
    assert project_from_filename(filename) == project


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://pypi.org/simple/", Resource("index", mirror="pypi")),
        ("https://pypi.org/simple", Resource("index", mirror="pypi")),
        ("https://pypi.org/simple/Foo_Bar/", Resource("page", "foo-bar", mirror="pypi")),
        ("https://pypi.org/simple/foo-bar", Resource("page", "foo-bar", mirror="pypi")),
        (f"https://files.pythonhosted.org/packages/{CAS}",
         Resource("file", "foo-bar", WHL, CAS, "pypi")),
        (f"https://files.pythonhosted.org/packages/{CAS}.metadata",
         Resource("metadata", "foo-bar", WHL, CAS, "pypi")),
        (f"https://pypi.tuna.tsinghua.edu.cn/packages/{CAS}#sha256=00",
         Resource("file", "foo-bar", WHL, CAS, "tuna")),
        (f"https://mirrors.tuna.tsinghua.edu.cn/pypi/web/packages/{CAS}",
         Resource("file", "foo-bar", WHL, CAS, "tuna")),
        (f"https://mirror.sjtu.edu.cn/pypi-packages/{CAS}",
         Resource("file", "foo-bar", WHL, CAS, "sjtu")),
        ("https://mirrors.bfsu.edu.cn/pypi/web/simple/numpy/",
         Resource("page", "numpy", mirror="bfsu")),
        ("https://mirrors.ustc.edu.cn/pypi/web/simple/numpy/",
         Resource("page", "numpy", mirror="ustc")),
        ("https://pypi.org/pypi/foo/json", None),
        ("https://pypi.org/simple/foo/extra/", None),
        ("https://files.pythonhosted.org/robots.txt", None),
        ("https://example.com/simple/foo/", None),
        ("https://download.pytorch.org/whl/cpu/torch/", None),
    ],
)
def test_classify(url: str, expected: Resource | None) -> None:
    assert classify(url, CHAIN) == expected


def test_pypi_hosts_belong_even_when_pypi_is_not_in_the_chain() -> None:
    tuna = CAT.get("tuna")
    assert tuna is not None
    assert classify("https://pypi.org/simple/x/", [tuna]) == Resource("page", "x")
    assert classify(f"https://files.pythonhosted.org/packages/{CAS}", [tuna]) == Resource(
        "file", "foo-bar", WHL, CAS)


def test_flat_layout_files_on_a_chain_host() -> None:
    got = classify(f"http://127.0.0.1:8000/files/{WHL}", [FLAT])
    assert got == Resource("file", "foo-bar", WHL, None, "flat")
    assert classify("http://127.0.0.1:8000/simple/foo/", [FLAT]) == Resource(
        "page", "foo", mirror="flat")
    assert classify("http://127.0.0.1:9999/simple/foo/", [FLAT]) is None


@pytest.mark.parametrize(
    ("mirror", "kind", "expected"),
    [
        ("tuna", "page", "https://pypi.tuna.tsinghua.edu.cn/simple/foo-bar/"),
        ("tuna", "file", f"https://pypi.tuna.tsinghua.edu.cn/packages/{CAS}"),
        ("tuna", "metadata", f"https://pypi.tuna.tsinghua.edu.cn/packages/{CAS}.metadata"),
        ("sjtu", "file", f"https://mirror.sjtu.edu.cn/pypi-packages/{CAS}"),
        ("aliyun", "file", f"https://mirrors.aliyun.com/pypi/packages/{CAS}"),
        ("huawei", "metadata",
         f"https://repo.huaweicloud.com/repository/pypi/packages/{CAS}.metadata"),
        ("pypi", "file", f"https://files.pythonhosted.org/packages/{CAS}"),
        ("pypi", "index", "https://pypi.org/simple/"),
        ("91n", "file", None),  # layout unknown: only its own page can tell
        ("91n", "page", "https://pypi.91n.ml/simple/foo-bar/"),
    ],
)
def test_resource_url(mirror: str, kind: str, expected: str | None) -> None:
    m = CAT.get(mirror)
    assert m is not None
    res = Resource(kind, "foo-bar", WHL if kind in ("file", "metadata") else None,
                   CAS if kind in ("file", "metadata") else None)
    assert resource_url(res, m) == expected


def test_known_url_wins_and_no_cas_means_unknown() -> None:
    tuna = CAT.get("tuna")
    assert tuna is not None
    res = Resource("metadata", "foo-bar", WHL, None)
    assert resource_url(res, tuna) is None
    assert resource_url(res, tuna, {"tuna": "https://t/x.whl"}) == "https://t/x.whl.metadata"


def test_mirror_for_url_prefers_longest_prefix() -> None:
    a = Mirror("a", "https://h.example/simple/")
    b = Mirror("b", "https://h.example/b/simple/")
    assert mirror_for_url("https://h.example/b/simple/x/", [a, b]) == b
    assert mirror_for_url("https://h.example/simple/x/", [a, b]) == a
    assert mirror_for_url("https://user:pw@h.example/b/simple/x/", [a, b]) == b


@pytest.mark.parametrize(
    ("url", "bare", "creds"),
    [
        ("https://h/simple/", "https://h/simple/", None),
        ("https://u:p%40ss@h:8443/s/", "https://h:8443/s/", ("u", "p@ss")),
        ("https://token@h/s/", "https://h/s/", ("token", "")),
    ],
)
def test_split_credentials(url: str, bare: str, creds: tuple[str, str] | None) -> None:
    assert split_credentials(url) == (bare, creds)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://h/simple/", "https://h/simple/"),
        ("https://u:secret@h/simple/", "https://u:***@h/simple/"),
        ("https://tok3n@h/simple/", "https://***@h/simple/"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "secret" not in redact(url) and "tok3n" not in redact(url)


def test_credentials_never_cross_hosts() -> None:
    headers = [("Authorization", "Basic x"), ("Cookie", "c"), ("Accept", "a"),
               ("Proxy-Authorization", "p")]
    same = cross_host_headers(headers, "https://h/simple/x/", "https://h/packages/y")
    assert same == headers
    other = cross_host_headers(headers, "https://h/simple/x/", "https://other/simple/x/")
    assert other == [("Accept", "a")]
    port = cross_host_headers(headers, "https://h/simple/", "https://h:8443/simple/")
    assert port == [("Accept", "a")]
