"""The only code that touches pip: the patch, and what serves pip's requests.

``patch`` (checks pip's structure, mounts the adapter, can undo it), ``adapter`` (the
requests adapter), ``shim`` (the chain session with what pip adds: pins, stderr reports,
open bodies), ``bodies`` (response bodies from the download engine) and ``pool`` (the
chain's wire over pip's own connection pools).
"""
