from __future__ import annotations

import numpy as np
import pytest

import kmseg
from kmseg import data


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """The bundled sample photos, decoded once."""
    return {name: kmseg.load_image(data.path(name)) for name in data.NAMES}
