"""kmseg's local web page: one static page and a JSON API over the segmentation core.

Needs the ``web`` extra (``pip install "kmseg[web]"``). Importing this package does not
import FastAPI; :func:`create_app` does, on first use. Start the server with ``kmseg serve``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
