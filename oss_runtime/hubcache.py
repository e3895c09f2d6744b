"""The Hugging Face cache layout, read and written without network (stdlib only).

``$HF_HUB_CACHE`` (else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``) holds
``models--{org}--{name}/`` with ``blobs/{etag}`` (the sha256 for LFS files, the git blob sha1
otherwise), ``snapshots/{commit}/{file}`` (relative symlinks to the blobs) and
``refs/{revision}`` (the commit a branch or tag pointed to). huggingface_hub and transformers read
what this module writes, and the other way round.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

__all__ = [
    "NEEDED_FILES",
    "cached_snapshot",
    "hub_cache_dir",
    "is_needed",
    "offline_requested",
    "publish_blob",
    "repo_folder",
    "snapshot_complete",
]

#: files a loader needs besides the root *.safetensors shards (not original/ or metal/)
NEEDED_FILES = frozenset({
    "config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
})
_COMMIT = re.compile(r"[0-9a-f]{40}")


def is_needed(rfilename: str) -> bool:
    """True for the files `load_gpt_oss_20b` downloads: configs, tokenizer, root shards."""
    if "/" in rfilename:
        return False
    return rfilename in NEEDED_FILES or rfilename.endswith(".safetensors")


def offline_requested(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def repo_folder(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def snapshot_complete(folder: Path) -> bool:
    """config.json plus every shard the index names (or at least one shard without an index)."""
    import json

    if not (folder / "config.json").is_file():
        return False
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return all((folder / n).is_file() for n in names)
    return any(folder.glob("*.safetensors"))


def cached_snapshot(cache: Path, repo_id: str, revision: str) -> Path | None:
    """The complete snapshot folder of ``repo_id`` at ``revision`` in ``cache``, or None."""
    repo = repo_folder(cache, repo_id)
    if _COMMIT.fullmatch(revision):
        commit = revision
    else:
        ref = repo / "refs" / revision
        try:
            commit = ref.read_text(encoding="ascii").strip()
        except OSError:
            return None
    folder = repo / "snapshots" / commit
    return folder if snapshot_complete(folder) else None


def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def publish_blob(repo: Path, commit: str, rfilename: str, etag: str, src: Path) -> Path:
    """Move ``src`` to ``blobs/{etag}`` and link ``snapshots/{commit}/{rfilename}`` to it."""
    blob = repo / "blobs" / etag
    blob.parent.mkdir(parents=True, exist_ok=True)
    if src != blob:
        os.replace(src, blob)
    link = repo / "snapshots" / commit / rfilename
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(os.path.relpath(blob, link.parent))
    except OSError:  # no symlinks (some Windows setups): a copy, as huggingface_hub does
        shutil.copyfile(blob, link)
    return link


def write_ref(repo: Path, revision: str, commit: str) -> None:
    if revision == commit:
        return
    ref = repo / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit, encoding="ascii")
