"""The HTTP seam: ``Wire`` (one GET, its status, headers and body chunks) and its httpx side.

``wire`` is the protocol, redirects, Content-Encoding and the one describer of failed
requests (standard library only); ``httpx_wire`` puts a wire over an httpx transport;
``httpx_pool`` is the default pool outside pip (proxies from the environment, TLS trust).
Inside pip the wire is pip's own pools (``pip_91n.hook.pool``).
"""
