"""The HTTP service (``pip install 'embrecall[server]'``): app factory, settings, routes.

Importing this package is light: FastAPI loads only when :func:`create_app` or
:class:`Settings` is first used, so the CLI's publish and rollback work without the extra.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from embrecall.service.app import create_app

        return create_app
    if name == "Settings":
        from embrecall.service.settings import Settings

        return Settings
    raise AttributeError(f"module 'embrecall.service' has no attribute {name!r}")


__all__ = ["Settings", "create_app"]
