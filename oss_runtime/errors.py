"""The one exception tree of oss_runtime.

::

    OssRuntimeError
     ├── CheckpointError (also ValueError)          a checkpoint file is missing or malformed
     ├── MissingDependency (also ImportError)       an optional dependency is not installed
     ├── UnsupportedEnvironment (also RuntimeError) the requested plan cannot run here
     ├── SourceNotFound (also FileNotFoundError)    a source is neither a directory, cached nor
     │                                              downloadable (offline, unknown repo)
     └── DownloadError (also ConnectionError)       no endpoint delivered a needed file, verified
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "DownloadError",
    "MissingDependency",
    "OssRuntimeError",
    "SourceNotFound",
    "UnsupportedEnvironment",
]


class OssRuntimeError(Exception):
    """Base class of every error oss_runtime raises on purpose."""


class CheckpointError(OssRuntimeError, ValueError):
    """A checkpoint is missing, truncated or inconsistent; the message names the file and tensor."""


class MissingDependency(OssRuntimeError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class UnsupportedEnvironment(OssRuntimeError, RuntimeError):
    """The requested device, dtype or quantization cannot be honoured on this machine."""


class SourceNotFound(OssRuntimeError, FileNotFoundError):
    """The source is not a checkpoint directory, not in the cache, and cannot be downloaded."""


class DownloadError(OssRuntimeError, ConnectionError):
    """No endpoint delivered a needed file whole and verified; the message lists each endpoint."""
