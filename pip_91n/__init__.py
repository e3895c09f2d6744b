"""pip-91n: plain ``pip install`` through an ordered chain of PyPI mirrors.

The wings, bottom to top (see docs/architecture.md): ``settings`` (what the user asked
for), ``index`` (PyPI's simple index, pure), ``net`` (the HTTP seam), ``downloads``
(resumable verified files), ``chain`` (failover between mirrors), and on top ``hook`` (the
only code that touches pip) and ``cli``.

Importing this package is cheap on purpose: the startup hook (``pip_91n.pth`` /
``pip_91n.start``) imports ``pip_91n._startup`` at every interpreter start, which
imports this module first. Nothing here may import httpx, pip or anything heavy;
public names that need them are resolved lazily through ``__getattr__``.
"""

__version__ = "0.1.0"

# name -> module that defines it, imported on first access.
_LAZY: dict[str, str] = {
    "Pip91nError": "pip_91n.errors",
    "AllMirrorsFailed": "pip_91n.errors",
    "ConfigError": "pip_91n.errors",
    "DownloadFailed": "pip_91n.errors",
    "Mirror": "pip_91n.settings.catalog",
    "Catalog": "pip_91n.settings.catalog",
    "load_catalog": "pip_91n.settings.catalog",
    "MirrorConfig": "pip_91n.settings.config",
    "load_config": "pip_91n.settings.config",
    "resolve_chain": "pip_91n.chain.ranking",
    "HealthStore": "pip_91n.chain.health",
    "FailoverTransport": "pip_91n.chain.transport",
    "chain_transport": "pip_91n.chain.transport",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pip_91n' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
