"""The generation queue: one worker thread runs the model, one request at a time, in order.

A CPU decodes gpt-oss-20b at a few tokens/s and every token reads ~3.7 GB of weights, so this
engine does not batch: requests wait in a bounded FIFO (``max_queue`` waiting, plus the one
running) and are served in arrival order. A full queue refuses at once (`RequestError` 503 with
``retry_after`` estimated from recent requests) rather than letting clients time out. Each
token goes to the request's asyncio queue as it is made; a request that is cancelled (client
gone, stop string met, server shutting down) stops at its next token, and a cancelled request
still waiting is skipped. ``stopping`` is a plain flag, so a signal handler may set it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
import time
from typing import Any

from oss_runtime.errors import RequestError

__all__ = ["Engine", "Job"]

log = logging.getLogger("oss_runtime.serve")


@dataclasses.dataclass(eq=False)
class Job:
    """One generation: the prompt, limits, and where its tokens go."""

    prompt_ids: list[int]
    max_tokens: int
    stops: set[int]
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    loop: Any = None
    events: Any = None  # asyncio.Queue of ("token", id) | ("done", reason) | ("error", text)
    cancelled: bool = False
    state: str = "queued"  # queued | running | done
    reason: str | None = None  # stop | length | cancelled | shutdown | error
    tokens: int = 0
    enqueued: float = dataclasses.field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None

    def __post_init__(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        if self.events is None:
            self.events = asyncio.Queue()

    def cancel(self) -> None:
        self.cancelled = True

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled = True


class Engine:
    """Runs `oss_runtime.chat.sample_tokens` for queued jobs in one thread; see the module doc."""

    def __init__(self, model: Any, *, max_queue: int = 16) -> None:
        self.model = model
        self.max_queue = max_queue
        self.stopping = False
        self.running: Job | None = None
        self.recent: collections.deque[Job] = collections.deque(maxlen=256)
        self.completed = 0
        self.generated = 0
        self._avg_seconds = 5.0
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="oss-runtime-generate",
                                        daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def retry_after(self) -> int:
        """Seconds until a place in the queue is likely free (at least 1, at most 600)."""
        return int(min(600, max(1, round(self._avg_seconds * (1 + len(self._queue) / 2)))))

    def submit(self, job: Job) -> None:
        if self.stopping:
            raise RequestError("the server is shutting down; retry on another instance.",
                               status=503, code="shutting_down", retry_after=5)
        with self._cond:
            if len(self._queue) >= self.max_queue:
                raise RequestError(
                    f"the server is busy: {len(self._queue)} requests are waiting (the limit, "
                    "--max-queue) and one is running; retry after the Retry-After seconds.",
                    status=503, code="queue_full", retry_after=self.retry_after())
            self._queue.append(job)
            self._cond.notify()

    def _next(self) -> Job | None:
        with self._cond:
            while not self._queue:
                if self.stopping:
                    return None
                self._cond.wait(0.25)
            return self._queue.popleft()

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            if self.stopping or job.cancelled:
                self._finish(job, "shutdown" if self.stopping else "cancelled")
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        from oss_runtime.chat import sample_tokens

        job.state, job.started, self.running = "running", time.monotonic(), job
        reason = "length"
        tokens = sample_tokens(self.model, job.prompt_ids, job.max_tokens, job.stops,
                               temperature=job.temperature, seed=job.seed, top_p=job.top_p)
        try:
            for token in tokens:
                job.tokens += 1
                self.generated += 1
                job._put(("token", token))
                if token in job.stops:
                    reason = "stop"
                    break
                if self.stopping or job.cancelled:
                    reason = "shutdown" if self.stopping else "cancelled"
                    break
        except Exception as exc:  # the model failed: the request gets a 500, the server lives
            log.error("generation failed: %s: %s", type(exc).__name__, exc)
            log.debug("generation failed", exc_info=True)
            job._put(("error", f"{type(exc).__name__}: {exc}"))
            reason = "error"
        finally:
            tokens.close()
            self.running = None
            self._finish(job, reason)

    def _finish(self, job: Job, reason: str) -> None:
        job.state, job.reason, job.finished = "done", reason, time.monotonic()
        if job.started is not None:
            self._avg_seconds = 0.8 * self._avg_seconds + 0.2 * (job.finished - job.started)
        self.completed += 1
        self.recent.append(job)
        job._put(("done", reason))

    def stop(self) -> None:
        """Refuse new jobs; the running one stops at its next token, waiting ones are closed.
        Safe to call from a signal handler (it only sets a flag)."""
        self.stopping = True

    def close(self, timeout: float = 10.0) -> None:
        self.stop()
        self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        return {"waiting": len(self._queue), "running": 1 if self.running else 0,
                "max_queue": self.max_queue, "completed": self.completed,
                "generated_tokens": self.generated}
