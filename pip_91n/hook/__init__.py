"""The only code that touches pip: the patch, and what serves pip's requests.

``patch`` (checks pip's structure, mounts the adapter, can undo it), ``adapter`` (the
requests adapter), ``shim`` (one process's view of the chain), ``bodies`` (response bodies
from the download engine), ``small_files`` (the fast path for small files) and ``pool``
(the chain's wire over pip's own connection pools).
"""
