"""Wall time, peak memory and inertia, measured the same way for every method."""

from __future__ import annotations

import ctypes
import gc
import math
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

MB = 1 << 20

# --------------------------------------------------------------------------- peak memory


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def _can_reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


try:
    _libc = ctypes.CDLL("libc.so.6")
    _malloc_trim = _libc.malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None

RESET_HWM = _can_reset_hwm()
MEMORY_METHOD = (
    "peak resident set size (VmHWM, reset through /proc/self/clear_refs before each run) minus the RSS just "
    "before the run, after gc.collect() and malloc_trim(0); it counts native allocations (numba, OpenMP, BLAS, "
    "OpenCV, faiss, Pillow) and the outputs the method returns, not the input array, which exists already"
    if RESET_HWM
    else "peak RSS sampled every 1 ms by a thread, minus the RSS before the run (after gc.collect() and malloc_trim(0)); "
    "short spikes between samples are missed"
)


def _release_memory() -> None:
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


class PeakRSS:
    """Context manager: ``.delta`` is the peak RSS increase, in bytes, while the block ran."""

    def __enter__(self) -> "PeakRSS":
        _release_memory()
        self.base = _status_kb("VmRSS") * 1024
        self.delta = 0
        if RESET_HWM:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        else:
            self._stop = threading.Event()
            self._peak = self.base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as f:
            while not self._stop.is_set():
                f.seek(0)
                self._peak = max(self._peak, int(f.read().split()[1]) * page)
                time.sleep(0.001)

    def __exit__(self, *exc: Any) -> None:
        if RESET_HWM:
            peak = _status_kb("VmHWM") * 1024
        else:
            self._stop.set()
            self._thread.join()
            peak = self._peak
        self.delta = max(0, peak - self.base)


# --------------------------------------------------------------------------- timing


@dataclass
class Run:
    seconds: float
    cpu_seconds: float  # user + system time of the whole process (all threads)
    peak_bytes: int
    output: Any
    others_cpu_share: float | None = None  # share of all CPUs used by other processes meanwhile


_HZ = os.sysconf("SC_CLK_TCK")
_NCPU = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_busy_seconds() -> float | None:
    """CPU-seconds all processes have been busy since boot (from /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    guest = sum(v[8:10]) if len(v) > 9 else 0  # already counted in user/nice
    return (sum(v) - idle - guest) / _HZ


def others_share(busy0: float | None, busy1: float | None, own_cpu: float, wall: float) -> float | None:
    """Share of the machine's CPUs used by other processes during a run of ``wall`` seconds."""
    if busy0 is None or busy1 is None or wall <= 0:
        return None
    return max(0.0, (busy1 - busy0) - own_cpu) / (wall * _NCPU)


class TimeLimit(Exception):
    """A run was stopped at the time limit (only between Python steps: a long C call runs to its end)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"stopped after {seconds:.0f} s")
        self.seconds = seconds


def _alarm(signum: int, frame: Any) -> None:
    raise TimeLimit(0.0)


def timed(fn: Callable[[], Any], limit: float | None = None) -> Run:
    """Run ``fn`` once: wall time, process CPU time, peak RSS increase.

    With ``limit`` (seconds), SIGALRM raises :class:`TimeLimit` in the main thread once the
    limit has passed; Python checks for it between bytecodes, so a method inside one long C
    call (cv2.kmeans, faiss) is only stopped when that call returns.
    """
    use_alarm = limit is not None and limit > 0 and threading.current_thread() is threading.main_thread()
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
    with PeakRSS() as mem:
        busy0 = machine_busy_seconds()
        t_cpu = os.times()
        t0 = time.perf_counter()
        try:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                out = fn()
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except TimeLimit:
            raise TimeLimit(time.perf_counter() - t0) from None
        finally:
            if use_alarm:
                signal.signal(signal.SIGALRM, old)
        t1 = time.perf_counter()
        t_cpu2 = os.times()
        busy1 = machine_busy_seconds()
    cpu = (t_cpu2.user - t_cpu.user) + (t_cpu2.system - t_cpu.system)
    return Run(t1 - t0, cpu, mem.delta, out, others_share(busy0, busy1, cpu, t1 - t0))


# --------------------------------------------------------------------------- inertia


@dataclass
class Quality:
    inertia: float  # sum over all pixels of the squared distance to the nearest centre
    own_inertia: float | None  # the same with the method's own labels instead of the nearest centre
    own_mismatch: float | None  # fraction of pixels whose own label is not a nearest centre
    fixed_point_dev: float  # max |centre - mean of the pixels nearest to it| over non-empty clusters
    n_empty: int  # centres no pixel is nearest to
    counts: list[int]


def quality(img: np.ndarray, centers: np.ndarray, own_labels: np.ndarray | None = None) -> Quality:
    """Inertia of ``centers`` on every pixel of ``img``, in float64, in the input's value units.

    Every pixel is assigned to its nearest centre (squared Euclidean distance computed as the
    sum of squared differences, which is exact for integer pixels), in chunks so that memory
    stays bounded. The same function serves every method.
    """
    C = img.shape[-1]
    X = img.reshape(-1, C)
    c = np.asarray(centers, np.float64).reshape(-1, C)
    k = c.shape[0]
    n = X.shape[0]
    step = max(1 << 14, (1 << 22) // max(k, 1))
    parts: list[float] = []
    own_parts: list[float] = []
    mismatch = 0
    sums = np.zeros((k, C))
    counts = np.zeros(k, np.int64)
    D = np.empty((k, step))
    tmp = np.empty(step)
    for s in range(0, n, step):
        x = X[s : s + step].astype(np.float64).T.copy()  # (C, m) channel planes
        m = x.shape[1]
        Dm = D[:, :m]
        t = tmp[:m]
        for j in range(k):
            row = Dm[j]
            np.subtract(x[0], c[j, 0], out=row)
            np.multiply(row, row, out=row)
            for ch in range(1, C):
                np.subtract(x[ch], c[j, ch], out=t)
                np.multiply(t, t, out=t)
                row += t
        lab = Dm.argmin(axis=0)
        best = np.take_along_axis(Dm, lab[None, :], axis=0)[0]
        parts.append(float(best.sum()))
        counts += np.bincount(lab, minlength=k)
        for ch in range(C):
            sums[:, ch] += np.bincount(lab, weights=x[ch], minlength=k)
        if own_labels is not None:
            ol = np.asarray(own_labels[s : s + m]).astype(np.intp)
            d_own = np.take_along_axis(Dm, ol[None, :], axis=0)[0]
            own_parts.append(float(d_own.sum()))
            mismatch += int(np.count_nonzero(d_own > best))
    nonempty = counts > 0
    means = sums[nonempty] / counts[nonempty, None]
    dev = float(np.abs(means - c[nonempty]).max()) if nonempty.any() else 0.0
    return Quality(
        inertia=math.fsum(parts),
        own_inertia=math.fsum(own_parts) if own_labels is not None else None,
        own_mismatch=mismatch / n if own_labels is not None else None,
        fixed_point_dev=dev,
        n_empty=int(k - nonempty.sum()),
        counts=counts.tolist(),
    )
