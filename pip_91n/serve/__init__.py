"""``pip-91n serve``: the mirror chain as a local simple index (the optional ``serve`` extra).

Pure parts: ``paths`` (request paths and the file-link layout), ``simple`` (project pages
parsed and rendered as PEP 503 HTML / PEP 691 JSON), ``roots`` (the ``/simple/`` root,
streamed), ``http`` (content negotiation, ranges, validators). I/O: ``store`` (the LRU file
cache and the last good pages on disk), ``flights`` (one download per file, shared by every
client asking for it), ``upstream`` (the chain: pages through ``Failover``, files through
the download engine, and ``release_file``, the one gate every file passes), ``app`` (the
ASGI app), ``runner`` (uvicorn, logging, shutdown). Starlette and uvicorn are imported by
``app`` and ``runner`` only, so nothing else of pip_91n loads them.
"""
