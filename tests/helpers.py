"""Plain helpers shared by the tests: known-answer images and a reference Lloyd."""

from __future__ import annotations

import numpy as np


def quadrants(colors, size=(40, 60), noise=3.0, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """An image made of four quadrants of known colours plus small seeded noise, and its true labels."""
    h, w = size
    truth = np.zeros((h, w), dtype=np.int64)
    truth[: h // 2, w // 2 :] = 1
    truth[h // 2 :, : w // 2] = 2
    truth[h // 2 :, w // 2 :] = 3
    base = np.asarray(colors, dtype=np.float64)[truth]
    rng = np.random.default_rng(seed)
    img = np.clip(np.rint(base + rng.normal(0, noise, base.shape)), 0, 255).astype(np.uint8)
    return img, truth


def ct_slice(size=(18, 24), seed=0) -> np.ndarray:
    """A CT-like int16 slice from -1024 to 3000: bands of air, soft tissue and bone, with seeded
    noise, and the two extremes in a corner each. Its display range is its own -1024..3000, on
    which 0 is a dark grey (65 of 255), not black."""
    h, w = size
    rng = np.random.default_rng(seed)
    img = np.repeat(np.array([-1000, 40, 2900]), -(-w // 3))[None, :w] + rng.integers(-20, 21, (h, w))
    img[0, 0], img[-1, -1] = -1024, 3000
    return img.astype(np.int16)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two labelings group the pixels identically, whatever the numbering."""
    a = np.asarray(a).ravel()
    b = np.asarray(b).ravel()
    pairs = np.unique(np.stack([a, b]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def numpy_lloyd(X: np.ndarray, C0: np.ndarray, max_iter: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's algorithm on every point, written plainly: the reference the engine must equal."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(C0, dtype=np.float64).copy()
    labels = None
    for _ in range(max_iter):
        d = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
        new = d.argmin(axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        C = np.array([X[labels == j].mean(axis=0) if (labels == j).any() else C[j] for j in range(len(C))])
    return C, labels
