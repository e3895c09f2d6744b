"""PyPI's simple index, as pure knowledge: what a URL asks for, pages, staleness.

``routing`` (which URLs belong to the chain and what each names), ``pages`` (PEP 503 HTML and
PEP 691 JSON pages into files and a serial) and ``staleness`` (serials and exact pins). No
I/O.
"""
