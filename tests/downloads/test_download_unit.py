"""Download engine logic against ``httpx.MockTransport`` mirrors: resume, If-Range, restarts,
bad Content-Range, missing Content-Length, corruption, the stream, and partial housekeeping.
Behaviour over real sockets is in ``test_download_loopback.py``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pip_91n.downloads import DownloadOptions, fetch, open_stream, purge
from pip_91n.downloads.partials import PartialStore
from pip_91n.errors import AllMirrorsFailed, ConfigError, DownloadFailed

DATA = bytes(range(256)) * 1200  # 307_200 bytes
SHA = hashlib.sha256(DATA).hexdigest()


class _Body(httpx.SyncByteStream):
    def __init__(self, data: bytes, fail_after: int | None) -> None:
        self.data, self.fail_after = data, fail_after

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for i in range(0, len(self.data), 16384):
            piece = self.data[i : i + 16384]
            if self.fail_after is not None and sent + len(piece) > self.fail_after:
                yield piece[: self.fail_after - sent]
                raise httpx.ReadError("connection reset by peer")
            sent += len(piece)
            yield piece


@dataclass
class Fake:
    """One mock mirror; ``log`` keeps (Range, If-Range) of every request."""

    data: bytes = DATA
    fail_after: list[int] = field(default_factory=list)  # per request, consumed in order
    ignore_range: bool = False
    no_length: bool = False
    shift: int = 0  # lie in Content-Range by this many bytes
    status: int | None = None
    etag: str = '"v1"'
    log: list[tuple[str | None, str | None]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        rng, if_range = request.headers.get("range"), request.headers.get("if-range")
        self.log.append((rng, if_range))
        if self.status is not None:
            return httpx.Response(self.status)
        fail = self.fail_after.pop(0) if self.fail_after else None
        headers = {"etag": self.etag}
        usable = rng and not self.ignore_range and (if_range is None or if_range == self.etag)
        if usable:
            assert rng is not None
            first, last = rng.split("=", 1)[1].split("-")
            start = int(first)
            end = int(last) + 1 if last else len(self.data)
            if start >= len(self.data):
                return httpx.Response(416, headers={"content-range": f"bytes */{len(self.data)}"})
            body = self.data[start:end]
            headers["content-range"] = f"bytes {start + self.shift}-{end - 1}/{len(self.data)}"
            status = 206
        else:
            body, status = self.data, 200
        if not self.no_length:
            headers["content-length"] = str(len(body))
        return httpx.Response(status, headers=headers, stream=_Body(body, fail))


def _router(**mirrors: Fake) -> httpx.MockTransport:
    return httpx.MockTransport(lambda req: mirrors[req.url.host](req))


def _opts(tmp_path: Path, **kw: object) -> DownloadOptions:
    base: dict[str, object] = {"cache_dir": tmp_path / "cache", "timeout": 5.0,
                               "min_split": 64 * 1024}
    base.update(kw)
    return DownloadOptions(**base)  # type: ignore[arg-type]


def test_fetch_publishes_only_verified_file(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    out = fetch(["http://a/pkg-1.0.tar.gz"], SHA, tmp_path, options=_opts(tmp_path),
                transport=_router(a=Fake()), progress=lambda d, t: seen.append((d, t)))
    assert out == tmp_path / "pkg-1.0.tar.gz"
    assert out.read_bytes() == DATA
    assert seen[-1] == (len(DATA), len(DATA))
    # handed over: no second copy stays in the cache, only the (empty) lock file
    names = sorted(p.suffix for p in (tmp_path / "cache" / "partials").iterdir())
    assert names == [".lock"]
    assert (tmp_path / "cache" / "partials" / f"{SHA}.lock").stat().st_size == 0


def test_resume_across_runs_sends_range_and_if_range(tmp_path: Path) -> None:
    a = Fake(fail_after=[100_000])
    with pytest.raises(DownloadFailed) as err:
        fetch(["http://a/f.tar.gz"], SHA, tmp_path / "f", options=_opts(tmp_path, retries=1),
              transport=_router(a=a))
    assert "connection lost: connection reset by peer" in str(err.value)
    assert not (tmp_path / "f").exists()
    fetch(["http://a/f.tar.gz"], SHA, tmp_path / "f", options=_opts(tmp_path), transport=_router(a=a))
    assert (tmp_path / "f").read_bytes() == DATA
    assert a.log[-1] == ("bytes=100000-", '"v1"')  # every byte kept; If-Range: same source


def test_failover_resume_on_other_mirror_checks_content_range(tmp_path: Path) -> None:
    a, b = Fake(fail_after=[50_000]), Fake(etag='"other"')
    fetch(["http://a/f", "http://b/f"], SHA, tmp_path / "f", options=_opts(tmp_path),
          transport=_router(a=a, b=b))
    assert (tmp_path / "f").read_bytes() == DATA
    assert b.log == [("bytes=50000-", None)]  # cross-source: Range without If-Range


def test_wrong_content_range_drops_source(tmp_path: Path) -> None:
    a, b, c = Fake(fail_after=[50_000]), Fake(shift=10), Fake()
    fetch(["http://a/f", "http://b/f", "http://c/f"], SHA, tmp_path / "f",
          options=_opts(tmp_path), transport=_router(a=a, b=b, c=c))
    assert (tmp_path / "f").read_bytes() == DATA
    assert len(b.log) == 1 and c.log[0][0] == "bytes=50000-"


def test_200_to_range_restarts_cleanly(tmp_path: Path) -> None:
    a = Fake(fail_after=[60_000], ignore_range=True)
    fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path), transport=_router(a=a))
    assert (tmp_path / "f").read_bytes() == DATA
    assert [r for r, _ in a.log] == [None, "bytes=60000-"]


def test_if_range_mismatch_restarts(tmp_path: Path) -> None:
    a = Fake(fail_after=[60_000])
    with pytest.raises(DownloadFailed):
        fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path, retries=1),
              transport=_router(a=a))
    a.etag = '"v2"'  # the URL's entity changed: If-Range fails, the server sends it whole
    fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path), transport=_router(a=a))
    assert (tmp_path / "f").read_bytes() == DATA


def test_missing_content_length(tmp_path: Path) -> None:
    a = Fake(no_length=True)
    fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path), transport=_router(a=a))
    assert (tmp_path / "f").read_bytes() == DATA


def test_missing_content_length_short_body_is_probed_and_resumed(tmp_path: Path) -> None:
    class Short(Fake):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            resp = super().__call__(request)
            if request.headers.get("range") is None:  # a clean EOF, 100 kB too early
                return httpx.Response(200, stream=_Body(DATA[:-100_000], None))
            return resp

    a = Short(no_length=True)
    fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path), transport=_router(a=a))
    assert (tmp_path / "f").read_bytes() == DATA
    assert a.log[-1][0] == f"bytes={len(DATA) - 100_000}-"


def test_corrupt_mirror_is_detected_and_refetched_elsewhere(tmp_path: Path) -> None:
    bad = bytearray(DATA)
    bad[1000] ^= 0xFF
    a, b = Fake(data=bytes(bad)), Fake()
    fetch(["http://a/f", "http://b/f"], SHA, tmp_path / "f", options=_opts(tmp_path),
          transport=_router(a=a, b=b))
    assert (tmp_path / "f").read_bytes() == DATA
    assert len(b.log) == 1 and b.log[0][0] is None  # refetched from zero, nothing reused


def test_all_sources_fail_lists_each_and_publishes_nothing(tmp_path: Path) -> None:
    bad = bytearray(DATA)
    bad[5] ^= 1
    mirrors = {"a": Fake(data=bytes(bad)), "b": Fake(status=503), "c": Fake(status=404)}
    with pytest.raises(DownloadFailed) as err:
        fetch([f"http://{k}/f" for k in mirrors], SHA, tmp_path / "f",
              options=_opts(tmp_path), transport=_router(**mirrors))
    text = str(err.value)
    assert "sha256 mismatch" in text and "HTTP 503" in text and "HTTP 404" in text
    assert isinstance(err.value, AllMirrorsFailed)
    assert not (tmp_path / "f").exists()
    assert not list((tmp_path / "cache" / "partials").glob("*.complete"))
    assert len(mirrors["c"].log) == 1  # 404 is final for that source


def test_size_mismatch_drops_source(tmp_path: Path) -> None:
    a, b = Fake(data=DATA + b"x"), Fake()
    fetch(["http://a/f", "http://b/f"], SHA, tmp_path / "f", size=len(DATA),
          options=_opts(tmp_path), transport=_router(a=a, b=b))
    assert (tmp_path / "f").read_bytes() == DATA


def test_segments_from_several_sources(tmp_path: Path) -> None:
    mirrors = {k: Fake() for k in "abc"}
    fetch([f"http://{k}/f" for k in "abc"], SHA, tmp_path / "f", size=len(DATA),
          options=_opts(tmp_path, segment_threshold=100_000), transport=_router(**mirrors))
    assert (tmp_path / "f").read_bytes() == DATA
    ranges = [r for m in mirrors.values() for r, _ in m.log]
    assert len(ranges) >= 3 and all(r and r.startswith("bytes=") for r in ranges)


def test_existing_verified_dest_is_kept(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(DATA)
    a = Fake()
    fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path), transport=_router(a=a))
    assert a.log == []


def test_stream_reads_verified_bytes(tmp_path: Path) -> None:
    a = Fake(fail_after=[70_000])
    with open_stream(["http://a/f", "http://a/f2"], SHA, options=_opts(tmp_path),
                     transport=_router(a=a)) as stream:
        got = b"".join(stream)
        assert stream.size == len(DATA)
        assert stream.path is not None and stream.path.read_bytes() == DATA
    assert got == DATA


def test_stream_never_hands_out_a_whole_corrupt_file(tmp_path: Path) -> None:
    bad = bytearray(DATA)
    bad[-1] ^= 0xFF
    stream = open_stream(["http://a/f"], SHA, options=_opts(tmp_path),
                         transport=_router(a=Fake(data=bytes(bad))))
    got = bytearray()
    with pytest.raises(DownloadFailed):
        for _ in range(1000):
            chunk = stream.read(65536)
            assert chunk, "stream ended without verification"
            got += chunk
    stream.close()
    assert len(got) < len(DATA)


def test_clean_and_purge(tmp_path: Path) -> None:
    store = PartialStore(tmp_path)
    store.root.mkdir(parents=True)
    old, new, busy = "a" * 64, "b" * 64, "c" * 64
    for sha in (old, new, busy):
        store.path(sha, ".part").write_bytes(b"x" * 1000)
    past = time.time() - 10 * 86400
    os.utime(store.path(old, ".part"), (past, past))
    report = store.clean(max_age=86400, max_bytes=10**9)
    assert report.removed == (old,)
    lock = store.lock(busy)
    assert lock.try_acquire()
    try:
        report = purge(tmp_path)
        assert report.removed == (new,) and report.kept == 1
    finally:
        lock.release()
    assert store.path(busy, ".part").exists()
    # size limit: the oldest go first
    for i, sha in enumerate(("d" * 64, "e" * 64)):
        store.path(sha, ".part").write_bytes(b"x" * 50_000)
        os.utime(store.path(sha, ".part"), (past + i, past + i))
    report = store.clean(max_age=1e9, max_bytes=90_000)
    assert "d" * 64 in report.removed and "e" * 64 not in report.removed


def test_options_from_env() -> None:
    env = {"PIP_91N_TIMEOUT": "2.5", "PIP_91N_SEGMENT_THRESHOLD": "8M", "PIP_91N_CACHE_DIR": "/x"}
    opts = DownloadOptions.from_env(env)
    assert (opts.timeout, opts.segment_threshold, str(opts.cache_dir)) == (2.5, 8 << 20, "/x")
    with pytest.raises(ConfigError, match="PIP_91N_SEGMENT_THRESHOLD"):
        DownloadOptions.from_env({"PIP_91N_SEGMENT_THRESHOLD": "lots"})
    with pytest.raises(ConfigError, match="PIP_91N_TIMEOUT"):
        DownloadOptions.from_env({"PIP_91N_TIMEOUT": "-1"})


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        fetch(["http://a/f"], "abc", tmp_path / "f")
    with pytest.raises(ValueError, match="candidate"):
        fetch([], SHA, tmp_path / "f")


def test_import_is_light() -> None:
    code = ("import sys, pip_91n.downloads.api, pip_91n.downloads.partials, pip_91n.downloads.segments; "
            "print('httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_threads_of_one_process_share_one_download(tmp_path: Path) -> None:
    import threading

    a = Fake()
    outs: list[Path] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            outs.append(fetch(["http://a/f"], SHA, tmp_path / f"d{i}", options=_opts(tmp_path),
                              transport=_router(a=a)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(outs) == 3
    assert all(p.read_bytes() == DATA for p in outs)
    assert len(a.log) == 1


def test_waiter_gives_up_on_a_lock_holder_without_progress(tmp_path: Path) -> None:
    store = PartialStore(tmp_path / "cache")
    lock = store.lock(SHA)
    assert lock.try_acquire()
    try:
        t0 = time.monotonic()
        with pytest.raises(DownloadFailed, match="no progress"):
            fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path, lock_stall=0.5),
                  transport=_router(a=Fake()))
        assert time.monotonic() - t0 < 5
    finally:
        lock.release()


def test_health_reporter_feeds_the_chain_health() -> None:
    from pip_91n.chain.health import HealthStore, health_reporter
    from pip_91n.settings.catalog import Mirror

    chain = [Mirror("m1", "http://m1.test/simple/", "http://m1.test/packages/", "pypi"),
             Mirror("m2", "http://m2.test/simple/", "http://m2.test/packages/", "pypi")]
    health = HealthStore(None)
    report = health_reporter(health, chain)
    report("http://m1.test/packages/aa/bb/x/f.whl", "HTTP 503", 0.1)
    report("http://m2.test/packages/aa/bb/x/f.whl", None, 0.2)
    report("http://m2.test/packages/aa/bb/x/g.whl", "HTTP 404", 0.1)
    report("http://elsewhere.test/f.whl", "HTTP 503", 0.1)
    assert health.get("m1").failures == 1
    assert health.get("m2").failures == 0 and health.get("m2").latency == 0.2


def test_ctrl_c_keeps_the_partial_and_the_next_call_resumes(tmp_path: Path) -> None:
    class Slow(_Body):
        def __iter__(self) -> Iterator[bytes]:
            for piece in super().__iter__():
                time.sleep(0.01)
                yield piece

    class SlowFake(Fake):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            resp = super().__call__(request)
            return httpx.Response(resp.status_code, headers=resp.headers,
                                  stream=Slow(b"".join(resp.stream), None))  # type: ignore[arg-type]

    a = SlowFake()

    def interrupt(done: int, total: int | None) -> None:
        if done > 50_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path),
              transport=_router(a=a), progress=interrupt)
    assert not (tmp_path / "f").exists()
    fetch(["http://a/f"], SHA, tmp_path / "f", options=_opts(tmp_path), transport=_router(a=a))
    assert (tmp_path / "f").read_bytes() == DATA
    rng, if_range = a.log[-1]
    assert rng is not None and int(rng[6:-1]) > 50_000 and if_range == '"v1"'


def test_size_remembered_from_a_bad_source_is_dropped(tmp_path: Path) -> None:
    bad, good = Fake(data=DATA + b"xx", fail_after=[40_000]), Fake()
    opts = _opts(tmp_path, retries=1)
    with pytest.raises(DownloadFailed):  # the bad source breaks off; its size is remembered
        fetch(["http://a/f"], SHA, tmp_path / "f", options=opts, transport=_router(a=bad))
    with pytest.raises(DownloadFailed, match="serves 307200 bytes, expected 307202"):
        fetch(["http://b/f"], SHA, tmp_path / "f", options=opts, transport=_router(b=good))
    fetch(["http://b/f"], SHA, tmp_path / "f", options=opts, transport=_router(b=good))
    assert (tmp_path / "f").read_bytes() == DATA


def test_a_password_in_a_candidate_url_is_never_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    canary = "CANARY-pw-91n"
    broken = Fake(status=503)
    with caplog.at_level("DEBUG", logger="pip_91n"), pytest.raises(DownloadFailed) as err:
        fetch([f"http://user:{canary}@a/f.whl"], SHA, tmp_path / "f", options=_opts(tmp_path),
              transport=_router(a=broken))
    assert canary not in str(err.value) and "user:***@a" in str(err.value)
    assert all(canary not in a.mirror + a.url + a.reason for a in err.value.attempts)
    assert canary not in caplog.text
