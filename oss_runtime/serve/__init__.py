"""``oss-runtime serve``: an OpenAI-compatible HTTP API over `load_gpt_oss_20b` (optional extra).

Modules, from the wire inwards (importing this package imports none of them, nor FastAPI):

* `oss_runtime.serve.runner`: the command: binds the socket, runs uvicorn, loads the model in
  the background (``/health`` is not ready until it is), shuts down cleanly on SIGTERM;
* `oss_runtime.serve.app`: the FastAPI app: routes, authentication, size limits, the log line;
* `oss_runtime.serve.protocol`: pure validation of request bodies into frozen dataclasses;
* `oss_runtime.serve.harmony`: OpenAI messages and tools into the chat template's input, and
  the generated harmony channels back into content, ``reasoning_content`` and ``tool_calls``;
* `oss_runtime.serve.responses`: OpenAI's response, chunk and error bodies, SSE framing;
* `oss_runtime.serve.engine`: the bounded FIFO queue and the one thread that runs the model.
"""
