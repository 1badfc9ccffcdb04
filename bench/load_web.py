"""Load test for `kmseg serve`: many concurrent clients uploading and re-segmenting images.

Not part of the test suite. Starts `kmseg serve` on a free loopback port (or uses --url),
runs N concurrent clients (asyncio + httpx), each doing what the page does:

    upload an image (POST /api/segment with the file), fetch the segmented PNG,
    then a few K changes (POST /api/segment with the upload_id) and their PNGs;
    every --elbow-every-th client also asks for the elbow curve.

Half of the clients upload one of the bundled photos (so uploads of the same bytes meet in
the cache), the other half a copy made unique by changing a few pixels (so it must be
decoded). A prober asks /api/health every 100 ms during the run: its latency shows whether
the event loop stays free while segmentations run.

The run is bounded by the number of clients and by --duration; it stops by itself and prints
the error count (must be 0) and the latency percentiles per endpoint. Exit code 1 on any error.

    python bench/load_web.py                      # 50 clients against a server it starts
    python bench/load_web.py --url http://127.0.0.1:8000/ --clients 20
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
import numpy as np
from PIL import Image

from kmseg import data, load_image


@dataclass
class Record:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)

    def error(self, what: str, detail: str) -> None:
        self.errors[what] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{what}: {detail[:200]}")


def images(n_clients: int, seed: int) -> list[tuple[str, bytes]]:
    """One upload per client: a bundled photo (even clients) or a unique variant of one (odd)."""
    rng = np.random.default_rng(seed)
    photos = [(name, data.path(name).read_bytes()) for name in data.NAMES]
    arrays = {name: load_image(data.path(name)) for name in data.NAMES}
    out = []
    for i in range(n_clients):
        name, content = photos[(i // 2) % len(photos)]
        if i % 2:
            arr = arrays[name].copy()
            ys = rng.integers(0, arr.shape[0], 8)
            xs = rng.integers(0, arr.shape[1], 8)
            arr[ys, xs, :3] = rng.integers(0, 256, (8, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
            name, content = f"variant{i}-{os.path.splitext(name)[0]}.png", buf.getvalue()
        out.append((name, content))
    return out


async def timed(rec: Record, client: httpx.AsyncClient, what: str, method: str, url: str, **kw) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        resp = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        rec.error(what, f"{type(exc).__name__}: {exc}")
        return None
    rec.latencies[what].append(time.perf_counter() - t0)
    if resp.status_code != 200:
        rec.error(what, f"HTTP {resp.status_code}: {resp.text}")
        return None
    return resp


async def one_client(i: int, base: str, upload: tuple[str, bytes], args: argparse.Namespace, rec: Record,
                     client: httpx.AsyncClient) -> None:
    rnd = random.Random(args.seed * 1000 + i)
    name, content = upload
    resp = await timed(rec, client, "segment (file)", "POST", base + "api/segment",
                       files={"file": (name, content, "image/png")}, data={"k": "5", "seed": "0"})
    if resp is None:
        return
    body = resp.json()
    await timed(rec, client, "segmented.png", "GET", base + body["urls"]["segmented"].lstrip("/"))
    if args.elbow_every and i % args.elbow_every == 0:
        await timed(rec, client, "elbow", "POST", base + "api/elbow",
                    data={"upload_id": body["upload_id"], "k_max": "10", "seed": "0"})
    for _ in range(args.changes):
        k = rnd.randint(2, 12)
        resp = await timed(rec, client, "segment (upload_id)", "POST", base + "api/segment",
                           data={"upload_id": body["upload_id"], "k": str(k), "seed": "0"})
        if resp is None:
            continue
        again = resp.json()
        if again["k"] != k or len(again["palette"]) != k:
            rec.error("segment (upload_id)", f"asked k={k}, got {again['k']}")
        await timed(rec, client, "segmented.png", "GET", base + again["urls"]["segmented"].lstrip("/"))


async def prober(base: str, rec: Record, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await timed(rec, client, "health (during load)", "GET", base + "api/health")
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass


async def run(base: str, args: argparse.Namespace) -> tuple[Record, float, dict]:
    rec = Record()
    uploads = images(args.clients, args.seed)
    limits = httpx.Limits(max_connections=args.clients + 5, max_keepalive_connections=args.clients + 5)
    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as client:
        stop = asyncio.Event()
        probe = asyncio.create_task(prober(base, rec, client, stop))
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(one_client(i, base, uploads[i], args, rec, client)) for i in range(args.clients)]
        done, pending = await asyncio.wait(tasks, timeout=args.duration)
        for task in pending:
            task.cancel()
            rec.error("deadline", f"client still running after --duration {args.duration} s")
        for task in done:
            if task.exception() is not None:
                rec.error("client", repr(task.exception()))
        wall = time.perf_counter() - t0
        stop.set()
        await probe
        stats = (await client.get(base + "api/stats")).json()
    return rec, wall, stats


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "kmseg", "serve", "--port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"serving (http://\S+/)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"load_web: the server did not start: {line.strip()}")
    return proc, match.group(1)


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000.0
    return {"n": len(values), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running server (default: start `kmseg serve` on a free loopback port)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--changes", type=int, default=2, help="K changes per client after the upload (default 2)")
    p.add_argument("--elbow-every", type=int, default=5, help="every Nth client asks for the elbow curve (0: none)")
    p.add_argument("--duration", type=float, default=180.0, help="stop after this many seconds (default 180)")
    p.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds (default 120)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)

    proc = None
    base = args.url
    if base is None:
        proc, base = start_server(args)
    if not base.endswith("/"):
        base += "/"
    try:
        httpx.get(base + "api/health", timeout=30).raise_for_status()
        rec, wall, stats = asyncio.run(run(base, args))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    n_errors = sum(rec.errors.values())
    figures = {
        "url": base, "clients": args.clients, "changes": args.changes, "wall_seconds": round(wall, 2),
        "requests": sum(len(v) for v in rec.latencies.values()), "errors": n_errors,
        "errors_by_endpoint": dict(rec.errors), "error_examples": rec.examples,
        "latency_ms": {k: percentiles(v) for k, v in sorted(rec.latencies.items())},
        "server": {k: stats[k] for k in ("decodes", "prepares", "segmentations", "elbows")},
        "upload_cache": stats["uploads"],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{args.clients} clients, {args.changes} K changes each, against {base}: "
              f"{figures['requests']} requests in {wall:.1f} s, {n_errors} errors")
        print(f"{'endpoint':<24}{'n':>6}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}")
        for what, q in figures["latency_ms"].items():
            print(f"{what:<24}{q['n']:>6}{q['p50']:>10.0f}{q['p90']:>10.0f}{q['p99']:>10.0f}{q['max']:>10.0f}")
        s, u = figures["server"], figures["upload_cache"]
        print(f"server: {s['decodes']} decodes, {s['prepares']} reductions, {s['segmentations']} segmentations, "
              f"{s['elbows']} elbow sweeps; upload cache {u['hits']} hits, {u['joins']} joins, {u['misses']} misses")
        for line in rec.examples:
            print("  error:", line)
    return 1 if n_errors else 0


if __name__ == "__main__":
    sys.exit(main())
