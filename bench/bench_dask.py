"""Benchmarks of kmseg.distributed: one gigapixel TIFF, and a batch of 1,000 photos.

    python bench/bench_dask.py gigapixel        # 32768 x 32768 8-bit RGB, tiled 1024 x 1024, K=8
    python bench/bench_dask.py batch            # 1,000 photos: 1 core in process vs LocalCluster(2 x 1)
    python bench/bench_dask.py all
    python bench/bench_dask.py gigapixel --size 8192 --verify   # smaller, and checked against memory

Gigapixel: the TIFF is generated tile by tile (a bundled photo, upscaled 4x, mirror-tiled over
the canvas, plus seeded noise in [-4, 4] per channel), so making it never holds more than a few
tiles; its writing is timed on its own. The job then runs on a fresh LocalCluster (one worker
process per core, one thread each, NUMBA_NUM_THREADS=1); the cluster start is timed apart from
``segment_large``. Memory is the resident set size (RSS) of the driver plus every process it
started (scheduler thread in the driver, nannies, workers), sampled every 50 ms and summed at each
instant; the peak of that sum is reported. ``--verify`` also runs ``kmseg.segment`` in memory on
the same file and checks that centres and labels are identical (only for sizes that fit).

Batch: 1,000 JPEGs (random crops, 40-100 % of each side, and flips of the bundled photos) are
written to /tmp. Single core: one process with NUMBA_NUM_THREADS=1 runs ``kmseg segment``'s own
per-file code (``kmseg.cli.run_one``) on every file in turn. Dask: ``segment_batch`` on a
LocalCluster of 2 worker processes with 1 thread each (NUMBA_NUM_THREADS=1 in the workers).
Both are warmed up first (numba's cache loaded); cluster start is excluded and reported. Target:
Dask throughput >= 0.8 x 2 x single-core throughput. CPU time per file (process_time of the
single process; of the workers plus the driver, which runs the scheduler, for Dask) is reported
too: unlike wall-clock throughput it does not depend on what else the machine is running.

Results are printed and saved to bench/out/dask-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


# --------------------------------------------------------------------------- measuring


class MemorySampler:
    """Peak of the summed RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.peak_parts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        parts = {}
        try:
            parts[f"driver {self.proc.pid}"] = self.proc.memory_info().rss
            for c in self.proc.children(recursive=True):
                try:
                    parts[f"{c.name()} {c.pid}"] = c.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            return
        total = sum(parts.values())
        if total > self.peak:
            self.peak = total
            self.peak_parts = parts

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _machine() -> dict:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average_before": os.getloadavg(),
    }


def _save(name: str, result: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"dask-{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def _local_cluster(n_workers: int):
    """kmseg's own LocalCluster (1 thread and NUMBA_NUM_THREADS=1 per worker process), and a client."""
    from distributed import Client

    from kmseg.distributed import local_cluster

    cluster = local_cluster(n_workers)
    client = Client(cluster, set_as_default=False)
    threads = client.run(lambda: __import__("numba").get_num_threads())
    assert set(threads.values()) == {1}, threads
    return cluster, client


# --------------------------------------------------------------------------- gigapixel


def _source_photo() -> np.ndarray:
    import cv2
    from PIL import Image

    from kmseg import data

    img = np.asarray(Image.open(data.path("coffee.png")).convert("RGB"))
    return cv2.resize(img, (img.shape[1] * 4, img.shape[0] * 4), interpolation=cv2.INTER_CUBIC)


def make_gigapixel(path: Path, size: int, tile: int, seed: int = 0) -> float:
    """Write a size x size RGB tiled TIFF tile by tile; returns the seconds it took."""
    import tifffile

    big = _source_photo()
    H, W = big.shape[:2]
    n = -(-size // tile)

    def mirror(i: np.ndarray, m: int) -> np.ndarray:
        i = i % (2 * m)
        return np.where(i >= m, 2 * m - 1 - i, i)

    def tiles():
        for ty in range(n):
            ys = mirror(np.arange(ty * tile, ty * tile + tile), H)
            rows = big[ys]
            for tx in range(n):
                xs = mirror(np.arange(tx * tile, tx * tile + tile), W)
                t = rows[:, xs].astype(np.int16)
                rng = np.random.default_rng([seed, ty, tx])
                t += rng.integers(-4, 5, size=t.shape, dtype=np.int16)
                yield np.clip(t, 0, 255).astype(np.uint8)

    t0 = time.perf_counter()
    tifffile.imwrite(path, tiles(), shape=(size, size, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                     bigtiff=size * size * 3 > 2**32 - 2**26)
    return time.perf_counter() - t0


def bench_gigapixel(args) -> dict:
    from kmseg import distributed as kd

    size, tile, k = args.size, args.tile, args.k
    work = OUT / "dask-gigapixel"
    work.mkdir(parents=True, exist_ok=True)
    need = size * size * 3 * 2.5
    free = shutil.disk_usage(work).free
    if free < need:
        sys.exit(f"bench_dask: {free / 2**30:.1f} GB free under {work}, need about {need / 2**30:.1f} GB")
    src = work / f"giga-{size}.tif"
    result: dict = {"name": "gigapixel", "size": size, "tile": tile, "k": k, "machine": _machine()}
    if not src.exists() or args.regenerate:
        print(f"writing {src} ({size} x {size} RGB, tiles {tile})...", flush=True)
        result["generate_s"] = round(make_gigapixel(src, size, tile), 2)
        print(f"  written in {result['generate_s']} s", flush=True)
    result["input_bytes"] = src.stat().st_size
    out = work / "out"
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        cluster, client = _local_cluster(args.workers)
        result["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        try:
            t0 = time.perf_counter()
            res = kd.segment_large(src, k, out, seed=0, force=True, client=client, progress=True)
            result["segment_s"] = round(time.perf_counter() - t0, 2)
        finally:
            client.close()
            cluster.close()
    result.update({
        "peak_rss_total_mb": round(mem.peak / 2**20),
        "peak_rss_parts_mb": {k_: round(v / 2**20) for k_, v in mem.peak_parts.items()},
        "phases_s": {k_: round(v, 2) for k_, v in res.timings.items()},
        "n_chunks": res.n_chunks,
        "n_colors": res.n_colors,
        "output_bytes": {kind: p.stat().st_size for kind, p in res.paths.items()},
        "n_iter": res.n_iter,
        "inertia": res.inertia,
        "counts": res.counts.tolist(),
        "centers": res.centers.round(3).tolist(),
    })
    if args.verify:
        import kmseg

        t0 = time.perf_counter()
        ref = kmseg.segment(src, k, seed=0, max_pixels=size * size)
        result["in_memory_s"] = round(time.perf_counter() - t0, 2)
        result["verify_centers_equal"] = bool(np.allclose(ref.centers, res.centers, rtol=0, atol=1e-9))
        result["verify_labels_equal"] = bool(np.array_equal(ref.labels, res.read_labels()))
        del ref
    if not args.keep:
        for p in res.paths.values():
            p.unlink(missing_ok=True)
    print(json.dumps(result, indent=2))
    print(f"saved {_save('gigapixel', result)}")
    return result


# --------------------------------------------------------------------------- batch


def make_batch(folder: Path, n: int, seed: int = 0) -> list[str]:
    from PIL import Image

    from kmseg import data

    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(data.path(name)).convert("RGB") for name in data.NAMES]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        im = photos[i % len(photos)]
        w = int(im.width * rng.uniform(0.4, 1.0))
        h = int(im.height * rng.uniform(0.4, 1.0))
        x = int(rng.integers(0, im.width - w + 1))
        y = int(rng.integers(0, im.height - h + 1))
        crop = im.crop((x, y, x + w, y + h))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng.random() < 0.3:
            crop = crop.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        p = folder / f"photo{i:04d}.jpg"
        if not p.exists():
            crop.save(p, quality=92)
        paths.append(str(p))
    return paths


_SINGLE = r"""
import argparse, json, sys, time
from kmseg.cli import run_one
paths = json.loads(sys.argv[1]); out = sys.argv[2]; warm = int(sys.argv[3])
args = argparse.Namespace(k=5, out=out, color_space="rgb", seed=0, n_init=10, scale=None, max_pixels=None,
                          disable=None, masks=False, force=True)
for p in paths[:warm]:
    run_one(p, "warm", args)
t0 = time.perf_counter()
c0 = time.process_time()
for p in paths:
    run_one(p, p.rsplit("/", 1)[-1].rsplit(".", 1)[0], args)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}))
"""


def _cpu(client) -> float:
    """CPU seconds used so far by the workers and by this process (scheduler and client)."""
    workers = client.run(lambda: time.process_time())
    return sum(workers.values()) + time.process_time()


def bench_batch(args) -> dict:
    from kmseg import distributed as kd

    folder = Path(args.batch_dir)
    paths = make_batch(folder, args.n)
    result: dict = {"name": "batch", "n": len(paths), "k": 5, "machine": _machine()}
    out1 = Path("/tmp/kmseg-bench-out-single")
    out2 = Path("/tmp/kmseg-bench-out-dask")
    for d in (out1, out2):
        shutil.rmtree(d, ignore_errors=True)
    # Single core, in process.
    single = paths[: args.single_n]
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _SINGLE, json.dumps(single), str(out1), "4"],
                          env=env, capture_output=True, text=True, check=True)
    single_run = json.loads(proc.stdout.strip().splitlines()[-1])
    t_single = single_run["seconds"]
    result["single_core"] = {"files": len(single), "seconds": round(t_single, 2),
                             "files_per_s": round(len(single) / t_single, 2),
                             "cpu_ms_per_file": round(1000 * single_run["cpu_seconds"] / len(single), 1)}
    # Dask: 2 workers x 1 thread.
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        cluster, client = _local_cluster(2)
        result["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        try:
            kd.segment_batch(paths[:8], 5, out2 / "warm", seed=0, force=True, client=client)  # warm up the workers
            cpu0 = _cpu(client)
            t0 = time.perf_counter()
            res = kd.segment_batch(paths, 5, out2, seed=0, force=True, client=client, progress=True)
            t_dask = time.perf_counter() - t0
            cpu_dask = _cpu(client) - cpu0
            t0 = time.perf_counter()
            shared = kd.segment_batch(paths, 5, out2 / "shared", seed=0, force=True, client=client,
                                      shared_palette=True, progress=True)
            t_shared = time.perf_counter() - t0
        finally:
            client.close()
            cluster.close()
    assert not res.failed and not shared.failed
    result["dask_2x1"] = {"files": len(paths), "seconds": round(t_dask, 2), "files_per_s": round(len(paths) / t_dask, 2),
                          "cpu_ms_per_file": round(1000 * cpu_dask / len(paths), 1)}
    result["dask_2x1_shared_palette"] = {"files": len(paths), "seconds": round(t_shared, 2),
                                         "files_per_s": round(len(paths) / t_shared, 2)}
    ratio = (len(paths) / t_dask) / (2 * len(single) / t_single)
    result["dask_vs_2x_single"] = round(ratio, 3)
    result["target_met"] = ratio >= 0.8
    result["peak_rss_total_mb"] = round(mem.peak / 2**20)
    if not args.keep:
        for d in (out1, out2):
            shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print(f"saved {_save('batch', result)}")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("gigapixel", "batch", "all"))
    p.add_argument("--size", type=int, default=32768, help="gigapixel: side in pixels (default 32768)")
    p.add_argument("--tile", type=int, default=1024, help="gigapixel: TIFF tile side (default 1024)")
    p.add_argument("--k", type=int, default=8, help="gigapixel: clusters (default 8)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gigapixel: worker processes")
    p.add_argument("--regenerate", action="store_true", help="gigapixel: write the TIFF even if it exists")
    p.add_argument("--verify", action="store_true", help="gigapixel: also run in memory and compare")
    p.add_argument("--n", type=int, default=1000, help="batch: number of photos (default 1000)")
    p.add_argument("--single-n", type=int, default=300, help="batch: photos timed on one core (default 300)")
    p.add_argument("--batch-dir", default="/tmp/kmseg-bench-batch", help="batch: where the photos are written")
    p.add_argument("--keep", action="store_true", help="keep the outputs")
    args = p.parse_args(argv)
    if args.what in ("gigapixel", "all"):
        bench_gigapixel(args)
    if args.what in ("batch", "all"):
        bench_batch(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
