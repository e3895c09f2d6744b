"""`verify`: installed files against RECORD sha256 (modified, missing)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from pip_91n.cli.verify import verify_installed
from tests.harness import make_wheel

from .conftest import Runner


def install(site: Path, tmp: Path, name: str, version: str = "1.0") -> None:
    wheel = make_wheel(tmp, name, version, payload_size=1000)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)


def test_verify_clean_modified_missing(cli: Runner, tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name in ("good-pkg", "bad-pkg"):
        install(site, tmp_path, name)
    r = cli("verify", "--path", str(site))
    assert r.code == 0, r.out
    assert "2 distributions" in r.out and "match their RECORD" in r.out
    (site / "bad_pkg" / "__init__.py").write_text("import os  # tampered\n")
    (site / "bad_pkg" / "payload.bin").unlink()
    r = cli("verify", "--path", str(site))
    assert r.code == 1
    assert "modified: bad_pkg/__init__.py" in r.out and "missing:  bad_pkg/payload.bin" in r.out
    assert "pip install --force-reinstall --no-deps 'bad-pkg==1.0'" in r.out
    data = cli("verify", "--path", str(site), "--json").json
    assert data["ok"] is False
    by = {d["name"]: d for d in data["distributions"]}
    assert by["good-pkg"]["ok"] and by["good-pkg"]["checked"] >= 3
    assert by["bad-pkg"]["modified"] == ["bad_pkg/__init__.py"]
    assert by["bad-pkg"]["missing"] == ["bad_pkg/payload.bin"]
    # only the named ones, names normalized
    only = cli("verify", "--path", str(site), "GOOD_pkg")
    assert only.code == 0 and "bad-pkg" not in only.out
    unknown = cli("verify", "--path", str(site), "nope")
    assert unknown.code == 2 and "not installed: nope" in unknown.err


def test_same_size_change_is_caught_and_no_record(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, tmp_path, "pkg")
    payload = site / "pkg" / "payload.bin"
    data = bytearray(payload.read_bytes())
    data[10] ^= 0xFF
    payload.write_bytes(bytes(data))
    (site / "legacy-1.0.dist-info").mkdir()
    (site / "legacy-1.0.dist-info" / "METADATA").write_text("Name: legacy\nVersion: 1.0\n")
    reports, unknown = verify_installed(paths=[str(site)])
    by = {r.name: r for r in reports}
    assert unknown == []
    assert by["pkg"].modified == ("pkg/payload.bin",)
    assert by["legacy"].has_record is False and by["legacy"].ok


def test_a_missing_or_empty_path_is_an_error(cli: Runner, tmp_path: Path) -> None:
    missing = cli("verify", "--path", str(tmp_path / "does-not-exist"))
    assert missing.code == 2 and "no such directory" in missing.err and missing.out == ""
    (tmp_path / "empty").mkdir()
    empty = cli("verify", "--path", str(tmp_path / "empty"))
    assert empty.code == 1 and "no installed distributions found" in empty.err
