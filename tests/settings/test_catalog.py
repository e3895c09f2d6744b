"""The catalog: contract names, failure domains, URL matching, entry-point providers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from pip_91n.settings.catalog import (
    LAYOUT_PYPI,
    Catalog,
    Mirror,
    builtin_catalog,
    load_catalog,
    mirror_from_url,
)

CONTRACT_NAMES = ("91n", "tuna", "bfsu", "ustc", "aliyun", "tencent", "huawei", "sjtu", "pypi")


def test_builtin_names_are_the_contract() -> None:
    assert builtin_catalog().names == CONTRACT_NAMES


def test_91n_url_is_the_documented_one() -> None:
    m = builtin_catalog().get("91n")
    assert m is not None and m.simple_url == "https://pypi.91n.ml/simple/"


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_every_mirror_has_an_https_index(name: str) -> None:
    m = builtin_catalog().get(name)
    assert m is not None
    assert m.simple_url.startswith("https://") and m.simple_url.endswith("/")
    if m.layout == LAYOUT_PYPI:
        assert m.file_base is not None and m.file_base.endswith("/")


def test_tuna_bfsu_ustc_share_a_failure_domain() -> None:
    cat = builtin_catalog()
    domains = {n: cat.get(n).failure_domain for n in CONTRACT_NAMES}  # type: ignore[union-attr]
    assert domains["tuna"] == domains["bfsu"] == domains["ustc"]
    others = [domains[n] for n in ("91n", "aliyun", "tencent", "huawei", "sjtu", "pypi")]
    assert len(set(others)) == len(others) and domains["tuna"] not in others


def test_sjtu_files_live_under_pypi_packages() -> None:
    m = builtin_catalog().get("sjtu")
    assert m is not None and m.file_base == "https://mirror.sjtu.edu.cn/pypi-packages/"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://pypi.tuna.tsinghua.edu.cn/simple", "tuna"),
        ("https://pypi.tuna.tsinghua.edu.cn/simple/", "tuna"),
        ("https://mirrors.tuna.tsinghua.edu.cn/pypi/web/simple", "tuna"),
        ("https://mirrors.aliyun.com/pypi/simple/", "aliyun"),
        ("HTTPS://MIRRORS.ALIYUN.COM/pypi/simple/", "aliyun"),
        ("https://pypi.org/simple", "pypi"),
        ("https://mirrors.ustc.edu.cn/pypi/web/simple", "ustc"),
        ("https://example.com/simple/", None),
    ],
)
def test_match_url(url: str, name: str | None) -> None:
    m = builtin_catalog().match_url(url)
    assert (m.name if m else None) == name


def test_get_is_case_insensitive() -> None:
    assert builtin_catalog().get(" TUNA ") is not None
    assert builtin_catalog().get("nope") is None


def test_mirror_validation() -> None:
    with pytest.raises(ValueError, match="layout"):
        Mirror("x", "https://x/simple/", layout="weird")
    with pytest.raises(ValueError, match="file_base"):
        Mirror("x", "https://x/simple/", layout=LAYOUT_PYPI)
    m = Mirror("x", "https://x/simple")
    assert m.simple_url == "https://x/simple/" and m.failure_domain == "x"


def test_mirror_from_url() -> None:
    m = mirror_from_url("https://user:pw@host.example:8443/simple")
    assert m.simple_url == "https://user:pw@host.example:8443/simple/"
    assert "pw" not in m.name and m.layout == "unknown"


@dataclass
class FakeEP:
    name: str
    target: Any

    def load(self) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


class Provider:
    def __init__(self, priority: Any, mirrors: list[Any]) -> None:
        self.priority = priority
        self._mirrors = mirrors

    def mirrors(self) -> list[Any]:
        return self._mirrors


def test_provider_adds_mirrors_before_pypi() -> None:
    extra = Mirror("corp", "https://pypi.corp.example/simple/")
    cat = load_catalog([FakeEP("corp", Provider(1, [extra]))])
    assert cat.names[-2:] == ("corp", "pypi")
    assert cat.get("corp") == extra


def test_plain_callable_provider() -> None:
    extra = Mirror("fn", "https://fn.example/simple/")
    cat = load_catalog([FakeEP("fn", lambda: [extra])])
    assert "fn" in cat.names


def test_higher_priority_wins_a_name_clash() -> None:
    low = Mirror("dup", "https://low.example/simple/")
    high = Mirror("dup", "https://high.example/simple/")
    cat = load_catalog([FakeEP("a", Provider(1, [low])), FakeEP("b", Provider(5, [high]))])
    assert cat.get("dup") == high
    over = Mirror("tuna", "https://tuna.override/simple/")
    assert load_catalog([FakeEP("o", Provider(1, [over]))]).get("tuna") == over
    assert load_catalog([FakeEP("o", Provider(0, [over]))]).get("tuna") != over


@pytest.mark.parametrize(
    "target",
    [
        ImportError("no module"),
        Provider("high", [Mirror("z", "https://z/simple/")]),
        Provider(1, ["not a mirror"]),
        object(),
        Provider(lambda: 1 / 0, []),
    ],
    ids=["load-fails", "bad-priority", "bad-item", "not-a-provider", "priority-raises"],
)
def test_broken_provider_is_logged_and_skipped(target: Any, caplog: pytest.LogCaptureFixture) -> None:
    good = Mirror("good", "https://good.example/simple/")
    with caplog.at_level(logging.ERROR, logger="pip_91n"):
        cat = load_catalog([FakeEP("broken", target), FakeEP("good", Provider(1, [good]))])
    assert "good" in cat.names and "z" not in cat.names
    assert "broken" in caplog.text


def test_installed_entry_points_are_read_without_error() -> None:
    assert isinstance(load_catalog(), Catalog)
