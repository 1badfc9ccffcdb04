"""Scale out on Dask, with exactly the in-memory result.

Two jobs, both needing the ``dask`` extra (``pip install "kmseg[dask]"``):

- :func:`segment_large` segments one image too large for memory, a TIFF read region by region.
  Its values are clustered in their own units, as in memory (int8 and int16 shifted to uint8
  and uint16, wider integers as float64). 8-bit images (up to 3 colour channels) and 16-bit
  grey ones make one exact colour histogram per region, summed in a tree; the fit on the
  summed histogram is the very one :func:`kmseg.segment` runs, so the centres and labels are
  the in-memory ones. A second pass labels and paints every region and writes tiled TIFFs.
  Other images (16-bit colour, 32- and 64-bit integers, float, more bands) are fitted in
  memory on all their pixels when they are small enough, else on a seeded sample whose centres
  then start Lloyd iterations over every pixel, the per-cluster sums and counts reduced over
  regions.
- :func:`segment_batch` segments many files, one Dask task per file, each running the normal
  in-memory path; or, with ``shared_palette=True``, fits one palette on all the files' merged
  histograms and labels every file with it.

Each task opens its input by path, so the files must be visible to every worker at the same path;
a relative path is relative to the caller's working folder, whatever a worker's own is.
With no ``client`` and no ``scheduler``, a :class:`distributed.LocalCluster` is started for the
job with one single-threaded worker process per core. ``import kmseg`` never imports dask; this
module imports it only when a job starts.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import secrets
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NoReturn, Sequence

import numpy as np

from . import _dask_tasks as T
from ._dask_tiff import TiffSource, TileWriter, chunk_grid, open_source, out_tile, tile_indices
from ._display import range_of, to_dtype
from ._engine import cluster_weights
from ._reduce import Reduced, decode, histogram_bits, label_tables, reduce_histogram, reduce_image
from .color import COLOR_SPACES, from_features
from .io import (
    _check_max_pixels,
    _output_path,
    _settle_backup,
    _stage,
    check_plane,
    json_bytes,
    make_folder,
    publish_all,
    refusal,
)
from .errors import (
    CHECK_SCHEDULER,
    IN_MEMORY,
    ConvergenceWarning,
    InvalidImageDataError,
    KmsegError,
    NotAnImageError,
    ParameterError,
    ParameterTypeError,
    counted,
    user_stacklevel,
)
from .segment import (
    Palette,
    Prepared,
    Segmentation,
    _vmax,
    check_for_image,
    check_fit_options,
    check_int,
    check_output_dir,
    check_scale,
    fewer_colours,
    make_rng,
    refuse_existing,
    to_working,
    working_dtype,
)

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from distributed import Client, Future

__all__ = [
    "BatchResult",
    "DaskNotInstalledError",
    "LargeSegmentation",
    "SchedulerUnreachableError",
    "UnguardedScriptError",
    "cli_segment",
    "cluster_client",
    "local_cluster",
    "segment_batch",
    "segment_large",
]

#: Histograms and partial sums are added this many at a time.
FAN_IN = 8
#: Default region size: about 4 million pixels.
DEFAULT_CHUNKS = (2048, 2048)
#: Non-8-bit images with at most this many pixels are fitted whole, in memory; larger ones on a
#: sample of about this many pixels, then refined by Lloyd over all of them.
DEFAULT_SAMPLE = 1 << 22
#: Seconds a scheduler address is tried for before it is reported unreachable, unless Dask's
#: ``distributed.comm.timeouts.connect`` is set (Dask's own default, 30 s, is a long wait for a
#: mistyped address).
CONNECT_TIMEOUT = 5.0
#: Environment variable that :func:`local_cluster` sets for the worker processes it starts: the
#: file a worker makes when it finds itself importing an unguarded script again.
_REENTRY_MARK = "KMSEG_REENTRY_MARK"


class DaskNotInstalledError(KmsegError, ImportError):
    """The ``dask`` extra (dask, distributed, zarr) is not installed."""


class SchedulerUnreachableError(KmsegError, ConnectionError):
    """No Dask scheduler answers at the address given (``scheduler=``, ``--scheduler`` or
    ``DASK_SCHEDULER_ADDRESS``)."""


class UnguardedScriptError(KmsegError, RuntimeError):
    """A local cluster's workers could not start: the script (the main module), which each new
    worker process imports again, starts a cluster itself when imported; its kmseg calls belong
    under ``if __name__ == "__main__":``."""


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise DaskNotInstalledError(
            'kmseg.distributed needs Dask, which is not installed; pip install "kmseg[dask]"'
        ) from None


# --------------------------------------------------------------------------- the cluster


def _n_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def cluster_client(scheduler: str | None = None, *, n_workers: int | None = None) -> Iterator[Client]:
    """A Dask client for one job, closed (with its cluster, if it made one) on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler, such as ``"tcp://10.0.0.5:8786"``. Default: the
        ``DASK_SCHEDULER_ADDRESS`` environment variable; if that is unset too, a new
        :class:`distributed.LocalCluster` with ``n_workers`` single-threaded worker processes
        (default: one per core), each with ``NUMBA_NUM_THREADS=1`` so that the workers do not
        oversubscribe the cores.
    n_workers : int, optional
        Workers of the local cluster; ignored with a scheduler address.

    Yields
    ------
    client : distributed.Client

    Raises
    ------
    ParameterError, ParameterTypeError
        ``scheduler`` is empty or not a str.
    DaskNotInstalledError
        The ``dask`` extra is not installed.
    SchedulerUnreachableError
        No scheduler answers at the address within :data:`CONNECT_TIMEOUT` seconds (or
        Dask's ``distributed.comm.timeouts.connect``, if set).

    UnguardedScriptError
        The local cluster's workers could not start: the script calls kmseg when imported (see
        :func:`local_cluster`).
    """
    _require_dask()
    from distributed import Client

    if scheduler is not None and not isinstance(scheduler, str):
        raise ParameterTypeError(f"scheduler={scheduler!r} is not an address; pass a str such as 'tcp://10.0.0.5:8786'")
    if scheduler is not None and not scheduler.strip():
        raise ParameterError(f"scheduler={scheduler!r} is empty; pass an address such as 'tcp://10.0.0.5:8786', or "
                             "None for DASK_SCHEDULER_ADDRESS or a local cluster")
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if address:
        _reach(address, "scheduler" if scheduler else "DASK_SCHEDULER_ADDRESS")
        with Client(address, set_as_default=False) as client:
            yield client
        return
    n = _n_cores() if n_workers is None else check_int("n_workers", n_workers, 1)
    cluster = local_cluster(n)
    quiet = contextlib.ExitStack()
    try:
        with Client(cluster, set_as_default=False) as client:
            try:
                yield client
            except KeyboardInterrupt:
                # Dask logs the stopped workers' broken connections, with tracebacks: not a word of it.
                quiet.enter_context(_no_logging())
                _stop_workers(cluster)
                raise
    finally:
        with quiet:
            cluster.close()


@contextlib.contextmanager
def _no_logging() -> Iterator[None]:
    """No log record of any logger is emitted while the block runs."""
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(before)


def _stop_workers(cluster: Any) -> None:
    """Stop a local cluster's workers at once (Ctrl-C): their running tasks end there, as an
    interrupted run in this process would, rather than run to their end while the cluster
    closes (the workers ignore SIGINT, see :func:`local_cluster`). A write they were making
    leaves its temporary files, and with ``force`` perhaps backups of the files it was replacing:
    see :func:`_remove_temporaries`."""
    import signal

    for nanny in list(cluster.workers.values()):
        pid = getattr(nanny, "pid", None)
        if pid:
            with contextlib.suppress(OSError):  # gone already
                os.kill(pid, signal.SIGTERM)


class _NotAScheduler(Exception):
    """What listens at an address does not answer as a Dask scheduler (the message says how long)."""


def _connect_timeout() -> float:
    """Seconds to try an address for: Dask's ``distributed.comm.timeouts.connect`` when the user
    set it (in a Dask config file, ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT`` or
    ``dask.config.set``), else :data:`CONNECT_TIMEOUT`."""
    import dask
    from dask.utils import parse_timedelta

    key = "distributed.comm.timeouts.connect"
    value = dask.config.get(key, None)
    default = dask.config.get(key, None, config=dask.config.merge(*dask.config.defaults))
    if value is None or value == default:
        return CONNECT_TIMEOUT
    return float(parse_timedelta(value, default="seconds"))


def _why_unreachable(address: str, exc: BaseException, timeout: float) -> str:
    """What went wrong in trying ``address``, for the message. Dask's ``connect`` reports only
    that it timed out (and chains the last attempt's error, which may be that attempt's own
    timeout): for an address over TCP, one plain connection says what is there."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    from .cli import error_line

    if not (isinstance(exc, OSError) and str(exc).startswith("Timed out trying to connect")):
        return error_line(exc)
    no_answer = (f"no answer within {timeout:g} s; if the scheduler is just slow to answer, raise Dask's "
                 "distributed.comm.timeouts.connect")
    try:
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls", "ws", "wss"):
            return no_answer
        host, port = parse_host_port(location.split("/", 1)[0])
        socket.create_connection((host, port), timeout=1.0).close()
    except ConnectionRefusedError:
        return f"connection refused: nothing listens there; tried for {timeout:g} s"
    except socket.gaierror as e:
        return f"the host name does not resolve: {error_line(e)}"
    except (OSError, ValueError):
        pass
    return no_answer


def _reach(address: str, source: str) -> None:
    """Check that a Dask scheduler answers at ``address`` before a client is made for it.

    A :class:`distributed.Client` that fails to connect leaves a half-made client whose
    clean-up, when it is collected, waits up to a minute and prints a traceback; so the
    address is first tried with one connection, in a thread of its own, which works inside a
    running event loop (Jupyter) too. ``source``: where the address came from, for the message.

    The connection is tried (and a refused one tried again, in case the scheduler is just
    starting) for :func:`_connect_timeout` seconds, a few by default, not Dask's 30 s; once
    connected, the other end has as long again to answer as a scheduler. The client made
    afterwards keeps Dask's own timeouts.

    Raises
    ------
    SchedulerUnreachableError
        The address is malformed, nothing listens there, or what answers is not a scheduler.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect

    timeout = _connect_timeout()

    async def probe() -> None:
        comm = await connect(address, timeout=timeout)
        await comm.close()

    async def bounded() -> None:
        # Dask's connect bounds the connection, not the handshake after it: a port that accepts
        # and then says nothing would be waited on for ever.
        try:
            await asyncio.wait_for(probe(), 2 * timeout)
        except asyncio.TimeoutError:
            raise _NotAScheduler(f"something listens there but does not answer as a Dask scheduler within "
                                 f"{timeout:g} s") from None

    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, bounded()).result()
    except Exception as exc:  # any failure means no scheduler can be used there
        why = str(exc) if isinstance(exc, _NotAScheduler) else _why_unreachable(address, exc, timeout)
        if source == "scheduler":
            fix = CHECK_SCHEDULER
        else:
            fix = "fix or unset DASK_SCHEDULER_ADDRESS, which gave it"
        raise SchedulerUnreachableError(
            f"cannot reach a Dask scheduler at {address!r} ({why}); {fix}, or start a scheduler there "
            "with 'dask scheduler'"
        ) from None


def local_cluster(n_workers: int) -> Any:
    """A :class:`distributed.LocalCluster` of ``n_workers`` single-threaded worker processes.

    Two settings of the workers' environment differ from Dask's defaults:

    - ``NUMBA_NUM_THREADS=1``, set before the workers start (numba reads it once), so that the
      workers' kernels do not compete for the cores;
    - no ``MALLOC_TRIM_THRESHOLD_``: Dask sets it to 64 KiB, which also freezes glibc's
      threshold for serving large blocks from fresh pages, so every image-sized allocation
      page-faults anew (about 15 % more CPU time per photo here).

    The workers ignore SIGINT (see :func:`_sigint_ignored`): Ctrl-C in a terminal reaches every
    process of the job, and each worker printed its own traceback; the process that made the
    cluster handles it, and closing the cluster stops the workers.

    No dashboard, and the scheduler's HTTP routes listen on a free port of 127.0.0.1 (not
    Dask's 8787), so several such clusters run side by side.

    Each worker process imports the main script again (Dask starts them with ``spawn``). When
    the script calls kmseg at its top level, not under ``if __name__ == "__main__":``, the
    workers would call it again while they start: they stop there, without a word
    (:func:`_end_reentered_worker`), and the failure to start the cluster is raised as
    :class:`UnguardedScriptError`, in one line, instead of a page of traceback per worker.

    Raises
    ------
    UnguardedScriptError
        The script calls kmseg when imported, so the workers could not start.
    DaskNotInstalledError
        The ``dask`` extra is not installed.
    """
    if _importing_main():
        _end_reentered_worker()
    _require_dask()
    import dask
    from distributed import LocalCluster

    env = {"NUMBA_NUM_THREADS": "1", "MALLOC_TRIM_THRESHOLD_": None}
    # A worker that finds itself re-running an unguarded script leaves this file (see
    # _end_reentered_worker); it is made only then.
    mark = os.path.join(tempfile.gettempdir(), f"kmseg-reentry-{os.getpid()}-{secrets.token_hex(4)}")
    # The nanny sets these variables in this process too, before spawning its worker. Numba in
    # this process would refuse to compile anything afterwards (NUMBA_NUM_THREADS may not change
    # once its threads run), so they are all put back at once; a worker restarted later starts
    # with numba's default.
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}):
        keys = set(dask.config.get("distributed.nanny.pre-spawn-environ")) | {"PYTHONHASHSEED", _REENTRY_MARK}
        saved = {key: os.environ.get(key) for key in keys}
        os.environ[_REENTRY_MARK] = mark
        try:
            with _sigint_ignored():
                cluster = LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    # The scheduler's HTTP server (health and metrics routes) stays on even without
                    # a dashboard, on port 8787 unless told otherwise: on a free port of the
                    # loopback instead, so that a second cluster (another kmseg, a notebook's) does
                    # not find the port taken and warn.
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.CRITICAL,
                )
        except Exception:
            # Dask's error says only "Nanny failed to start", after each worker printed a page.
            if os.path.exists(mark):
                raise UnguardedScriptError(_unguarded_script("the Dask workers could not start: each one imports")) from None
            raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(mark)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    for nanny in cluster.workers.values():
        getattr(nanny, "pre_spawn_env", {}).pop("NUMBA_NUM_THREADS", None)
    return cluster


def _importing_main() -> bool:
    """Whether this process is a new ``multiprocessing`` child still importing its parent's main
    module (the ``spawn`` and ``forkserver`` start methods, Dask's ``spawn`` by default, run the
    script again, as ``__mp_main__``, before the child's own work). A kmseg call made then comes
    from the script's top level, not from under ``if __name__ == "__main__":``; starting a
    process from here is what ``multiprocessing`` refuses with "An attempt has been made to start
    a new process before the current process has finished its bootstrapping phase"."""
    import multiprocessing.process

    return bool(getattr(multiprocessing.process.current_process(), "_inheriting", False))


def _unguarded_script(who: str) -> str:
    """The one-line message of :class:`UnguardedScriptError`; ``who`` says which processes
    failed to start and imported the script again."""
    # A child importing the script again runs it as __mp_main__; __main__ is still its own stub.
    for name in ("__mp_main__", "__main__"):
        script = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(script, str):
            break
    else:
        script = "the script"
    return (f"{who} {script} again, and it starts a Dask cluster when imported; put its "
            'kmseg calls under `if __name__ == "__main__":`')


def _end_reentered_worker() -> NoReturn:
    """End this process: it is a worker of a local cluster (or another ``multiprocessing`` child)
    importing its parent's script again, and the script calls kmseg at its top level
    (:func:`_importing_main`). Starting a cluster here would fail with a page of traceback, in
    every worker, then Dask's own in the parent.

    When :func:`local_cluster` started the process, the file named by ``KMSEG_REENTRY_MARK`` is
    made and nothing printed: the parent, whose cluster then fails to start, says it in one line
    (:func:`local_cluster`). Otherwise the line goes to stderr here. The process ends at once
    (``os._exit``), so that none of the script's code after the call runs, even under a bare
    ``except``."""
    mark = os.environ.get(_REENTRY_MARK)
    made = False
    if mark:
        try:  # O_EXCL: made by the first worker only, and never through a link put there
            os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            made = True
        except FileExistsError:
            made = True
        except OSError:
            pass
    if not made:
        sys.stderr.write(f"kmseg: error: {_unguarded_script('a new process could not start: it imports')}\n")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(1)


def _remove_temporaries(out_dir: str | os.PathLike[str], stems: Sequence[str]) -> None:
    """Clear ``out_dir`` of what tasks stopped in the middle of writing the outputs of ``stems``
    left behind; after Ctrl-C, which stops a local cluster's workers at once.

    - Temporary files (``.STEM-KIND.EXT.xxxxxxxx.tmp``, as :func:`kmseg.io.write_bytes` names
      them) are removed.
    - Backups (``.STEM-KIND.EXT.xxxxxxxx.old``: with ``force``, the file an output replaces is
      kept under that name until the output's whole set is in place) are settled by
      :func:`kmseg.io._settle_backup`: removed only when they are a second name of the file at
      their output; when they are the only copy of the file they stood for, put back in its
      place if the stopped write had replaced it, else kept.
    """
    if not stems:
        return
    names = "|".join(re.escape(s) for s in stems)
    left = re.compile(
        rf"\.((?:{names})-(?:segmented|labels|palette|masked|cluster\d+)\.\w+)\.[0-9a-f]{{8}}\.(tmp|old)"
    )
    with contextlib.suppress(OSError):  # no folder: nothing was written
        with os.scandir(out_dir) as entries:
            found = [(e.path, m) for e in entries if (m := left.fullmatch(e.name))]
        for path, m in found:
            if m[2] == "old":
                _settle_backup(path, Path(out_dir) / m[1])
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this process while the block runs, so that the processes started
    meanwhile (a local cluster's workers) ignore it for good: an ignored signal stays ignored
    in a new process, and Python then installs no handler of its own. A Ctrl-C during the
    block is lost. Only in the main thread, the one that can change a signal's handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if old is None else old)


@contextlib.contextmanager
def _use_client(client: Client | None, scheduler: str | None) -> Iterator[Client]:
    if client is not None:
        yield client
    else:
        with cluster_client(scheduler) as c:
            yield c


class _NoBar:
    total = 0

    def advance(self, n: int = 1, note: str = "") -> None:
        pass

    def close(self) -> None:
        pass


def _bar(progress: bool, label: str) -> Any:
    """A progress bar whose total grows as passes are submitted (``_grow``)."""
    if not progress:
        return _NoBar()
    from .cli import Progress

    bar = Progress(2, label)  # enabled when stderr is a terminal; the real total comes later
    bar.total = 0
    return bar


def _grow(bar: Any, n: int) -> None:
    bar.total = getattr(bar, "total", 0) + n


def _reduce_tree(
    client: Client,
    leaves: Sequence[tuple[Callable[..., Any], tuple[Any, ...], int]],
    combine: Callable[..., Any],
    **kwargs: Any,
) -> tuple[Any, Future, dict[str, int]]:
    """Submit leaf tasks and a tree of ``combine`` tasks, ``FAN_IN`` inputs each.

    Leaves are submitted in groups, each followed by its combine task, so that the scheduler
    (which runs earlier submissions first) sums partial results as they appear and memory holds
    a few of them at a time, not all. The tree's shape depends only on the number of leaves, so
    the result does not depend on which task finishes first.

    ``leaves`` holds ``(function, args, weight)``; the weight is what a leaf counts for on the
    progress bar. Returns an ``as_completed`` iterator over the leaves (the only reference to
    them: each is released once it has been yielded and summed), the root's future, and the
    weight of every leaf by key.
    """
    from distributed import as_completed

    ac = as_completed(loop=client.loop)
    weights: dict[str, int] = {}
    level: list[Future] = []
    for i in range(0, len(leaves), FAN_IN):
        group = []
        for fn, args, weight in leaves[i : i + FAN_IN]:
            g = client.submit(fn, *args, pure=False)
            weights[g.key] = weight
            ac.add(g)
            group.append(g)
        level.append(group[0] if len(group) == 1 else client.submit(combine, *group, pure=False, **kwargs))
        del group, g
    while len(level) > 1:
        level = [
            level[i] if len(level[i : i + FAN_IN]) == 1
            else client.submit(combine, *level[i : i + FAN_IN], pure=False, **kwargs)
            for i in range(0, len(level), FAN_IN)
        ]
    return ac, level[0], weights


def _wait_tree(client: Client, ac: Any, root: Future, weights: dict[str, int], bar: Any, note: str = "") -> Any:
    try:
        for f in ac:
            if f.status == "error":
                f.result()
            bar.advance(weights.get(f.key, 1), note=note)
            del f
        return root.result()
    except BaseException:
        client.cancel([root])
        raise


# --------------------------------------------------------------------------- shared with the in-memory path


def _fit_reduced(red: Reduced, *, n_channels: int, color_space: str, vmax: float | None, k: int, offset: int = 0,
                 **options: Any):
    """Fit exactly as :meth:`kmseg.Prepared.fit` does (it is that method), on points reduced elsewhere
    (``offset``: see :meth:`kmseg.Prepared.from_reduced`)."""
    prep = Prepared.from_reduced(red, color_space=color_space, n_channels=n_channels, vmax=vmax, offset=offset)
    return prep.fit(k, **options)


def _init_features(init: np.ndarray, k: int, n_channels: int, color_space: str, vmax: float | None,
                   offset: int) -> np.ndarray:
    empty = Reduced("pixels", np.empty((0, n_channels)), None, 0)
    prep = Prepared.from_reduced(empty, color_space=color_space, n_channels=n_channels, vmax=vmax, offset=offset)
    return prep.init_features(init, k)


def _lite(centers, counts, inertia, n_iter, converged, color_space, shape, dtype, n_channels, source,
          display_range, space_centers=None) -> Segmentation:
    """A Segmentation without pixels (zero-stride views): for its palette and summary only.
    ``display_range``: the image's, found over its regions (it has no pixels to find it in);
    ``space_centers``: the centres in the clustering space (see :class:`kmseg.Segmentation`)."""
    H, W = shape[:2]
    C = shape[2]
    ghost = np.broadcast_to(np.zeros((), dtype=dtype), (H, W, C))
    return Segmentation(
        labels=np.broadcast_to(np.int32(0), (H, W)),
        centers=centers,
        inertia=inertia,
        n_iter=n_iter,
        counts=counts,
        converged=converged,
        color_space=color_space,
        original=ghost,
        painted=ghost,
        n_channels=n_channels,
        source=source,
        display_range=display_range,
        space_centers=space_centers,
    )


# --------------------------------------------------------------------------- one large image


def _window(region: Any, height: int, width: int) -> tuple[int, int, int, int]:
    """``region`` (y0, y1, x0, x1) checked against an image of ``height`` x ``width``; None: all of it."""
    if region is None:
        return 0, height, 0, width
    if isinstance(region, (str, bytes)) or not isinstance(region, (Sequence, np.ndarray)) or len(region) != 4:
        raise ParameterTypeError(f"region={region!r} is not (y0, y1, x0, x1); pass four integers such as (0, 512, 0, 512)")
    y0, y1, x0, x1 = (check_int(f"region[{i}]", v, 0) for i, v in enumerate(region))
    if not (y0 < y1 <= height and x0 < x1 <= width):
        raise ParameterError(
            f"region={tuple(region)!r} is empty or reaches outside the image, which is {height} x {width} pixels "
            f"(height x width); pass 0 <= y0 < y1 <= {height} and 0 <= x0 < x1 <= {width}"
        )
    return y0, y1, x0, x1


@dataclass
class LargeSegmentation:
    """The result of :func:`segment_large`: the fit, and the files that hold the pixels.

    Attributes
    ----------
    centers : (k, C) ndarray of float64
        Cluster centres in the input's units, as :attr:`kmseg.Segmentation.centers`.
    counts : (k,) ndarray of int64
        Pixels in each cluster.
    inertia : float
        Sum of squared distances to the centres, in the clustering space.
    n_iter : int
        Lloyd iterations of the final run, the last assignment included.
    converged : bool
        True when the final run stopped because no label changed.
    color_space : str
    shape : tuple
        (H, W, C) of the input, channels as :func:`kmseg.load_image` gives them.
    dtype : numpy.dtype
    paths : dict
        ``"segmented"``, ``"labels"`` and ``"palette"`` -> path written.
    source : str
    n_chunks : int
        Regions the image was processed in.
    n_colors : int or None
        Distinct colours of an 8-bit or 16-bit grey image, signed or not (the points the fit
        ran on); None for other images.
    display_range : (float, float)
        The input values shown as black and as white in the palette, as
        :attr:`kmseg.Segmentation.display_range`: uint8 and uint16 on their full range, floats
        in [0, 1] on 0-1, any other image from its least to its greatest value (transparent
        pixels left out), found region by region.
    timings : dict
        Wall-clock seconds of each phase of the job (``"histogram"``, ``"fit"``, ``"lloyd"``,
        ``"write"``, ``"sync"``...).
    space_centers : (k, D) ndarray or None
        The centres in the clustering space, as :attr:`kmseg.Segmentation.space_centers`.
    """

    centers: np.ndarray
    counts: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    color_space: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    paths: dict[str, Path]
    source: str
    n_chunks: int
    n_channels: int = field(default=3, repr=False)
    n_colors: int | None = None
    display_range: tuple[float, float] = field(default=(0.0, 255.0), repr=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False)
    space_centers: np.ndarray | None = field(default=None, repr=False)

    @property
    def k(self) -> int:
        """Number of clusters (fewer than asked when the image has fewer distinct colours)."""
        return int(self.centers.shape[0])

    def _lite(self) -> Segmentation:
        return _lite(self.centers, self.counts, self.inertia, self.n_iter, self.converged, self.color_space,
                     self.shape, self.dtype, self.n_channels, self.source, self.display_range, self.space_centers)

    def palette(self) -> list[dict[str, Any]]:
        """One entry per cluster, as :meth:`kmseg.Segmentation.palette`."""
        return self._lite().palette()

    def summary(self) -> dict[str, Any]:
        """The JSON-ready description written to the palette file."""
        return self._lite().summary()

    def read_labels(self, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Labels from the label file, as an int32 array with -1 for transparent pixels.

        Parameters
        ----------
        region : (y0, y1, x0, x1), optional
            A window to read, rows ``y0:y1`` and columns ``x0:x1``, inside the image;
            default the whole image (mind its size).

        Raises
        ------
        ParameterError, ParameterTypeError
            ``region`` is not four integers, is empty, or reaches outside the image.
        """
        src = open_source(self.paths["labels"])
        raw = src.read(*_window(region, src.height, src.width))[..., 0]
        labels = raw.astype(np.int32)
        labels[raw == np.iinfo(raw.dtype).max] = -1
        return labels

    def read_image(self, region: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The recoloured image (or a window of it, ``region`` as in :meth:`read_labels`) from the
        segmented file."""
        src = open_source(self.paths["segmented"])
        out = src.read(*_window(region, src.height, src.width))
        return out[..., 0] if self.shape[2] == 1 else out


def _check_chunks(chunks: Any) -> tuple[int, int]:
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        chunks = (chunks, chunks)
    if not isinstance(chunks, (tuple, list)) or len(chunks) != 2:
        raise ParameterTypeError(f"chunks={chunks!r} is not valid; pass (rows, columns) such as (2048, 2048)")
    return (check_int("chunks[0]", chunks[0], 1), check_int("chunks[1]", chunks[1], 1))


def _targets(out_dir: str | os.PathLike[str], stem: str, force: bool) -> dict[str, Path]:
    d = check_output_dir(out_dir, "out_dir")
    targets = {
        "segmented": d / f"{stem}-segmented.tif",
        "labels": d / f"{stem}-labels.tif",
        "palette": d / f"{stem}-palette.json",
    }
    refuse_existing(targets.values(), force)
    for target in targets.values():  # a directory in the way, or a path through a file: before any work
        _output_path(target, force)
    return targets


def segment_large(
    path: str | os.PathLike[str],
    k: int = 5,
    out_dir: str | os.PathLike[str] = "kmseg-out",
    *,
    color_space: str = "rgb",
    n_init: int = 10,
    init: str | np.ndarray = "k-means++",
    max_iter: int = 300,
    tol: float = 0.0,
    seed: int | np.random.Generator | None = None,
    alpha: bool | None = None,
    chunks: int | tuple[int, int] = DEFAULT_CHUNKS,
    sample: int = DEFAULT_SAMPLE,
    stem: str | None = None,
    force: bool = False,
    client: Client | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> LargeSegmentation:
    """Segment a TIFF too large for memory on a Dask cluster, exactly as :func:`kmseg.segment` would.

    The image is read in regions of about ``chunks`` pixels (aligned with its tiles or strips)
    by tasks that open the file themselves, so memory is bounded by the region size, not by the
    image. Writes ``{stem}-segmented.tif`` (the recoloured image, same dtype and channels as the
    input), ``{stem}-labels.tif`` (uint8 labels, uint16 from k = 255; the maximum marks
    transparent pixels), both deflate-compressed tiled TIFFs (tiles as the input's, or 256 x 256),
    and ``{stem}-palette.json`` (as :meth:`kmseg.Segmentation.save` writes it). The tasks compress
    their tiles; the driver only streams them into the files, under temporary names, then syncs
    and renames them.

    Values are clustered in their own units, as :func:`kmseg.segment` clusters them: int8 and
    int16 as uint8 and uint16 shifted by half their range, 32- and 64-bit integers as float64
    (exact up to 2**53; larger values are refused). 8-bit images (uint8, int8) with up to 3
    colour channels, and 16-bit grey ones (uint16, int16), give the same centres, labels,
    counts and inertia as ``kmseg.segment(path, k, seed=seed, ...)``: the regions' exact
    colour histograms are summed, and the in-memory fit runs on the sum. Other images (16-bit
    colour, wider integers, float, more bands) with at most ``sample`` pixels are gathered and fitted
    in memory, which again gives ``kmseg.segment``'s result. Larger ones are fitted in memory
    on a seeded sample of about ``sample`` pixels; from those centres (or from an ``init``
    array), Lloyd iterations run over all the pixels, each reducing per-region sums and counts,
    until no label changes: the same iterations, from the same start, as the in-memory engine
    (bit for bit for integer images, to rounding for float ones).

    Parameters
    ----------
    path : str or path
        A TIFF (tiled, striped or contiguous; integer or float samples; grey, RGB or more
        bands). Its first page is segmented.
    k : int
        Number of clusters, at least 1.
    out_dir : str or path
        Directory for the outputs (made if missing).
    color_space, n_init, init, max_iter, tol, seed, alpha
        As in :func:`kmseg.segment`. ``alpha`` defaults to whether the TIFF has an alpha
        sample. For the Lloyd iterations over regions, ``tol`` is scaled by the data's variance
        computed in one pass (it only ever stops early).
    chunks : int or (int, int)
        Target region size in pixels (rows, columns), rounded to whole output tiles, and to
        whole tiles or strips of the input when that does not make it much larger. A region
        is never smaller than one of the input's tiles or strips, each decoded whole: a TIFF
        stored as one compressed strip is one region.
    sample : int
        For images without a histogram (see above): the most pixels fitted in memory.
    stem : str, optional
        Output name stem; default the input's file name without suffix.
    force : bool
        Overwrite existing outputs. Otherwise :class:`kmseg.OutputExistsError` is raised before
        any work is done. Outputs are written under temporary names and renamed at the end.
    client : distributed.Client, optional
        Cluster to run on. Default: see ``scheduler``.
    scheduler : str, optional
        Scheduler address used when ``client`` is None (see :func:`cluster_client`).
    progress : bool
        Show a progress bar on stderr (only when it is a terminal).

    Returns
    -------
    LargeSegmentation

    Raises
    ------
    ParameterError, ParameterTypeError
        A parameter is out of range or of the wrong type.
    ImageError
        The file is missing, not a TIFF, a TIFF layout the chunked path cannot read, or holds NaN;
        or its tiles or strips are so large (one compressed strip for the whole image) that a
        task reading one of them would need more than a worker's memory limit.
    OutputExistsError
        An output exists and ``force`` is False.
    OutputError
        The outputs cannot be written in ``out_dir`` (a file in the way, no permission, a full disk...).
    DaskNotInstalledError
        The ``dask`` extra is not installed.
    SchedulerUnreachableError
        ``scheduler`` (or ``DASK_SCHEDULER_ADDRESS``) names an address where no scheduler answers.
    UnguardedScriptError
        A local cluster was needed, and the script calls this when imported, outside
        ``if __name__ == "__main__":`` (see :func:`local_cluster`).

    Warns
    -----
    ConvergenceWarning
        The image has fewer distinct colours than ``k``.

    Examples
    --------
    >>> import tifffile, tempfile, os                            # doctest: +SKIP
    >>> d = tempfile.mkdtemp()                                   # doctest: +SKIP
    >>> img = np.zeros((64, 64, 3), np.uint8); img[:, 32:] = 200 # doctest: +SKIP
    >>> tifffile.imwrite(f"{d}/a.tif", img, tile=(32, 32))       # doctest: +SKIP
    >>> res = segment_large(f"{d}/a.tif", k=2, out_dir=d, seed=0, chunks=32)  # doctest: +SKIP
    >>> sorted(res.counts.tolist())                              # doctest: +SKIP
    [2048, 2048]
    """
    _require_dask()
    k = check_int("k", k, 1)
    check_fit_options(n_init, max_iter, tol, init)
    rng = make_rng(seed)
    chunks = _check_chunks(chunks)
    sample = check_int("sample", sample, 1)
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterTypeError(f"path={path!r} is not a path; pass the path of a TIFF file")
    src = open_source(path)
    C = src.n_channels
    if alpha is None:
        alpha = src.has_alpha
    nc = C - (1 if alpha else 0)
    dtype = src.out_dtype
    space = check_for_image(color_space, C, bool(alpha), dtype, os.fspath(path))
    if isinstance(init, np.ndarray):  # its shape and values, before any pass over the image
        work, offset = working_dtype(dtype)
        _init_features(init, k, nc, space, _vmax(work), offset)
    stem = Path(os.fspath(path)).stem if stem is None else stem
    targets = _targets(out_dir, stem, force)
    tile = out_tile(src)
    regions = chunk_grid(src, chunks, tile)
    bar = _bar(progress, "segment")
    options = {"n_init": n_init, "init": init, "max_iter": max_iter, "tol": tol}
    with _use_client(client, scheduler) as cl:
        job = _LargeJob(cl, src, regions, bool(alpha), nc, space, dtype, bar, os.fspath(path), sample)
        try:
            result = job.run(k, rng, options, targets, tile, force)
        finally:
            bar.close()
    return result


class _LargeJob:
    """The passes of :func:`segment_large` over one image.

    The tasks cluster the colour values in their working dtype (:func:`kmseg.segment.working_dtype`,
    as :class:`kmseg.Prepared` does): ``self.work``, reached by adding ``self.offset`` (int8 and
    int16) or by converting to float64 (wider integers). Centres are given in the input's units,
    and the outputs in its dtype.
    """

    def __init__(self, client, src: TiffSource, regions, alpha, nc, space, dtype, bar, name,
                 sample=DEFAULT_SAMPLE):
        self.client = client
        self.sample = sample
        self.src = src
        self.regions = regions
        self.alpha = alpha
        self.nc = nc
        self.space = space
        self.dtype = dtype
        self.work, self.offset = working_dtype(dtype)
        self.vmax = _vmax(self.work)
        self.bar = bar
        self.name = os.path.basename(name)
        self.source = name
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def mark(self, phase: str) -> None:
        """Add the time since the last mark to ``phase``."""
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self._t
        self._t = now

    def pass_(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """Run ``fn(src, region, alpha, *args)`` on every region; results in region order.

        Regions are grouped into about four tasks per worker thread: these passes return little,
        and fewer tasks cost less scheduling (a few milliseconds each).
        """
        n = len(self.regions)
        _grow(self.bar, n)
        threads = max(1, sum(self.client.nthreads().values()))
        size = max(1, -(-n // (4 * threads)))
        groups = [self.regions[i : i + size] for i in range(0, n, size)]
        futs = [self.client.submit(T.each, fn, self.src, g, self.alpha, *args, pure=False) for g in groups]
        from distributed import as_completed

        try:
            sizes = {f.key: len(g) for f, g in zip(futs, groups)}
            for f in as_completed(futs, loop=self.client.loop):
                if f.status == "error":
                    f.result()
                self.bar.advance(sizes[f.key], note=self.name)
            return [r for part in self.client.gather(futs) for r in part]
        except BaseException:
            self.client.cancel(futs)
            raise

    def groups(self, pixels: int) -> list[list[tuple[int, int, int, int]]]:
        """Consecutive regions in groups of about ``pixels`` pixels, at least two groups per thread."""
        n = len(self.regions)
        y0, y1, x0, x1 = self.regions[0]
        threads = max(1, sum(self.client.nthreads().values()))
        size = max(1, min(round(pixels / max(1, (y1 - y0) * (x1 - x0))), -(-n // (2 * threads))))
        return [self.regions[i : i + size] for i in range(0, n, size)]

    # ----------------------------------------------------------------- the whole job

    def run(self, k, rng, options, targets, tile, force) -> LargeSegmentation:
        from distributed import as_completed

        self.check_memory()
        if histogram_bits(self.work, self.nc):
            fit = self.fit_histogram(k, rng, options)
        else:
            fit = self.fit_pixels(k, rng, options)
        k_eff = fit["features"].shape[0]
        centers = from_features(fit["features"], self.space, self.vmax) - self.offset
        colors = to_working(to_dtype(centers, self.dtype))  # what the tasks paint, in the working dtype
        H, W, C = self.src.height, self.src.width, self.src.n_channels
        label_dtype = np.dtype(np.uint8 if k_eff < 255 else np.uint16)
        d = targets["labels"].parent
        make_folder(d)
        tmp = {kind: d / f".{targets[kind].name}.{secrets.token_hex(4)}.tmp" for kind in ("segmented", "labels")}
        writers: list[TileWriter] = []
        n = len(self.regions)
        counts = np.zeros(k_eff, dtype=np.int64)
        inertia_parts = np.zeros(n)
        try:
            writers = [TileWriter(tmp["labels"], (H, W, 1), label_dtype, tile, alpha=False),
                       TileWriter(tmp["segmented"], (H, W, C), self.dtype, tile, alpha=self.alpha)]
            self.mark("fit")
            _grow(self.bar, n)
            if fit.get("tables") is not None:
                tables = self.client.scatter(fit.pop("tables"), broadcast=True, hash=False)
                futs = [self.client.submit(T.paint_hist_chunk, self.src, r, self.alpha, tables, colors, tile,
                                           label_dtype.name, pure=False) for r in self.regions]
                del tables
            else:
                futs = [self.client.submit(T.final_pixels_chunk, self.src, r, self.alpha, self.space, self.vmax,
                                           fit["features"], colors, tile, label_dtype.name, pure=False)
                        for r in self.regions]
            index = {f.key: i for i, f in enumerate(futs)}
            ac = as_completed(futs, loop=self.client.loop)
            del futs  # each result is released once its tiles are handed over
            for f in ac:
                i = index[f.key]
                part = f.result()
                del f
                ids = tile_indices(self.regions[i], (H, W), tile)
                for w, tiles in zip(writers, part[:2]):
                    for j, data in zip(ids, tiles):
                        w.put(j, data)
                if len(part) > 2:
                    counts += part[2]
                    inertia_parts[i] = part[3]
                del part
                self.bar.advance(note=self.name)
            for w in writers:
                w.close()
            self.mark("write")
            if "counts" not in fit:
                fit["counts"] = counts
                if fit["inertia"] is None:
                    fit["inertia"] = float(inertia_parts.sum())
            result = LargeSegmentation(
                centers=centers, counts=fit["counts"], inertia=float(fit["inertia"]), n_iter=int(fit["n_iter"]),
                converged=bool(fit["converged"]), color_space=self.space, shape=(H, W, C), dtype=np.dtype(self.dtype),
                paths=dict(targets), source=self.source, n_chunks=n, n_channels=self.nc, n_colors=fit.get("n_colors"),
                display_range=range_of(self.dtype, self._extent(fit.get("extent"))), timings=self.timings,
                space_centers=fit["features"],
            )
            tmp["palette"] = Path(_stage(targets["palette"], json_bytes(result.summary())))
            # The three together: if one cannot be moved into place, none is left.
            publish_all([(tmp[kind], targets[kind]) for kind in ("labels", "segmented", "palette")], force)
        except BaseException as exc:
            for w in writers:
                w.abort()
            # A TIFF the system refused to write (no permission, a full disk) is named, with the fix.
            kind = next((kind for kind, w in zip(("labels", "segmented"), writers) if w.error is exc), None)
            error = refusal(targets[kind], exc) if kind is not None and isinstance(exc, OSError) else None
            if error is None:
                raise
            raise error from None
        finally:
            for p in tmp.values():
                with contextlib.suppress(OSError):
                    os.unlink(p)
        self.mark("sync")
        return result

    def _extent(self, extent: tuple[float, float] | None) -> tuple[float, float] | None:
        """Least and greatest colour value, in the working dtype's units -> the input's."""
        return None if extent is None else (extent[0] - self.offset, extent[1] - self.offset)

    def task_memory(self, pixels: int) -> int:
        """Bytes a task holds at most for a region of ``pixels`` pixels, roughly: its values and
        their features (float64, in the passes over pixels) or histogram codes, and a decoded
        segment."""
        per_value = 8 if histogram_bits(self.work, self.nc) else 24
        return pixels * (per_value * self.src.n_channels + 8) + self.src.segment_bytes

    def check_memory(self) -> None:
        """Refuse, before any work, a file whose tiles or strips are so large that a region of
        just one of them needs more memory than a worker of the cluster has (its
        ``memory_limit``; clusters without one are not checked): an image stored as one
        compressed strip is read whole by one task."""
        from dask.utils import format_bytes

        src = self.src
        if not src.segment_bytes:
            return
        sh, sw = min(src.seg_shape[0], src.height), min(src.seg_shape[1], src.width)
        need = self.task_memory(sh * sw)
        try:
            workers = self.client.scheduler_info(n_workers=-1)["workers"]
        except TypeError:  # distributed before 2025: every worker, always
            workers = self.client.scheduler_info()["workers"]
        limits = [m for m in (w.get("memory_limit") or 0 for w in workers.values()) if m > 0]
        if not limits or need <= 0.8 * min(limits):  # Dask pauses a worker at 80 % of its limit
            return
        what = "tile" if src.tiled else "strip"
        compressed = "compressed " if src.compressed else ""
        if (sh, sw) == (src.height, src.width):
            stored = f"one {compressed}{what} of {sh} x {sw} pixels"
        else:
            stored = f"{compressed}{what}s of {sh} x {sw} pixels"
        raise NotAnImageError(
            f"{self.source}: its pixels are stored as {stored}, which a task must decode whole: about "
            f"{format_bytes(need)} in one worker, which has {format_bytes(min(limits))}; re-save it tiled (e.g. "
            f"vips tiffsave {self.source} tiled.tif --tile --compression deflate), give the workers more memory, or "
            f"{IN_MEMORY}"
        )

    # ----------------------------------------------------------------- 8-bit and 16-bit grey: one histogram

    def fit_histogram(self, k, rng, options) -> dict[str, Any]:
        groups = self.groups(1 << 25)
        _grow(self.bar, len(self.regions))
        leaves = [(T.hist_group, (self.src, g, self.alpha), len(g)) for g in groups]
        ac, root, weights = _reduce_tree(self.client, leaves, T.merge)
        codes, counts = _wait_tree(self.client, ac, root, weights, self.bar, self.name)
        self.mark("histogram")
        if codes.shape[0] == 0:
            raise InvalidImageDataError(f"{self.source}: image has no opaque pixels (every alpha is 0); there is nothing to cluster")
        bits = histogram_bits(self.work, self.nc)
        extent = None
        if self.offset:  # int8, int16: the display range is the values' own (uint8, uint16: the dtype's)
            values = decode(codes, self.nc, bits)
            extent = (float(values.min()), float(values.max()))
            del values
        red = reduce_histogram(codes, counts, self.nc, self.space, bits)
        del codes, counts
        res, point_labels, inertia, _ = _fit_reduced(
            red, n_channels=self.nc, color_space=self.space, vmax=self.vmax, k=k, offset=self.offset, seed=rng,
            **options
        )
        k_eff = res.centers.shape[0]
        tables = label_tables(red.codes, point_labels, self.nc, k_eff, red.value_bits)
        counts_k = cluster_weights(point_labels, red.weights, k_eff)
        return {"features": res.centers, "tables": tables, "counts": counts_k, "inertia": inertia,
                "n_iter": res.n_iter, "converged": res.converged, "n_colors": int(red.codes.shape[0]),
                "extent": extent}

    # ----------------------------------------------------------------- other data: Lloyd over regions

    def fit_pixels(self, k, rng, options) -> dict[str, Any]:
        """Non-8-bit images: the in-memory fit on the pixels (all, or a sample), then Lloyd.

        When the image has at most ``sample`` pixels, they are all gathered (in image order)
        and the in-memory fit runs on them: the result is ``kmseg.segment``'s. Otherwise the
        in-memory fit runs on a seeded sample of about ``sample`` pixels, and its centres start
        Lloyd iterations over all the pixels. With an ``init`` array, Lloyd starts from it.
        """
        sv = (self.space, self.vmax)
        init = options["init"]
        H, W = self.src.height, self.src.width
        p = 1.0 if H * W <= self.sample else self.sample / (H * W)
        # A copy, so that the in-memory fit draws from ``rng`` exactly as kmseg.segment would.
        key = int(copy.deepcopy(rng).integers(2**63))
        if isinstance(init, np.ndarray):
            p = 0.0
        parts = self.pass_(T.sample_chunk, *sv, p, key)
        self.mark("sample")
        n = int(sum(q[0] for q in parts))
        if n == 0:
            raise InvalidImageDataError(f"{self.source}: image has no opaque pixels (every alpha is 0); there is nothing to cluster")
        if 0.0 < p < 1.0 and n <= self.sample:
            p = 1.0  # transparent pixels made the image small enough to fit whole
            parts = self.pass_(T.sample_chunk, *sv, p, key)
        mean = np.sum([q[1] for q in parts], axis=0) / n
        var = np.maximum(np.sum([q[2] for q in parts], axis=0) / n - mean * mean, 0.0)
        extents = [q[5] for q in parts if q[5] is not None]
        extent = (min(e[0] for e in extents), max(e[1] for e in extents))
        tol_abs = float(options["tol"] * var.mean()) if options["tol"] > 0 else 0.0
        if isinstance(init, np.ndarray):
            start = _init_features(init, k, self.nc, self.space, self.vmax, self.offset)
        else:
            idx = np.concatenate([q[3] for q in parts])
            values = np.concatenate([q[4] for q in parts])[np.argsort(idx, kind="stable")]
            del parts, idx
            red = reduce_image(values[:, None, :], None, self.space, self.vmax)
            res, _, inertia, few = _fit_reduced(red, n_channels=self.nc, color_space=self.space, vmax=self.vmax,
                                                k=k, offset=self.offset, seed=rng, warn=p >= 1.0, **options)
            if p >= 1.0:  # every pixel: this is the in-memory result
                return {"features": res.centers, "tables": None, "inertia": inertia, "n_iter": res.n_iter,
                        "converged": res.converged, "extent": extent}
            start = res.centers if not few else self.top_up(res.centers, k)
        self.mark("fit")
        C, n_iter, converged = self.lloyd(start, options["max_iter"], tol_abs, n)
        self.mark("lloyd")
        return {"features": C, "tables": None, "inertia": None, "n_iter": n_iter, "converged": converged,
                "extent": extent}

    def top_up(self, start: np.ndarray, k: int) -> np.ndarray:
        """The centres of a sample that has fewer distinct colours than ``k`` (one on each), and
        as many more as the image has: its costliest distinct points, as the engine moves an
        empty cluster, left out those on a centre. The regions give their costliest distinct
        points, so those of the image are among them; fewer than ``k`` centres in all means the
        image has only that many distinct colours, which warns as in memory."""
        m = k - start.shape[0]
        parts = self.pass_(T.far_chunk, self.space, self.vmax, start, m)
        d2 = np.concatenate([q[0] for q in parts])
        pts = np.concatenate([q[1] for q in parts])
        chosen = [i for i in T.farthest_distinct(pts, d2, m) if d2[i] > 0]
        centres = np.concatenate([start, pts[chosen]])
        n = centres.shape[0]
        if n < k:
            warnings.warn(f"{fewer_colours(n, k)}; returning {counted(n, 'cluster')}, one per colour",
                          ConvergenceWarning, stacklevel=user_stacklevel())
        return centres

    def lloyd(self, start: np.ndarray, max_iter: int, tol_abs: float, n: int) -> tuple[np.ndarray, int, bool]:
        """Lloyd iterations over the regions, as ``_engine.lloyd`` runs them on all the points.

        The engine stops when an assignment changes no label. Labels are not kept between
        iterations here (they would take memory in proportion to the image); instead the loop
        stops when an update leaves every centre bit-identical. The two rules stop on the same
        centres: unchanged labels give unchanged sums, hence identical centres, and identical
        centres give identical labels. (Only when two different labelings have identical means
        can this loop stop one iteration earlier, with the same centres; ``n_iter`` then differs
        by one.) Sums are made per region in the engine's fixed blocks and added in region
        order; for integer images every sum is exact, so the centres are bit for bit the
        engine's.
        """
        C = np.ascontiguousarray(start, dtype=np.float64).copy()
        sv = (self.space, self.vmax)
        n_iter = 0
        converged = False
        for it in range(max_iter):
            parts = self.pass_(T.lloyd_chunk, *sv, C)
            n_iter += 1
            sums = parts[0][0].copy()
            counts = parts[0][1].copy()
            for s, c in parts[1:]:
                sums += s
                counts += c
            C_new = C.copy()
            nz = counts > 0
            C_new[nz] = sums[nz] / counts[nz, None]
            if not nz.all():
                self.relocate(C_new, np.flatnonzero(~nz), C)
            if np.array_equal(C_new, C):
                converged = True
                if it == 0:
                    n_iter += 1  # the engine needs a second assignment to see that nothing changed
                break
            shift2 = float(((C_new - C) ** 2).sum())
            C = C_new
            if tol_abs > 0.0 and shift2 <= tol_abs:
                break
        if not converged:
            n_iter += 1  # the final assignment, made by the writing pass
        return C, n_iter, converged

    def relocate(self, C_new: np.ndarray, empty: np.ndarray, C_old: np.ndarray) -> None:
        """Move every empty cluster to a costliest distinct point, as the engine does."""
        m = len(empty)
        parts = self.pass_(T.far_chunk, self.space, self.vmax, C_old, m)
        d2 = np.concatenate([q[0] for q in parts])
        pts = np.concatenate([q[1] for q in parts])
        chosen = T.farthest_distinct(pts, d2, m)
        for j, i in zip(empty, chosen):
            C_new[j] = pts[i]


# --------------------------------------------------------------------------- batches


@dataclass
class BatchResult:
    """The result of :func:`segment_batch`.

    Attributes
    ----------
    results : list of dict
        One per input, in input order: the summary ``kmseg segment --json`` prints for each file
        (``input``, ``ok``, ``k``, ``inertia``, ``n_iter``, ``seconds``, ``outputs``,
        ``palette``), or ``{"input", "ok": False, "error"}`` for a file that failed.
    centers : (k, C) ndarray or None
        The shared palette's centres (with ``shared_palette=True`` only).
    """

    results: list[dict[str, Any]]
    centers: np.ndarray | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The entries of the files that failed."""
        return [r for r in self.results if not r["ok"]]


def _error_entry(path: str, exc: BaseException) -> dict[str, Any]:
    from .cli import error_line

    if isinstance(exc, (KmsegError, OSError)):
        return {"input": path, "ok": False, "error": error_line(exc)}
    return {"input": path, "ok": False, "error": f"{type(exc).__name__}: {error_line(exc)}"}


def _batch_opts(k, out_dir, color_space, n_init, seed, scale, max_pixels, disable, masks, force, *,
                cli: bool, palette: Any = None, plane: int | None = None) -> dict[str, Any]:
    """The options of a batch's tasks; ``cwd``, this process's working folder, is what relative
    paths are relative to, in whatever folder a worker runs (``_dask_tasks.client_path``);
    ``cli``: the command line's batch, whose errors are worded for it; ``palette``: a
    :class:`kmseg.Palette` to label every file with instead of fitting (``--palette``);
    ``plane``: the plane of each file to read (``--plane``)."""
    return {"k": k, "out": os.fspath(out_dir), "color_space": color_space, "seed": seed, "n_init": n_init,
            "scale": scale, "max_pixels": max_pixels, "disable": list(disable) if disable else None,
            "masks": bool(masks), "force": bool(force), "cwd": os.getcwd(), "cli": cli, "palette": palette,
            "plane": plane}


def _collect(client, futs, index, paths, record) -> None:
    """Record every per-file result as it arrives; results are fetched in batches (fewer round
    trips), and a task that died (a worker killed, a bug) fails its file alone."""
    from distributed import as_completed

    for batch in as_completed(futs, loop=client.loop).batches():
        done = [f for f in batch if f.status != "error"]
        for f, entry in zip(done, client.gather(done, errors="skip") if done else []):
            record(index[f.key], entry)
        for f in batch:
            if f.status == "error":
                record(index[f.key], _error_entry(paths[index[f.key]], f.exception()))


def _run_batch(client, paths, stems, opts, shared, bar, on_result) -> BatchResult:
    """Segment ``paths`` as tasks; ``on_result(i, entry)`` is called as each file's entry arrives."""
    from distributed import as_completed

    results: list[dict[str, Any] | None] = [None] * len(paths)
    if not paths:
        return BatchResult([])

    def record(i: int, entry: dict[str, Any]) -> None:
        results[i] = entry
        on_result(i, entry)
        bar.advance(note=os.path.basename(paths[i]))

    if not shared:
        _grow(bar, len(paths))
        futs = [client.submit(T.batch_one, p, s, opts, pure=False) for p, s in zip(paths, stems)]
        index = {f.key: i for i, f in enumerate(futs)}
        _collect(client, futs, index, paths, record)
        return BatchResult(results)  # type: ignore[arg-type]

    # One palette for all: per-file histograms, merged as they arrive (the sum is exact and sorted
    # by code, so neither the order of the files nor the order of completion matters). A file
    # that cannot be read gives None here, and its labelling task reports the error.
    _grow(bar, 2 * len(paths))
    ac = as_completed(loop=client.loop)
    for p in paths:  # no list of these futures: each is released once merged
        ac.add(client.submit(T.shared_hist, p, opts["max_pixels"], opts["cwd"], opts["plane"], pure=False))
    pending: list[Future] = []
    level: list[Future] = []
    for f in ac:
        bar.advance()
        pending.append(f)
        if len(pending) == FAN_IN:
            level.append(client.submit(T.merge_shared, *pending, pure=False))
            pending = []
        del f
    level += pending
    del pending
    while len(level) > 1:
        level = [client.submit(T.merge_shared, *level[i : i + FAN_IN], pure=False)
                 for i in range(0, len(level), FAN_IN)]
    codes, counts, grey = level[0].result() or (np.empty(0, np.int64), np.empty(0, np.int64), False)
    del level
    shared_fit: dict[str, Any] | None = None
    tables_f = None
    centers = None
    if codes.shape[0]:
        space = opts["color_space"]
        # Grey images only, in RGB: a grey palette and grey outputs, as without Dask (the
        # replicated codes are v * 0x010101, sorted as the values).
        nc = 1 if grey and space == "rgb" else 3
        if nc == 1:
            codes = codes & 0xFF
        red = reduce_histogram(codes, counts, nc, space)
        del codes, counts
        res, point_labels, _, few = _fit_reduced(red, n_channels=nc, color_space=space, vmax=255.0, k=opts["k"],
                                                 n_init=opts["n_init"], seed=opts["seed"], warn=False)
        if few:  # as Prepared.fit warns, but of all the images together
            n = res.centers.shape[0]
            warnings.warn(
                f"{fewer_colours(n, opts['k'], together=True)}; "
                f"the shared palette has {counted(n, 'colour')}, one per colour",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        centers = from_features(res.centers, space, 255.0)
        tables = label_tables(red.codes, point_labels, nc, res.centers.shape[0])
        del red, point_labels
        shared_fit = {"centers": centers, "features": res.centers, "colors": to_dtype(centers, np.dtype(np.uint8)),
                      "n_iter": res.n_iter, "converged": res.converged, "color_space": space}
        tables_f = client.scatter(tables, broadcast=True, hash=False)
        del tables
    futs = [client.submit(T.shared_label, p, s, shared_fit, tables_f, opts, pure=False) for p, s in zip(paths, stems)]
    index = {f.key: i for i, f in enumerate(futs)}
    _collect(client, futs, index, paths, record)
    return BatchResult(results, centers)  # type: ignore[arg-type]


def _check_paths(paths: Any) -> list[str]:
    """A batch's paths as strs; one path on its own, or anything but a sequence of paths, is refused."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        one = os.fsdecode(paths)
        raise ParameterTypeError(
            f"paths={one!r} is one path, not a list of them; pass a list such as [{one!r}], or for a pattern "
            f"sorted(glob.glob({one!r}))"
        )
    if not isinstance(paths, Iterable):
        raise ParameterTypeError(f"paths={paths!r} is not a list of paths; pass a list of image file paths")
    names = []
    for i, p in enumerate(paths):
        if not isinstance(p, (str, os.PathLike)):
            raise ParameterTypeError(f"paths[{i}]={p!r} is not a path; pass a str or a pathlib.Path")
        names.append(os.fspath(p))
    return names


def _check_disable(disable: Any) -> list[int] | None:
    """``disable`` as a list of cluster indices (one index on its own too), each an int of at least 0."""
    if disable is None:
        return None
    if isinstance(disable, (int, np.integer)) and not isinstance(disable, bool):
        disable = [disable]
    if isinstance(disable, (str, bytes)) or not isinstance(disable, Iterable):
        raise ParameterTypeError(f"disable={disable!r} is not a list of cluster indices; pass integers such as [0, 2]")
    return [check_int(f"disable[{i}]", v, 0) for i, v in enumerate(disable)] or None


def segment_batch(
    paths: Sequence[str | os.PathLike[str]],
    k: int | None = None,
    out_dir: str | os.PathLike[str] = "kmseg-out",
    *,
    color_space: str | None = None,
    n_init: int | None = None,
    seed: int | None = None,
    scale: float | None = None,
    max_pixels: int | None = None,
    disable: Sequence[int] | None = None,
    masks: bool = False,
    force: bool = False,
    shared_palette: bool = False,
    palette: Palette | str | os.PathLike[str] | None = None,
    plane: int | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> BatchResult:
    """Segment many image files on a Dask cluster, one task per file.

    Each task runs the normal in-memory path (``kmseg segment``'s own per-file code: load,
    :func:`kmseg.segment`, :meth:`kmseg.Segmentation.save`), so every file gives the outputs the
    command line gives it. A file that cannot be read or written fails alone: it is listed in
    the result with its error, and the others go on.

    With ``shared_palette=True``, one palette is fitted on all the files together: every file's
    exact colour histogram is computed in a task, the histograms are summed (in any order: the
    sum is exact and sorted by colour), the in-memory fit runs once on the sum, and every file is
    then labelled and painted with that palette. The palette does not depend on the order of
    the files. Files must be 8-bit grey or RGB. Grey files alone are clustered, and painted, in
    grey, as without Dask; mixed with RGB ones (or in ``"lab"`` or ``"hsv"``), they are
    clustered as RGB (grey replicated) and their outputs are RGB.

    With ``palette``, nothing is fitted: every file is labelled with the palette given (as
    :meth:`kmseg.Palette.apply` labels it, in its task), so that all share its colours.

    Parameters
    ----------
    paths : sequence of str or path
        Image files (see :func:`kmseg.load_image`), visible to every worker at the same path.
    k : int, optional
        Number of clusters, at least 1; default 5, or with ``palette`` the palette's number
        of colours (another ``k`` is refused).
    out_dir : str or path
        Output directory; files are named as :meth:`kmseg.Segmentation.save` names them, with
        stems made unique as the command line makes them.
    color_space : {"rgb", "lab", "hsv"}, optional
        As in :func:`kmseg.segment`; default ``"rgb"``, or with ``palette`` the space it was
        clustered in (another is refused).
    n_init, seed, scale, max_pixels
        As in :func:`kmseg.segment` (``n_init`` defaults to 10); ``seed`` is given to every
        file. ``scale`` is not available with a shared palette; ``n_init``, ``seed`` and
        ``scale``, which only a fit uses, are not available with ``palette``.
    disable, masks, force
        As in :meth:`kmseg.Segmentation.save`.
    shared_palette : bool
        Fit one palette on all the files, as above.
    palette : kmseg.Palette, str or path, optional
        Label every file with this palette instead of fitting: a :class:`kmseg.Palette`, or a
        palette file :func:`kmseg.io.read_palette` reads (a ``NAME-palette.json`` that
        ``kmseg segment`` wrote, ``.gpl``, ``.ase``, ``.css``, a palette ``.png``), read here, once.
    plane : int, optional
        The plane of every file to segment (of TIFF stacks, or a frame of animations), as in
        :func:`kmseg.segment`; the outputs are then named ``{stem}-plane{N}-...``.
    client, scheduler, progress
        As in :func:`segment_large`.

    Returns
    -------
    BatchResult

    Raises
    ------
    ParameterError, ParameterTypeError
        A parameter is out of range or of the wrong type, or does not go with ``palette``
        (problems with one file do not raise).
    PaletteNotFoundError, PaletteFileError
        The palette file is not there, or cannot be read as a palette.
    DaskNotInstalledError
        The ``dask`` extra is not installed.
    SchedulerUnreachableError
        ``scheduler`` (or ``DASK_SCHEDULER_ADDRESS``) names an address where no scheduler answers.
    UnguardedScriptError
        A local cluster was needed, and the script calls this when imported, outside
        ``if __name__ == "__main__":`` (see :func:`local_cluster`).

    Warns
    -----
    ConvergenceWarning
        A file's fit warned in its worker (as :func:`kmseg.segment` warns); the message starts
        with the file's path. With ``shared_palette=True``: the files have fewer distinct
        colours together than ``k``.

    Notes
    -----
    On ``KeyboardInterrupt`` (Ctrl-C), the workers of a local cluster made for the job stop at
    once, and the temporary files of the writes under way are removed; the files finished
    before keep their outputs. The tasks running on a cluster given by ``client`` or
    ``scheduler`` go on until they end.
    """
    _require_dask()
    from .cli import output_stems, overwritten_input

    names = _check_paths(paths)
    if k is not None:
        k = check_int("k", k, 1)
    if n_init is not None:
        check_int("n_init", n_init, 1)
    check_scale(scale)
    _check_max_pixels(max_pixels)
    disable = _check_disable(disable)
    check_output_dir(out_dir, "out_dir")
    if color_space is not None and (not isinstance(color_space, str) or color_space.lower() not in COLOR_SPACES):
        raise ParameterError(f"color_space={color_space!r} is not supported; use 'rgb', 'lab' or 'hsv'")
    if seed is not None:
        check_int("seed", seed, 0)
    if shared_palette and scale is not None:
        raise ParameterError("scale is not available with shared_palette=True; the shared palette is fitted on every pixel")
    if palette is None:
        k, space, n_init = 5 if k is None else k, (color_space or "rgb").lower(), 10 if n_init is None else n_init
    else:
        palette, space = _given_palette(palette, k, color_space, n_init, seed, scale, shared_palette)
        k = palette.k
    opts = _batch_opts(k, out_dir, space, n_init, seed, scale, max_pixels, disable, masks, force, cli=False,
                       palette=palette, plane=check_plane(plane))
    bar = _bar(progress, "segment")
    stems = output_stems(names, opts["plane"])
    if force:  # (without it, an output that exists is refused anyway)
        problem = overwritten_input(names, stems, os.fspath(out_dir))
        if problem:
            raise ParameterError(f"{problem}, and force=True would overwrite it; leave kmseg's outputs out of paths "
                                 "or pass another out_dir")
    try:
        with _use_client(client, scheduler) as cl:
            out = _run_batch(cl, names, stems, opts, shared_palette, bar, lambda i, r: None)
    except KeyboardInterrupt:
        _remove_temporaries(out_dir, stems)  # of writes stopped in the middle
        raise
    finally:
        bar.close()
    for r in out.results:
        r.pop("usage_error", None)
        for category, message in r.pop("warnings", ()):  # raised in a worker: raised here again, naming the file
            cls, text = T.worker_warning(r["input"], category, message)
            warnings.warn(text, cls, stacklevel=user_stacklevel())
    return out


def _given_palette(palette: Any, k: int | None, color_space: str | None, n_init: int | None, seed: int | None,
                   scale: float | None, shared_palette: bool) -> tuple[Palette, str]:
    """:func:`segment_batch`'s ``palette`` (a :class:`Palette`, or a file read here) and the
    colour space to label in, checked against the options that go with it, as the command
    line checks ``--palette`` (``cli.resolve_segment_options``)."""
    if shared_palette:
        raise ParameterError("palette and shared_palette=True cannot go together: palette labels with the palette "
                             "given, shared_palette fits one; drop one of them")
    for name, value in (("n_init", n_init), ("seed", seed), ("scale", scale)):
        if value is not None:
            raise ParameterError(f"{name}={value!r} has no effect with palette, which fits nothing; drop {name}")
    if isinstance(palette, (str, os.PathLike)):
        from .io import read_palette

        palette = read_palette(palette)
    elif not isinstance(palette, Palette):
        raise ParameterTypeError(
            f"palette of type {type(palette).__name__} is not supported; pass a kmseg.Palette (for an array of "
            "centres: kmseg.Palette(centers, dtype=...)) or the path of a palette file"
        )
    if k is not None and k != palette.k:
        raise ParameterError(f"k={k} does not match {palette._name}, which has {palette.k} colours; leave k out "
                             "(with palette, k is the palette's)")
    return palette, palette._space(color_space)


# --------------------------------------------------------------------------- the command line


def _large_tiff(path: str, max_pixels: int | None) -> bool:
    """Whether ``path`` is a TIFF the in-memory path would refuse as too large (then it is chunked)."""
    if not path.lower().endswith((".tif", ".tiff")):
        return False
    try:
        import tifffile
        from PIL import Image

        limit = max_pixels if max_pixels is not None else Image.MAX_IMAGE_PIXELS
        if limit is None:
            return False
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return int(page.imagewidth) * int(page.imagelength) > limit
    except Exception:
        return False  # let the normal path report the problem


def _large_entry(path: str, stem: str, args: argparse.Namespace, client: Client, bar: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    for flag, value in (("--scale", args.scale), ("--disable", args.disable), ("--masks", args.masks)):
        if value:
            raise ParameterError(f"{path}: {flag} is not available for images too large for memory; drop it")
    src = open_source(path)
    alpha = src.has_alpha
    nc = src.n_channels - (1 if alpha else 0)
    dtype = src.out_dtype
    space = check_for_image(args.color_space, src.n_channels, alpha, dtype, path)
    targets = _targets(args.out, stem, args.force)
    tile = out_tile(src)
    regions = chunk_grid(src, DEFAULT_CHUNKS, tile)
    job = _LargeJob(client, src, regions, alpha, nc, space, dtype, bar, path)
    res = job.run(args.k, make_rng(args.seed), {"n_init": args.n_init, "init": "k-means++", "max_iter": 300, "tol": 0.0},
                  targets, tile, args.force)
    return {
        "input": path,
        "ok": True,
        "k": res.k,
        "inertia": res.inertia,
        "n_iter": res.n_iter,
        "seconds": round(time.perf_counter() - t0, 4),
        "outputs": {kind: str(p) for kind, p in res.paths.items()},
        "palette": res.palette(),
    }


def cli_segment(paths: list[str], args: argparse.Namespace) -> int:
    """``kmseg segment ... --dask``: run the batch on a cluster; returns the exit code.

    Every file is a task running the normal per-file path; TIFFs larger than the in-memory
    limit (``--max-pixels``, default Pillow's) are segmented region by region with
    :func:`segment_large` instead. ``--shared-palette`` fits one palette on all the files;
    ``--palette`` labels every file with the palette read, in its task (in memory: a TIFF too
    large for it fails alone).
    One progress bar covers the whole job. Each file is reported as it finishes, as the
    in-memory batch reports it (exit code 1 when any failed). On Ctrl-C, as in the in-memory
    batch, the files finished before it stay reported (with ``--json``, in the summary then
    printed), the last line says how far the batch got, and the exit code is 130; a local
    cluster's workers stop at once, and the temporary files of the writes they were making are
    removed.
    """
    from .cli import UsageError, error_line, interrupted, output_stems, report_batch, show_done, warnings_as_lines

    _require_dask()
    stems = output_stems(paths, args.plane)
    if args.shared_palette and args.scale is not None:
        raise UsageError("--scale is not available with --shared-palette; drop one of them")
    opts = _batch_opts(args.k, args.out, args.color_space, args.n_init, args.seed, args.scale, args.max_pixels,
                       args.disable, args.masks, args.force, cli=True, palette=args.palette, plane=args.plane)
    # A shared palette, and a palette given, label every file in memory: a TIFF too large for it fails alone.
    # So does --plane: a plane is read in memory (a TIFF stack is no region source).
    chunked = not (args.shared_palette or args.palette is not None or args.plane is not None)
    large = {i for i, p in enumerate(paths) if _large_tiff(p, args.max_pixels)} if chunked else set()
    small = [i for i in range(len(paths)) if i not in large]

    bar = _bar(True, "segment")
    results: list[dict[str, Any]] = [{} for _ in paths]  # {} until the file is finished

    def report(i: int, entry: dict[str, Any]) -> None:
        # As the in-memory batch prints a file as it finishes: warnings (from the worker), then
        # the error or the file's line, each on a line of its own above the bar.
        results[i] = entry
        for category, message in entry.pop("warnings", ()):
            bar.line(f"kmseg: warning: {T.worker_warning(entry['input'], category, message)[1]}")
        show_done(entry, bar, args.json)

    try:
        with cluster_client(args.scheduler) as client:
            if small:
                _run_batch(client, [paths[i] for i in small], [stems[i] for i in small], opts,
                           args.shared_palette, bar, lambda j, entry: report(small[j], entry))
            for i in sorted(large):
                try:
                    with warnings_as_lines(f"{paths[i]}: ", bar):  # this process's: shown as the file's, at once
                        entry = _large_entry(paths[i], stems[i], args, client, bar)
                except (KmsegError, OSError) as exc:
                    entry = {"input": paths[i], "ok": False, "error": error_line(exc)}
                report(i, entry)
    except KeyboardInterrupt:
        _remove_temporaries(args.out, [stem for stem, r in zip(stems, results) if not r])
        finished = [r for r in results if r]
        for r in finished:
            r.pop("usage_error", None)
        raise interrupted(finished, len(paths), args) from None
    finally:
        bar.close()
    usage = [r for r in results if r.pop("usage_error", False)]
    if usage:
        raise UsageError(usage[0]["error"])
    return report_batch(results, args.json, printed=True)
