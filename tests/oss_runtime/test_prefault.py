"""`oss_runtime.prefault`: the experts' pages are mapped ahead of use, as file pages only."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from oss_runtime import prefault as pf

MB = 1 << 20


def _rss() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


@pytest.fixture
def mapped(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "shard.bin"
    path.write_bytes(bytes(range(256)) * (96 * MB // 256))
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # as bind.MappedFiles maps
    yield str(path), m
    m.close()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_prefault_maps_file_pages_without_anonymous_memory(mapped) -> None:  # type: ignore[no-untyped-def]
    path, m = mapped
    before = _rss()
    done = pf.prefault({path: m}, [(path, 8 * MB + 100, 64 * MB)])
    after = _rss()
    assert done >= 64 * MB
    assert after["RssFile"] - before["RssFile"] >= 60 * MB  # the pages are in the page table now
    assert after["RssAnon"] - before["RssAnon"] < 8 * MB  # and still file-backed, not copied


def test_prefault_stops_when_asked_and_skips_unknown_files(mapped) -> None:  # type: ignore[no-untyped-def]
    import threading

    path, m = mapped
    stop = threading.Event()
    stop.set()
    assert pf.prefault({path: m}, [(path, 0, 64 * MB)], stop) == 0
    assert pf.prefault({path: m}, [("elsewhere", 0, 64 * MB)]) == 0


def test_prefault_falls_back_to_willneed(mapped, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path, m = mapped
    monkeypatch.setattr(pf, "MADV_POPULATE_READ", 12345)  # an advice the kernel rejects
    assert pf.prefault({path: m}, [(path, 0, 64 * MB)]) == 0  # advised, nothing populated


def test_start_prefault_runs_in_a_thread(mapped) -> None:  # type: ignore[no-untyped-def]
    path, m = mapped
    thread, stop = pf.start_prefault({path: m}, [(path, 0, 32 * MB)])
    thread.join(30)
    assert not thread.is_alive() and not stop.is_set()


def test_load_model_prefaults_the_experts_when_asked(
        tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oss_runtime import bind

    seen: list[list[tuple[str, int, int]]] = []
    real = pf.start_prefault

    def spy(maps, ranges):  # type: ignore[no-untyped-def]
        seen.append(list(ranges))
        return real(maps, seen[-1])

    monkeypatch.setattr(pf, "start_prefault", spy)
    monkeypatch.delenv("OSS_RUNTIME_PREFAULT", raising=False)
    model = bind.load_model(tiny_checkpoint, dtype="float32", kernel=False)
    assert not seen and not hasattr(model, "_oss_prefault")  # off by default
    monkeypatch.setenv("OSS_RUNTIME_PREFAULT", "1")
    model = bind.load_model(tiny_checkpoint, dtype="float32", kernel=False)
    model._oss_prefault[0].join(30)
    assert seen and seen[0], "the experts' blocks and scales are prefaulted"
    assert all(n > 0 for _, _, n in seen[0])
    assert len(seen[0]) == 4 * model.config.num_hidden_layers  # gate_up/down blocks + scales
    monkeypatch.setenv("OSS_RUNTIME_PREFAULT", "0")
    model = bind.load_model(tiny_checkpoint, dtype="float32", kernel=False)
    assert len(seen) == 1 and not hasattr(model, "_oss_prefault")
    model = bind.load_model(tiny_checkpoint, dtype="float32", kernel=False, prefault=True)
    assert len(seen) == 2
    monkeypatch.setenv("OSS_RUNTIME_PREFAULT", "1")
    model = bind.load_model(tiny_checkpoint, dtype="float32", kernel=False, prefault=False)
    assert len(seen) == 2


def test_sparse_files_are_not_prefaulted(make_checkpoint) -> None:  # type: ignore[no-untyped-def]
    from oss_runtime import bind

    sparse = make_checkpoint("sparse", "wide", layers=1, sparse=True)
    assert all(bind._sparse(str(f)) for f in sparse.glob("*.safetensors"))
    dense = make_checkpoint("dense")
    assert not any(bind._sparse(str(f)) for f in dense.glob("*.safetensors"))
