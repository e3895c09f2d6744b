"""Every setting the hook reads is validated by the same code as ``status``, ``doctor`` and
``config show``: a bad value is an error in each of them, naming the variable and a good value,
as one message (never a repr), and the hook leaves pip alone with one stderr line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Runner
from tests.harness import PackageIndex, Venv

BAD = {
    "PIP_91N_TIMEOUT": ("abc", "timeout = 5"),
    "PIP_91N_HEDGE_DELAY": ("-1", "hedge_delay = 0.75"),
    "PIP_91N_SEGMENT_THRESHOLD": ("abc", "32M"),
    "PIP_91N_MIRRORS": ("nope", "known names"),
    "PIP_91N_VERIFY": ("maybe", "quorum"),
}


@pytest.mark.parametrize("var", list(BAD))
def test_status_doctor_and_config_agree_on_a_bad_setting(
    var: str, cli: Runner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    value, hint = BAD[var]
    monkeypatch.setenv(var, value)
    for argv in (("status", "--no-pip"), ("config", "show")):
        r = cli(*argv)
        assert r.code == 3, (argv, r.out, r.err)
        assert r.err.startswith(f"pip-91n: error: {var}") and hint in r.err, r.err
        assert "Error(" not in r.err  # a message, not a repr
    doctor = cli("doctor", "--offline", "--json")
    assert doctor.code == 1
    config = [f for f in doctor.json["findings"] if f["check"] == "config"]
    assert config[0]["level"] == "error" and config[0]["message"].startswith(var)


def test_an_unwritable_log_is_a_doctor_error(
    cli: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIP_91N_LOG", str(tmp_path))  # a directory: no file can be opened
    monkeypatch.setenv("PIP_91N_MIRRORS", "pypi")
    doctor = cli("doctor", "--offline", "--json").json
    log = [f for f in doctor["findings"] if f["check"] == "log"]
    assert log[0]["level"] == "error" and log[0]["message"].startswith("PIP_91N_LOG: ")


@pytest.mark.hook
def test_the_hook_names_a_bad_setting_and_an_unwritable_log_in_one_line(
    shared_venv: Venv, dep_tree: PackageIndex, mirrors: Any, sealed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    (mirror,) = mirrors(dep_tree, 1)
    env = {**sealed_env, "PIP_91N_MIRRORS": mirror.simple_url, "PIP_91N_LOG": str(tmp_path)}
    proc = shared_venv.pip("install", "--no-cache-dir", "--target", str(tmp_path / "t"),
                           "lib-c", env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("pip-91n")]
    assert len(ours) == 1 and ours[0].startswith("pip-91n: PIP_91N_LOG: cannot write"), ours
    env = {**sealed_env, "PIP_91N_MIRRORS": mirror.simple_url,
           "PIP_91N_SEGMENT_THRESHOLD": "abc"}
    proc = shared_venv.pip("install", "--no-cache-dir", "--index-url", mirror.simple_url,
                           "--target", str(tmp_path / "t2"), "lib-c", env=env, check=False)
    assert proc.returncode == 0, proc.stderr  # pip itself still works, unpatched
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("pip-91n")]
    assert len(ours) == 1 and "PIP_91N_SEGMENT_THRESHOLD" in ours[0], ours
    assert "pip runs without the mirror chain" in ours[0] and "Error(" not in ours[0]
