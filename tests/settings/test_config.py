"""Configuration precedence, sources, pip's index as chain head, and actionable errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pip_91n.errors import ConfigError, Pip91nError
from pip_91n.settings.config import load_config, resolve_config
from pip_91n.settings.configfile import ConfigLayer, read_toml_layer
from pip_91n.settings.pipconf import PipIndex, pip_config_files, pip_index_url
from pip_91n.settings.values import DEFAULT_TIMEOUT, Source

CACHE = Path("/tmp/pip-91n-test-cache")


def layer(kind: str, **values: object) -> ConfigLayer:
    return ConfigLayer(f"/etc/{kind}.toml", kind, values, {k: i + 1 for i, k in enumerate(values)})


def resolve(env: dict[str, str] | None = None, *layers: ConfigLayer, pip: PipIndex | None = None):  # type: ignore[no-untyped-def]
    return resolve_config(env or {}, layers, pip_index=pip, default_cache_dir=CACHE)


def names(cfg) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.name for m in cfg.chain]


def test_defaults() -> None:
    cfg = resolve()
    assert cfg.auto and names(cfg)[-1] == "pypi" and len(cfg.chain) == 9
    assert cfg.timeout == DEFAULT_TIMEOUT and cfg.cache_dir == CACHE and cfg.log is None
    assert cfg.verify == "quorum"
    assert resolve({"PIP_91N_VERIFY": " Strict "}).verify == "strict"
    assert cfg.source("mirrors") == Source("default") and str(cfg.source("timeout")) == (
        "built-in default")


@pytest.mark.parametrize(
    ("env", "layers", "expected", "source"),
    [
        ({"PIP_91N_MIRRORS": "tuna,pypi"}, (layer("user", mirrors=["aliyun"]),),
         ["tuna", "pypi"], "PIP_91N_MIRRORS"),
        ({}, (layer("user", mirrors=["aliyun"]), layer("site", mirrors="sjtu")),
         ["aliyun"], "/etc/user.toml:1"),
        ({}, (layer("site", mirrors="sjtu, pypi"),), ["sjtu", "pypi"], "/etc/site.toml:1"),
        ({"PIP_91N_MIRRORS": "  "}, (layer("site", mirrors="sjtu"),), ["sjtu"],
         "/etc/site.toml:1"),
        ({"PIP_91N_MIRRORS": "TUNA, tuna ,pypi"}, (), ["tuna", "pypi"], "PIP_91N_MIRRORS"),
    ],
)
def test_precedence(env: dict[str, str], layers: tuple[ConfigLayer, ...], expected: list[str],
                    source: str) -> None:
    cfg = resolve(env, *layers)
    assert names(cfg) == expected and not cfg.auto
    assert str(cfg.source("mirrors")) == source


def test_each_setting_remembers_its_source() -> None:
    cfg = resolve({"PIP_91N_TIMEOUT": "2.5", "PIP_91N_LOG": "-"},
                  layer("user", timeout=9, hedge_delay=0, cache_dir="~/c"),
                  layer("site", log="/var/log/x", hedge_delay=3))
    assert cfg.timeout == 2.5 and cfg.source("timeout") == Source("env", "PIP_91N_TIMEOUT")
    assert cfg.log == "-" and cfg.hedge_delay == 0
    assert cfg.source("hedge_delay") == Source("user", "/etc/user.toml", 2)
    assert cfg.cache_dir == Path("~/c").expanduser()


def test_url_entries_and_catalog_urls() -> None:
    cfg = resolve({"PIP_91N_MIRRORS": "https://pypi.tuna.tsinghua.edu.cn/simple,"
                   "https://u:p@private.example/simple/,pypi"})
    assert names(cfg)[0] == "tuna"  # a catalog URL gets the catalog entry (layout, domain)
    assert cfg.chain[1].simple_url == "https://u:p@private.example/simple/"
    assert "p@" not in cfg.chain[1].name


def test_loopback_http_is_allowed_and_allow_http_opens_others() -> None:
    assert names(resolve({"PIP_91N_MIRRORS": "http://127.0.0.1:8080/simple/"}))
    assert names(resolve({"PIP_91N_MIRRORS": "http://localhost:1/simple/"}))
    cfg = resolve({"PIP_91N_MIRRORS": "http://10.0.0.5/simple/", "PIP_91N_ALLOW_HTTP": "10.0.0.5"})
    assert cfg.allow_http == ("10.0.0.5",)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PIP_91N_MIRRORS": "tuna,nosuch"}, "PIP_91N_MIRRORS: unknown mirror 'nosuch'; known names: 91n"),
        ({"PIP_91N_MIRRORS": "ftp://x/simple"}, "not a simple-index URL"),
        ({"PIP_91N_MIRRORS": "https:///simple"}, "not a simple-index URL"),
        ({"PIP_91N_MIRRORS": "http://10.0.0.5/simple/"}, "PIP_91N_ALLOW_HTTP=10.0.0.5"),
        ({"PIP_91N_MIRRORS": "auto,tuna"}, "auto cannot be combined"),
        ({"PIP_91N_MIRRORS": ",,"}, "empty mirror list"),
        ({"PIP_91N_TIMEOUT": "-1"}, "PIP_91N_TIMEOUT: timeout must be a positive number"),
        ({"PIP_91N_TIMEOUT": "0"}, "positive"),
        ({"PIP_91N_TIMEOUT": "nan"}, "positive"),
        ({"PIP_91N_TIMEOUT": "soon"}, "e.g. timeout = 5"),
        ({"PIP_91N_HEDGE_DELAY": "-0.1"}, "PIP_91N_HEDGE_DELAY: hedge_delay must be a number >= 0"),
        ({"PIP_91N_VERIFY": "yes"}, "PIP_91N_VERIFY: verify must be quorum"),
    ],
)
def test_bad_env_values(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(env)
    assert needle in str(info.value)
    assert isinstance(info.value, (Pip91nError, ValueError))


def test_bad_file_values_name_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"/etc/user.toml:2: timeout must be"):
        resolve({}, layer("user", mirrors="tuna", timeout=True))
    with pytest.raises(ConfigError, match=r"/etc/site.toml:1: mirrors must be a string or a list"):
        resolve({}, layer("site", mirrors=3))
    with pytest.raises(ConfigError, match=r"/etc/user.toml:1: allow_http must be a list"):
        resolve({}, layer("user", allow_http=5))


def test_read_toml_layer(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    assert read_toml_layer(p, "user") is None
    p.write_text('# comment\nmirrors = ["tuna", "pypi"]\n\ntimeout = 3\n', encoding="utf-8")
    got = read_toml_layer(p, "user")
    assert got is not None and got.values["timeout"] == 3 and got.lines == {"mirrors": 2, "timeout": 4}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('mirrors = ["tuna"\n', ":1: invalid TOML"),
        ('timeout = 3\nmirrors = tuna\n', ":2: invalid TOML"),
        ("mirrors = 'tuna'\nmirror = 'x'\n", ":2: unknown setting 'mirror'"),
    ],
)
def test_bad_toml_files(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=needle):
        read_toml_layer(p, "user")


def test_unreadable_toml(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_bytes(b"\xff\xfe mirrors")
    with pytest.raises(ConfigError, match="cannot read"):
        read_toml_layer(p, "user")


@pytest.mark.parametrize(
    ("pip_url", "head"),
    [
        ("https://pypi.tuna.tsinghua.edu.cn/simple", "tuna"),
        ("https://mirrors.aliyun.com/pypi/simple/", "aliyun"),
        ("https://pypi.org/simple", None),
        ("https://private.example/simple/", None),
    ],
)
def test_pip_index_on_a_catalog_mirror_heads_an_auto_chain(pip_url: str, head: str | None) -> None:
    cfg = resolve(pip=PipIndex(pip_url, "/etc/pip.conf:2"))
    assert cfg.head == head and cfg.pip_index == pip_url
    if head:
        assert names(cfg)[0] == head and str(cfg.source("head")) == "/etc/pip.conf:2"
        assert len(cfg.chain) == 9


def test_an_explicit_list_is_used_exactly_as_given() -> None:
    cfg = resolve({"PIP_91N_MIRRORS": "aliyun,pypi"},
                  pip=PipIndex("https://pypi.tuna.tsinghua.edu.cn/simple", "PIP_INDEX_URL"))
    assert names(cfg) == ["aliyun", "pypi"] and cfg.head is None


def test_pip_index_url_env_wins(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirrors.aliyun.com/pypi/simple/\n")
    got = pip_index_url({"PIP_INDEX_URL": "https://pypi.tuna.tsinghua.edu.cn/simple"}, [conf])
    assert got == PipIndex("https://pypi.tuna.tsinghua.edu.cn/simple", "PIP_INDEX_URL")


def test_pip_conf_files_merge_like_pip(tmp_path: Path) -> None:
    glob, user, env = tmp_path / "g.conf", tmp_path / "u.conf", tmp_path / "e.conf"
    glob.write_text("[global]\nindex-url = https://a/simple\n[install]\nindex_url = https://b/simple\n")
    user.write_text("[global]\n# c\n\nindex-url = https://c/simple\n")
    env.write_text("[global]\ntimeout = 3\n")
    got = pip_index_url({}, [glob, user, env])
    assert got == PipIndex("https://b/simple", f"{glob}:4")  # [install] beats [global]
    got = pip_index_url({}, [user, env])
    assert got == PipIndex("https://c/simple", f"{user}:4")
    bad = tmp_path / "bad.conf"
    bad.write_text("no section\n")
    assert pip_index_url({}, [bad, tmp_path / "missing.conf"]) is None


def test_pip_config_file_locations(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_DIRS": "/a:/b"}
    files = [str(p) for p in pip_config_files(env)]
    assert files[:3] == ["/a/pip/pip.conf", "/b/pip/pip.conf", "/etc/pip.conf"]
    assert f"{tmp_path}/.pip/pip.conf" in files and f"{tmp_path}/.config/pip/pip.conf" in files
    existing = tmp_path / "mine.conf"
    existing.write_text("")
    files = [str(p) for p in pip_config_files({**env, "PIP_CONFIG_FILE": str(existing)})]
    assert files[-1] == str(existing) and f"{tmp_path}/.pip/pip.conf" not in files
    assert "/dev/null" not in [str(p) for p in pip_config_files({"PIP_CONFIG_FILE": "/dev/null"})]


def test_load_config_reads_env_files_and_pip(tmp_path: Path) -> None:
    user = tmp_path / "user.toml"
    user.write_text('timeout = 7\nlog = "-"\n')
    pipconf = tmp_path / "pip.conf"
    pipconf.write_text("[global]\nindex-url = https://mirrors.aliyun.com/pypi/simple\n")
    env = {"PIP_91N_CONFIG": str(user), "PIP_CONFIG_FILE": str(pipconf), "HOME": str(tmp_path),
           "XDG_CONFIG_DIRS": str(tmp_path / "none"), "PIP_91N_CACHE_DIR": str(tmp_path / "c")}
    cfg = load_config(env)
    assert cfg.timeout == 7 and cfg.log == "-" and cfg.cache_dir == tmp_path / "c"
    assert cfg.head == "aliyun" and str(cfg.source("head")) == f"{pipconf}:2"
    assert str(cfg.source("timeout")) == f"{user}:1"


def test_load_config_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"PIP_91N_CONFIG: .* does not exist"):
        load_config({"PIP_91N_CONFIG": str(tmp_path / "nope.toml")})


def test_disable_flag() -> None:
    assert resolve({"PIP_91N_DISABLE": "1"}).disabled
    assert not resolve({"PIP_91N_DISABLE": "0"}).disabled


def test_every_setting_names_its_source() -> None:
    cfg = resolve({"PIP_91N_MIRRORS": "tuna,https://u:pw@priv.example/simple/"},
                  layer("user", timeout=3), pip=None)
    assert [m.name for m in cfg.chain] == ["tuna", "priv.example/simple"]
    assert str(cfg.source("mirrors")) == "PIP_91N_MIRRORS"
    assert str(cfg.source("timeout")) == "/etc/user.toml:1" and cfg.timeout == 3
    assert str(cfg.source("log")) == "built-in default" and cfg.log is None
    auto = resolve(pip=PipIndex("https://mirrors.aliyun.com/pypi/simple/", "PIP_INDEX_URL"))
    assert auto.auto and auto.chain[0].name == "aliyun" and auto.head == "aliyun"
    assert str(auto.source("head")) == "PIP_INDEX_URL"


def test_pip_config_file_devnull_means_no_pip_config_at_all(tmp_path: Path) -> None:
    # as in pip: PIP_CONFIG_FILE=/dev/null skips every file, the global ones included
    assert pip_config_files({"PIP_CONFIG_FILE": os.devnull, "HOME": str(tmp_path)}) == []
    assert pip_index_url({"PIP_CONFIG_FILE": os.devnull, "HOME": str(tmp_path)}) is None


def test_inside_pip_its_own_platformdirs_gives_the_same_paths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import platformdirs

    from pip_91n.settings import values

    vendored = pytest.importorskip("pip._vendor.platformdirs")
    for name in ("user_config_path", "site_config_path", "user_cache_path"):
        assert getattr(vendored, name)("pip-91n") == getattr(platformdirs, name)("pip-91n")
    monkeypatch.setitem(sys.modules, "pip._vendor.platformdirs", vendored)
    assert values.platformdirs() is vendored  # no second copy imported into pip
    monkeypatch.delitem(sys.modules, "pip._vendor.platformdirs")
    assert values.platformdirs() is platformdirs


def test_an_empty_config_file_is_an_empty_layer(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("\n  \n", encoding="utf-8")
    assert read_toml_layer(path, "user") == ConfigLayer(str(path), "user", {}, {})
    cfg = load_config({"PIP_91N_CONFIG": str(path), "PIP_CONFIG_FILE": os.devnull,
                       "PIP_91N_MIRRORS": "tuna,pypi"})
    assert [m.name for m in cfg.chain] == ["tuna", "pypi"]
