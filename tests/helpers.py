"""Plain helpers shared by the tests: known-answer images, a reference Lloyd, a small disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


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


@contextlib.contextmanager
def small_disk(folder: Path, *options: str) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted on the new folder ``folder`` (mount ``options`` too, such as
    ``"ro"``): a real full or read-only disk. Skips the test where no tmpfs can be mounted (not
    root, or a container without the capability); unmounted when the block ends."""
    folder.mkdir()
    if shutil.which("mount") is None or getattr(os, "geteuid", lambda: -1)() != 0:
        pytest.skip("mounts a tmpfs, which needs root on Linux")
    mount = ["mount", "-t", "tmpfs", "-o", ",".join(("size=64k", *options)), "tmpfs", str(folder)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounts a tmpfs, which this machine does not allow")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(disk: Path) -> None:
    """Fill ``disk`` up with one file, so that the next byte written to it fails with ENOSPC."""
    fd = os.open(disk / "ballast", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, bytes(4096))
    finally:
        os.close(fd)


def _sysfs_refuses_with_eacces() -> bool:
    """Whether making a file in ``/sys`` fails with EACCES, as it does for everyone, root
    included, where sysfs is mounted read-write (a read-only mount says EROFS instead)."""
    try:
        fd = os.open("/sys/kmseg-probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except PermissionError:
        return True
    except OSError:
        return False
    os.close(fd)
    os.unlink("/sys/kmseg-probe")
    return False


#: For the tests that write into ``/sys``: a folder that refuses everyone with "Permission denied".
needs_sysfs = pytest.mark.skipif(not _sysfs_refuses_with_eacces(),
                                 reason="needs /sys to refuse new files with EACCES (Linux's sysfs, mounted read-write)")
