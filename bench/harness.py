"""Run kmseg and its peers in one process on the same arrays; print and save the tables.

    python -m bench                         # everything (20-40 min on 2 cores)
    python -m bench --quick                 # small sizes, a smoke run in under a minute
    python -m bench --cases photos,12mp-k8  # some cases (aliases: 12mp, 2mp, all)
    python -m bench --from-json bench/out/latest.json --markdown-only   # re-render a saved run

See bench/README.md for what the columns mean and how fairness is kept.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from . import cases as C
from . import measure as M
from . import methods as MT
from . import report as R

OUT_DIR = Path(__file__).resolve().parent / "out"
REPO = Path(__file__).resolve().parent.parent


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _git(*args: str) -> str | None:
    try:  # read-only queries; GIT_OPTIONAL_LOCKS=0 keeps `git status` from refreshing the index
        r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10,
                           env=dict(os.environ, GIT_OPTIONAL_LOCKS="0"))
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    import cv2
    import faiss
    import numba
    import PIL
    import sklearn
    import threadpoolctl

    import kmseg

    dirty = _git("status", "--porcelain", "--untracked-files=all", "--", "src")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "ram_gb": round(_ram_bytes() / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "kmseg": getattr(kmseg, "__version__", "?"),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "scikit-learn": sklearn.__version__,
            "opencv": cv2.__version__,
            "faiss": getattr(faiss, "__version__", "?"),
            "Pillow": PIL.__version__,
        },
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "src_uncommitted_files": len(dirty.splitlines()) if dirty else 0,
        "threads": {
            "numba": numba.get_num_threads(),
            "opencv": cv2.getNumThreads(),
            "faiss_openmp": faiss.omp_get_max_threads(),
            "threadpoolctl": sorted({f"{d['internal_api']}={d['num_threads']}" for d in threadpoolctl.threadpool_info()}),
        },
    }


# --------------------------------------------------------------------------- running one method


def run_method(method: str, img: np.ndarray, arg: Any, repeats: int, slow: float, limit: float | None) -> dict[str, Any]:
    """Time ``method`` on ``img``; compute its inertia with the harness's own function.

    kmseg: one untimed warm-up run (it may compile: numba's cache is filled on a path's first
    use), then ``repeats`` timed runs (1 if the first of them takes more than ``slow`` seconds
    too). Peers: the first run is a warm-up too, unless it took more than ``slow``
    seconds; then it is the one reported run. A run still going after ``limit`` seconds is
    stopped (at the next Python step) and reported as a lower bound.
    """
    fn = MT.METHODS[method]
    rec: dict[str, Any] = {"method": method, "settings": MT.settings(method), "loadavg_before": os.getloadavg()[0]}
    is_kmseg = method.startswith("kmseg")
    try:
        first = M.timed(lambda: fn(img, arg), limit)
        rec["first_seconds"] = first.seconds
        log(f"    {method:13s} first run {first.seconds:9.3f} s  peak +{first.peak_bytes / M.MB:7.0f} MB")
        if first.seconds > slow and not is_kmseg:
            runs = [first]
        else:
            n = max(1, repeats)
            first.output = None
            runs = []
            for i in range(n):
                if runs:
                    runs[-1].output = None  # free the previous result before the next run
                runs.append(M.timed(lambda: fn(img, arg), limit))
                log(f"    {method:13s} run {i + 1}/{n}   {runs[-1].seconds:9.3f} s  peak +{runs[-1].peak_bytes / M.MB:7.0f} MB")
                if runs[0].seconds > slow:
                    break  # slow even when warm: one timed run
    except M.TimeLimit as stop:
        rec.update(timeout=True, seconds=[stop.seconds], median=stop.seconds, runs=1, single_slow_run=True,
                   first_seconds=rec.get("first_seconds", stop.seconds))
        log(f"    {method:13s} STOPPED after {stop.seconds:.0f} s (limit {limit:g} s)")
        M._release_memory()
        return rec
    except Exception as exc:  # a failing method is reported, not fatal
        rec["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        rec["traceback"] = traceback.format_exc()[-3000:]
        log(f"    {method:13s} ERROR {rec['error']}")
        return rec
    out: MT.Output = runs[-1].output
    rec.update(
        seconds=[r.seconds for r in runs],
        median=statistics.median(r.seconds for r in runs),
        runs=len(runs),
        single_slow_run=len(runs) == 1 and not is_kmseg and rec["first_seconds"] > slow,
        cpu_seconds=statistics.median(r.cpu_seconds for r in runs),
        others_cpu_share=[r.others_cpu_share for r in runs],
        peak_bytes=max(r.peak_bytes for r in runs),
        n_iter=out.n_iter,
        reported_inertia=out.reported_inertia,
        info=out.info,
    )
    n_px = img.shape[0] * img.shape[1]
    t0 = time.perf_counter()
    if isinstance(out.centers, list) or out.centers is None:  # the elbow sweep
        if out.centers is None:
            rec["inertias"] = list(out.reported_inertia)
            rec["inertia_source"] = "reported by kmseg (its result has no centres to recompute from)"
        else:
            rec["inertias"] = [M.quality(img, c).inertia for c in out.centers]
            rec["inertia_source"] = "harness"
        rec["inertia"] = float(sum(rec["inertias"]))
    else:
        q = M.quality(img, out.centers, out.labels)
        rec.update(
            inertia=q.inertia, own_inertia=q.own_inertia, own_mismatch=q.own_mismatch,
            fixed_point_dev=q.fixed_point_dev, n_empty=q.n_empty, k_returned=int(np.asarray(out.centers).shape[0]),
            inertia_source="harness",
        )
    rec["inertia_per_px"] = rec["inertia"] / n_px
    log(f"    {method:13s} median {rec['median']:9.3f} s over {rec['runs']}; inertia/px {rec['inertia_per_px']:.6g} "
        f"(checked in {time.perf_counter() - t0:.1f} s)")
    del out, runs
    M._release_memory()
    return rec


def run_case(case: C.Case, mode: str, repeats: int, slow: float, limit: float | None,
             prefault_mb: int = 0) -> dict[str, Any]:
    log(f"== {case.key}: {case.title}")
    res: dict[str, Any] = {"key": case.key, "title": case.title, "k": case.k, "ks": list(case.ks) if case.ks else None,
                           "skipped": case.skipped, "images": []}
    t0 = time.perf_counter()
    for label, img in case.images(mode):
        entry: dict[str, Any] = {
            "label": label, "shape": list(img.shape), "dtype": str(img.dtype), "n_pixels": int(img.shape[0] * img.shape[1]),
            "input_bytes": int(img.nbytes), "unique_colours": C.unique_colours(img), "methods": {},
        }
        log(f"  {label}: {img.shape[1]}x{img.shape[0]}x{img.shape[2]} {img.dtype}, {entry['unique_colours']:,} distinct colours")
        arg = case.ks if case.ks else case.k
        for m in case.methods:
            if prefault_mb > 0:
                prefault(prefault_mb)  # every method starts from the same memory state
            if m == "kmseg-elbow" and MT.elbow_function() is None:
                rec = run_method("kmseg-elbow", img, arg, repeats, slow, limit)
                rec["method"] = "kmseg-elbow-loop"
                rec["settings"] = MT.settings("kmseg-elbow-loop")
            else:
                rec = run_method(m, img, arg, repeats, slow, limit)
            entry["methods"][rec["method"]] = rec
        res["images"].append(entry)
    res["wall_seconds"] = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------- kmseg cold start, CLI


def kmseg_cold(n_warm: int) -> dict[str, Any]:
    """The first kmseg.segment call in this process (numba loads its cache, or compiles) vs later calls."""
    img = C.photo(C.BASE_PHOTO)
    first = M.timed(lambda: MT.kmseg_segment(img, 8))
    warm = [M.timed(lambda: MT.kmseg_segment(img, 8)).seconds for _ in range(n_warm)]
    log(f"  kmseg first call {first.seconds:.3f} s, warm median {statistics.median(warm):.3f} s ({C.BASE_PHOTO}, K=8)")
    return {"image": C.BASE_PHOTO, "k": 8, "first_seconds": first.seconds, "warm_seconds": warm,
            "warm_median": statistics.median(warm)}


def warm_up_peers() -> dict[str, float]:
    """Run every peer once on a small crop, untimed, so no case pays a library's one-time start-up."""
    img = np.ascontiguousarray(C.photo(C.BASE_PHOTO)[:96, :128])
    spent = {}
    for m in ("sklearn", "minibatch", "cv2-pp", "faiss", "faiss-all", "pillow"):
        t0 = time.perf_counter()
        MT.METHODS[m](img, 4)
        spent[m] = time.perf_counter() - t0
    return spent


def run_cli(mode: str) -> dict[str, Any]:
    img = C.upscaled(C.SIZES[mode]["2mp"])
    exe = Path(sys.executable).with_name("kmseg")
    base_cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kmseg"]
    n_warm = 5 if mode == "full" else 2
    with tempfile.TemporaryDirectory(prefix="kmseg-bench-") as tmp:
        png = Path(tmp) / "photo2mp.png"
        from PIL import Image

        Image.fromarray(img).save(png)
        outdir = Path(tmp) / "out"
        cmd = base_cmd + ["segment", str(png), "-k", "8", "-o", str(outdir), "--force"]
        shown = " ".join(["kmseg" if exe.exists() else "python -m kmseg", "segment", "IMG.png", "-k", "8", "-o", "TMPDIR", "--force"])
        times = []
        for i in range(1 + n_warm):
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                return {"command": shown, "error": (r.stderr or r.stdout).strip()[-500:]}
            times.append(dt)
            log(f"  cli run {i + 1}: {dt:.3f} s")
    return {"command": shown, "image": f"{img.shape[1]}x{img.shape[0]} PNG", "cold_seconds": times[0],
            "warm_seconds": times[1:], "warm_median": statistics.median(times[1:])}


# --------------------------------------------------------------------------- main


def _save(data: dict[str, Any], out_dir: Path, stamp: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / f"bench-{stamp}.json"
    md = out_dir / f"bench-{stamp}.md"
    js.write_text(json.dumps(data, indent=1, default=_json_default))
    md.write_text(R.full_report(data))
    shutil.copyfile(js, out_dir / "latest.json")
    shutil.copyfile(md, out_dir / "latest.md")
    return js, md


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="kmseg vs scikit-learn, OpenCV, faiss and Pillow")
    p.add_argument("--cases", default="all",
                   help=f"comma-separated: {', '.join(C.KEYS)}; aliases 12mp, 2mp, all (default all)")
    p.add_argument("--quick", action="store_true", help="small sizes, one timed run: a smoke run in under a minute")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per method, median reported (default 5; --quick 1)")
    p.add_argument("--slow", type=float, default=None,
                   help="a peer whose first run takes longer is timed once (that run); default 5 s (--quick: 0, "
                        "so every peer is timed on its first run)")
    p.add_argument("--limit", type=float, default=None,
                   help="stop a run after this many seconds and report it as a lower bound (default 600; --quick 60)")
    p.add_argument("--all-peers", action="store_true", help="also run the peers left out of some cases to save time")
    p.add_argument("--sklearn-dtype", choices=("float64", "float32"), default="float64",
                   help="pixel dtype given to scikit-learn (default float64, what it converts integer input to)")
    p.add_argument("--prefault-mb", type=int, default=None,
                   help="before each method's runs, write to this much fresh memory and free it (default 1024; --quick 0)")
    p.add_argument("--markdown-only", action="store_true", help="print only the markdown that goes into the README")
    p.add_argument("--from-json", metavar="PATH", help="render a saved run instead of running")
    p.add_argument("--out", default=str(OUT_DIR), help="directory for the JSON and markdown (default bench/out)")
    p.add_argument("--no-save", action="store_true", help="do not write anything to --out")
    return p.parse_args(argv)


def prefault(mb: int) -> float:
    """Write to ``mb`` MB of fresh memory once and free it; returns the seconds it took.

    On this virtual machine fresh pages cost several times more after memory has been given
    back to the host or broken up by other allocations. Run before each method, it gives every
    method the same memory state; without it the cost lands on whichever method runs first
    after such a change (kmseg runs first in every case).
    """
    t0 = time.perf_counter()
    step = 256 << 20
    blocks = [np.ones(step, dtype=np.uint8) for _ in range(max(0, mb) // 256)]
    del blocks
    gc.collect()
    if M._malloc_trim is not None:
        M._malloc_trim(0)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        print(R.readme_markdown(data) if args.markdown_only else R.full_report(data))
        return 0
    selected = C.select(args.cases)
    mode = "quick" if args.quick else "full"
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    slow = args.slow if args.slow is not None else (0.0 if args.quick else 5.0)
    limit = args.limit if args.limit is not None else (60.0 if args.quick else 600.0)
    MT.SKLEARN_DTYPE = np.dtype(args.sklearn_dtype).type

    t_start = time.perf_counter()
    started = _dt.datetime.now().astimezone()
    stamp = started.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    imports = {}
    for mod in ("kmseg", "sklearn.cluster", "cv2", "faiss", "PIL.Image"):
        t0 = time.perf_counter()
        __import__(mod)
        imports[mod] = time.perf_counter() - t0
    data: dict[str, Any] = {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "mode": mode,
            "argv": sys.argv[1:] if argv is None else argv,
            "cases_selected": selected,
            "repeats": repeats,
            "slow_seconds": slow,
            "limit_seconds": limit,
            "all_peers": args.all_peers,
            "sklearn_dtype": args.sklearn_dtype,
            "sizes": C.SIZES[mode],
            "noise_sigma_8bit": C.NOISE_SIGMA,
            "seed": C.SEED,
            "memory_method": M.MEMORY_METHOD,
            "loadavg_start": os.getloadavg(),
            "import_seconds": imports,
            "machine": machine_info(),
            "settings": {m: MT.settings(m) for m in MT.SETTINGS},
        },
        "cases": [],
    }
    log(f"kmseg benchmark, {mode} mode, cases: {', '.join(selected)}")
    prefault_mb = args.prefault_mb if args.prefault_mb is not None else (0 if args.quick else 1024)
    if prefault_mb > 0:
        secs = prefault(prefault_mb)
        log(f"  wrote {prefault_mb} MB of fresh memory in {secs:.1f} s; again before each method (see --prefault-mb)")
        data["meta"]["prefault"] = {"mb": prefault_mb, "seconds": secs}
    data["kmseg_cold"] = kmseg_cold(1 if args.quick else 3)
    data["meta"]["peer_warmup_seconds"] = warm_up_peers()
    save = not args.no_save
    out_dir = Path(args.out)
    all_cases = {c.key: c for c in C.cases(args.all_peers, args.quick)}
    for key in selected:
        if key == "cli":
            continue
        data["cases"].append(run_case(all_cases[key], mode, repeats, slow, limit, prefault_mb))
        if save:
            _save(data, out_dir, stamp)  # partial results survive an interrupted run
    if "cli" in selected:
        log("== cli")
        data["cli"] = run_cli(mode)
    try:
        import numba

        data["meta"]["machine"]["threads"]["numba_layer"] = numba.threading_layer()
    except Exception:  # no parallel numba function ran
        pass
    data["meta"]["loadavg_end"] = os.getloadavg()
    data["meta"]["finished"] = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    data["meta"]["wall_seconds"] = time.perf_counter() - t_start
    if save:
        js, md = _save(data, out_dir, stamp)
        log(f"wrote {js} and {md}")
    print(R.readme_markdown(data) if args.markdown_only else R.full_report(data))
    return 0
