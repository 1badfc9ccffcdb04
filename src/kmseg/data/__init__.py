"""Sample photographs bundled with kmseg (CC0 / public domain; see NOTICE.md beside this file)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["NAMES", "path"]

_HERE = Path(__file__).resolve().parent
NAMES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


def path(name: str = "coffee.png") -> Path:
    """Path of a bundled sample photo: one of ``NAMES`` (the demo uses ``coffee.png``)."""
    if name not in NAMES:
        raise ValueError(f"name={name!r} is not a bundled sample; choose one of {', '.join(NAMES)}")
    return _HERE / name
