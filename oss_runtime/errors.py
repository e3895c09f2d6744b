"""The one exception tree of oss_runtime.

::

    OssRuntimeError
     ├── CheckpointError (also ValueError)          a checkpoint file is missing or malformed
     ├── MissingDependency (also ImportError)       an optional dependency is not installed
     ├── UnsupportedEnvironment (also RuntimeError) the requested plan cannot run here
     ├── SourceNotFound (also FileNotFoundError)    a source is neither a directory, cached nor
     │                                              downloadable (offline, unknown repo)
     ├── DownloadError (also ConnectionError)       no endpoint delivered a needed file, verified
     └── RequestError (also ValueError)             `oss-runtime serve` cannot serve a request as
                                                    asked; carries the HTTP status and OpenAI's
                                                    error ``type``/``param``/``code``
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "DownloadError",
    "MissingDependency",
    "OssRuntimeError",
    "RequestError",
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


class RequestError(OssRuntimeError, ValueError):
    """An API request `oss-runtime serve` cannot serve as asked; becomes OpenAI's error body.

    ``status``: the HTTP status (400, 401, 404, 413, 431, 503, ...); ``param``: the request field
    at fault, if one is; ``code``: a short machine-readable reason; ``retry_after``: seconds a
    client should wait before retrying (queue full, still loading), sent as ``Retry-After``."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.retry_after = retry_after

    @property
    def type(self) -> str:
        """OpenAI's error type for the status."""
        if self.status == 401:
            return "authentication_error"
        if self.status == 404:
            return "not_found_error"
        if self.status == 429:
            return "rate_limit_error"
        if self.status >= 500:
            return "server_error"
        return "invalid_request_error"
