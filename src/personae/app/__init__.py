"""The composition root: the only package that names concrete adapters and wires them."""

from personae.app.backends import BUILTIN_PLUGINS, build_backends, build_routes
from personae.app.runtime import Runtime, build_app, load_catalog, open_runtime

__all__ = [
    "BUILTIN_PLUGINS",
    "Runtime",
    "build_app",
    "build_backends",
    "build_routes",
    "load_catalog",
    "open_runtime",
]
