from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import kmseg
from kmseg import data


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """The bundled sample photos, decoded once."""
    return {name: kmseg.load_image(data.path(name)) for name in data.NAMES}


#: The browser tests drive Debian's chromium (Playwright's own browser download is not used).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        reason = f"Debian's chromium is not installed at {CHROMIUM}; install it with: make chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def kmseg_browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven through Playwright's sync API (one per test module)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    _need_chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
