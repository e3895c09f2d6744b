"""Where a checkpoint comes from: a local directory, the Hugging Face cache, or a download.

`resolve_source(source, ...)` returns a `Resolved` directory in the Hugging Face layout:

1. an existing directory is used as it is (no network, no cache);
2. a repo id (default ``openai/gpt-oss-20b``) whose complete snapshot is in the Hugging Face cache
   (``HF_HUB_CACHE`` / ``HF_HOME``, see `oss_runtime.hubcache`) is used from there;
3. otherwise, unless offline (``offline=True`` or ``HF_HUB_OFFLINE=1``), only the needed files
   (configs, tokenizer, chat template, root safetensors shards and index; not ``original/`` or
   ``metal/``) are downloaded into that cache through an ordered list of endpoints:
   ``HF_ENDPOINT`` when set, then ``endpoints`` (or ``OSS_RUNTIME_HF_ENDPOINTS``, comma-separated),
   then ``https://huggingface.co``. The file list comes from the first endpoint that answers
   ``/api/models/{repo}/revision/{rev}`` (hedged, with the mirror chain's connect and
   first-byte timeout: a stalled endpoint costs ``PIP_91N_HEDGE_DELAY``, not minutes); shards (LFS files, named by sha256) go through
   pip_91n's download engine (failover between endpoints, resume across runs, sha256 check), the
   small files are checked against their git blob id.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from oss_runtime.errors import DownloadError, SourceNotFound
from oss_runtime.hubcache import (
    cached_snapshot,
    git_blob_sha1,
    hub_cache_dir,
    is_needed,
    offline_requested,
    publish_blob,
    repo_folder,
    snapshot_complete,
    write_ref,
)

if TYPE_CHECKING:
    from pip_91n.downloads import DownloadOptions

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_REPO", "Resolved", "endpoint_chain", "looks_like_path",
           "resolve_source"]

DEFAULT_REPO = "openai/gpt-oss-20b"
DEFAULT_ENDPOINT = "https://huggingface.co"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A checkpoint directory and how it was found."""

    path: Path
    kind: str  # "local" | "cache" | "download"
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    endpoint: str | None = None  # the endpoint that listed the files (downloads only)
    downloaded_bytes: int = 0


def endpoint_chain(endpoints: Sequence[str] | str | None = None,
                   environ: Mapping[str, str] | None = None) -> list[str]:
    """HF_ENDPOINT, then the mirror endpoints, then huggingface.co (deduplicated, in order)."""
    env = os.environ if environ is None else environ
    chain: list[str] = []
    if env.get("HF_ENDPOINT", "").strip():
        chain.append(env["HF_ENDPOINT"])
    if endpoints is None:
        endpoints = env.get("OSS_RUNTIME_HF_ENDPOINTS", "")
    if isinstance(endpoints, str):
        endpoints = [e for e in endpoints.split(",")]
    chain += list(endpoints)
    chain.append(DEFAULT_ENDPOINT)
    return list(dict.fromkeys(e.strip().rstrip("/") for e in chain if e.strip()))


def resolve_source(
    source: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    endpoints: Sequence[str] | str | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    transport: Any = None,
) -> Resolved:
    """Find or fetch the checkpoint ``source`` names (see the module docstring)."""
    if source is not None and looks_like_path(source):
        path = Path(os.path.expanduser(os.fspath(source)))
        if not path.is_dir():
            what = "a file, not a checkpoint directory" if path.exists() else "no such directory"
            raise SourceNotFound(f"{path}: {what}. Give a directory with config.json and "
                                 "*.safetensors, or a hub repo id like "
                                 f"{DEFAULT_REPO!r}.")
        return Resolved(path, "local")
    repo_id = DEFAULT_REPO if source is None else str(source)
    if not _REPO_ID.fullmatch(repo_id):
        raise SourceNotFound(
            f"{repo_id!r} is neither an existing directory nor a hub repo id like {DEFAULT_REPO!r}."
        )
    rev = revision or "main"
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    found = cached_snapshot(cache, repo_id, rev)
    if found is not None:
        return Resolved(found, "cache", repo_id, rev, found.name)
    if offline if offline is not None else offline_requested():
        raise SourceNotFound(
            f"{repo_id}@{rev} is not (completely) in the Hugging Face cache at {cache} and "
            "downloads are off (offline=True or HF_HUB_OFFLINE=1). Download it once online, copy "
            "a snapshot there, or pass a local directory."
        )
    return _download(repo_id, rev, endpoint_chain(endpoints), cache, progress, transport)


def looks_like_path(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names a local directory rather than a hub repo id: a ``Path``; an
    existing directory; anything starting with ``.``, ``~`` or a separator; anything with more
    than one separator (a repo id has one), or a backslash; or ``a/b`` whose ``a`` is a local
    directory (``models/tiny-typo`` beside a ``models`` folder is a mistyped path)."""
    if isinstance(source, os.PathLike):
        return True
    text = str(source)
    if os.path.isdir(os.path.expanduser(text)):
        return True
    if text.startswith((".", "~", "/", os.sep)) or "\\" in text or text.count("/") > 1:
        return True
    head, sep, _ = text.partition("/")
    return bool(sep) and os.path.isdir(head)


def _headers(url: str) -> dict[str, str]:
    """``HF_TOKEN`` as a bearer token, only for huggingface.co and ``HF_ENDPOINT`` (never a mirror)."""
    token = os.environ.get("HF_TOKEN", "").strip()
    own = {DEFAULT_ENDPOINT, os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")} - {""}
    if token and any(url == ep or url.startswith(ep + "/") for ep in own):
        return {"Authorization": f"Bearer {token}"}
    return {}


def _list(
    client: Any, repo_id: str, rev: str, chain: list[str], hedge_delay: float
) -> tuple[dict[str, Any], str, list[str]]:
    """The repo's file list from the first endpoint that answers, hedged as the mirror chain
    is: each endpoint gets ``hedge_delay`` seconds of head start before the next one is asked
    too, and a failure moves on at once. Every request is bounded by the client's timeout."""
    answers: queue.SimpleQueue[tuple[str, dict[str, Any] | None, str]] = queue.SimpleQueue()

    def ask(ep: str) -> None:
        url = f"{ep}/api/models/{repo_id}/revision/{quote(rev, safe='')}?blobs=true"
        try:
            resp = client.get(url, headers=_headers(url))
            if resp.status_code == 404:
                answers.put((ep, None, f"HTTP 404 (no repo {repo_id!r} or revision {rev!r})"))
                return
            resp.raise_for_status()
            info = resp.json()
            if (
                not isinstance(info, dict)
                or not isinstance(info.get("siblings"), list)
                or not info.get("sha")
            ):
                raise ValueError("no 'sha'/'siblings' in the answer")
            answers.put((ep, info, ""))
        except Exception as exc:
            answers.put((ep, None, f"{type(exc).__name__}: {exc}"))

    failures: list[str] = []
    pending, running = list(chain), 0
    while pending or running:
        if pending:
            threading.Thread(target=ask, args=(pending.pop(0),), daemon=True).start()
            running += 1
        try:
            ep, info, why = answers.get(timeout=hedge_delay if pending else None)
        except queue.Empty:
            continue  # the head start is over: race the next endpoint too
        running -= 1
        if info is not None:
            return info, ep, failures
        failures.append(f"{ep}: {why}")
    raise DownloadError(
        f"could not list the files of {repo_id}@{rev} from any endpoint:{_bullets(failures)}"
        "\nSet HF_ENDPOINT or OSS_RUNTIME_HF_ENDPOINTS to a reachable mirror, or pass a local directory."
    )


def _bullets(failures: list[str]) -> str:
    """One indented line per failure, the password of any URL in it shown as ``***``."""
    from pip_91n.downloads import redact_text

    return "".join(f"\n  - {redact_text(line)}" for line in failures)


def _progress_bar(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="gpt-oss")


def _download(repo_id: str, rev: str, chain: list[str], cache: Path, progress: bool,
              transport: Any) -> Resolved:
    import httpx

    from pip_91n.downloads import DownloadOptions
    from pip_91n.net.tls import trust_context

    opts = DownloadOptions.from_env()  # the chain's timeout and head start, and the engine's options
    client = httpx.Client(transport=transport, follow_redirects=True,
                          timeout=httpx.Timeout(opts.timeout), verify=trust_context())
    with client:
        info, listed_by, _ = _list(client, repo_id, rev, chain, opts.hedge_delay)
        commit = str(info["sha"])
        wanted = [
            s
            for s in info["siblings"]
            if isinstance(s, dict) and is_needed(str(s.get("rfilename", "")))
        ]
        if not any(str(s["rfilename"]).endswith(".safetensors") for s in wanted):
            raise SourceNotFound(
                f"{repo_id}@{rev} has no *.safetensors at its root; not a gpt-oss checkpoint."
            )
        order = [listed_by, *[e for e in chain if e != listed_by]]
        repo = repo_folder(cache, repo_id)
        snap = repo / "snapshots" / commit
        total = sum(int((s.get("lfs") or {}).get("size") or s.get("size") or 0) for s in wanted)
        bar = _progress_bar(progress, total)
        fetched = 0
        try:
            for s in wanted:
                fetched += _one(client, s, repo, snap, commit, repo_id, order, bar, transport, opts)
        finally:
            if bar is not None:
                bar.close()
    write_ref(repo, rev, commit)
    if not snapshot_complete(snap):
        raise DownloadError(
            f"{repo_id}@{commit}: download finished but the snapshot is incomplete."
        )
    return Resolved(snap, "download", repo_id, rev, commit, listed_by, fetched)


def _one(client: Any, s: Mapping[str, Any], repo: Path, snap: Path, commit: str, repo_id: str,
         order: list[str], bar: Any, transport: Any, opts: DownloadOptions) -> int:
    name = str(s["rfilename"])
    urls = [f"{ep}/{repo_id}/resolve/{commit}/{quote(name)}" for ep in order]
    lfs = s.get("lfs") or {}
    if name.endswith(".safetensors") and not lfs.get("sha256"):
        lfs = _lfs_from_head(client, urls, name)  # a mirror whose listing lacks LFS details
    size = int(lfs.get("size") or s.get("size") or 0) or None
    etag = str(lfs.get("sha256") or s.get("blobId") or "")
    link = snap / name
    if etag and (repo / "blobs" / etag).is_file() and link.exists():
        if bar is not None and size:
            bar.update(size)
        return 0
    if lfs.get("sha256"):
        from pip_91n.downloads import DownloadFailed, fetch

        blob = repo / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        last = [0]

        def report(done: int, _total: int | None) -> None:
            if bar is not None:
                bar.update(done - last[0])
            last[0] = done

        try:  # no HF_TOKEN here: the engine would send it to every candidate, mirrors too
            fetch(urls, etag, blob, size=size, filename=name, progress=report, options=opts,
                  transport=transport)
        except DownloadFailed as exc:
            raise DownloadError(f"{repo_id}: {exc}") from exc
        publish_blob(repo, commit, name, etag, blob)
        return size or blob.stat().st_size
    return _small(client, urls, name, repo, commit, etag, bar)


def _lfs_from_head(client: Any, urls: list[str], name: str) -> dict[str, Any]:
    """sha256 and size of an LFS file from the resolve endpoint's headers, as huggingface_hub does
    (``X-Linked-Etag``/``X-Linked-Size`` on the hub's redirect, else ``ETag``/``Content-Length``)."""
    failures: list[str] = []
    for url in urls:
        try:
            resp = client.head(url, headers=_headers(url), follow_redirects=False)
            if resp.status_code >= 400:
                failures.append(f"{url}: HTTP {resp.status_code}")
                continue
            h = resp.headers
            etag = (h.get("x-linked-etag") or h.get("etag") or "").removeprefix("W/").strip('"')
            size = h.get("x-linked-size") or h.get("content-length")
            if re.fullmatch(r"[0-9a-f]{64}", etag):
                return {"sha256": etag, "size": int(size) if size else None}
            failures.append(f"{url}: no sha256 ETag ({etag!r})")
        except Exception as exc:  # any fault: the next endpoint
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
    raise DownloadError(
        f"cannot verify {name}: no endpoint gave its sha256 (listing or ETag):{_bullets(failures)}"
    )


def _small(client: Any, urls: list[str], name: str, repo: Path, commit: str, blob_id: str,
           bar: Any) -> int:
    failures: list[str] = []
    tmp = repo / "blobs" / f".{name}.{os.getpid()}.incomplete"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    for url in urls:
        try:
            resp = client.get(url, headers=_headers(url))
            resp.raise_for_status()
            tmp.write_bytes(resp.content)
            got = git_blob_sha1(tmp)
            if blob_id and got != blob_id:
                failures.append(f"{url}: git blob id {got} != listed {blob_id}")
                continue
            if name.endswith(".json"):
                json.loads(resp.content)  # a proxy's HTML error page must not become config.json
            publish_blob(repo, commit, name, blob_id or got, tmp)
            if bar is not None:
                bar.update(len(resp.content))
            return len(resp.content)
        except Exception as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
    tmp.unlink(missing_ok=True)
    raise DownloadError(
        f"could not download {name} from any endpoint:{_bullets(failures)}"
    )
