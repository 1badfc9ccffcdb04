"""Markdown from the raw numbers (the JSON the harness writes), so a saved run can be re-rendered."""

from __future__ import annotations

from typing import Any

from .methods import LABELS

MB = 1 << 20
REL_TOL = 1e-6  # inertias equal to this relative precision count as equal ("no higher")


# --------------------------------------------------------------------------- formatting


def ftime(s: float | None) -> str:
    if s is None:
        return "—"
    if s >= 100:
        return f"{s:.0f} s"
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s:.3f} s"


def fratio(r: float | None) -> str:
    if r is None:
        return "—"
    if r >= 10:
        return f"{r:,.0f}×"
    if r >= 1:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def fmb(b: float | None) -> str:
    return "—" if b is None else f"{b / MB:,.0f} MB"


def finertia(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.2f}" if v < 1e5 else f"{v:,.0f}"


def label(method: str) -> str:
    return LABELS.get(method, method)


# --------------------------------------------------------------------------- aggregation


def is_kmseg(method: str) -> bool:
    return method.startswith("kmseg")


def aggregate(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method, over the case's images: summed times and inertias, max peak memory."""
    agg: dict[str, dict[str, Any]] = {}
    for img in case["images"]:
        for m, rec in img["methods"].items():
            a = agg.setdefault(m, {"method": m, "time": 0.0, "runs": None, "slow": False, "peak": 0, "inertia": 0.0,
                                   "n_px": 0, "error": None, "first": 0.0, "timeout": False})
            if "error" in rec:
                a["error"] = rec["error"]
                continue
            if rec.get("timeout"):
                a["timeout"] = True
                a["time"] += rec["median"]
                a["runs"] = 1
                a["inertia"] = None
                continue
            a["time"] += rec["median"]
            a["first"] += rec.get("first_seconds", 0.0)
            a["runs"] = rec["runs"] if a["runs"] is None else min(a["runs"], rec["runs"])
            a["slow"] |= bool(rec.get("single_slow_run"))
            a["peak"] = max(a["peak"], rec["peak_bytes"])
            if a["inertia"] is not None:
                a["inertia"] += rec["inertia"]
            a["n_px"] += img["n_pixels"]
    ref = next((a for m, a in agg.items() if is_kmseg(m) and not a["error"] and not a["timeout"]), None)
    for a in agg.values():
        ok = not a["error"] and a["n_px"] and a["inertia"] is not None
        a["inertia_per_px"] = a["inertia"] / a["n_px"] if ok else None
        a["time_ratio"] = a["time"] / ref["time"] if not a["error"] and ref and ref["time"] > 0 else None
        a["inertia_ratio"] = a["inertia"] / ref["inertia"] if ok and ref and ref["inertia"] > 0 else None
    return agg


def case_cell(case: dict[str, Any]) -> str:
    imgs = case["images"]
    if len(imgs) == 1:
        i = imgs[0]
        h, w = i["shape"][:2]
        return f"**{case['title']}**<br>{w}×{h} {i['dtype']}, {i['unique_colours']:,} colours"
    mps = [i["n_pixels"] / 1e6 for i in imgs]
    return f"**{case['title']}**<br>{len(imgs)} photos, {min(mps):.2f}-{max(mps):.2f} MP; times and inertias summed"


def case_by_key(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((c for c in data["cases"] if c["key"] == key), None)


# --------------------------------------------------------------------------- the tables


def results_table(data: dict[str, Any]) -> list[str]:
    lines = [
        "| case | method | time | runs | peak memory | inertia / pixel | time vs kmseg | inertia vs kmseg |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for case in data["cases"]:
        agg = aggregate(case)
        first = True
        for m, a in agg.items():
            cell = case_cell(case) if first else ""
            first = False
            name = f"**{label(m)}**" if is_kmseg(m) else label(m)
            if a["error"]:
                lines.append(f"| {cell} | {name} | error: {a['error'][:80]} | | | | | |")
                continue
            if a["timeout"]:
                lines.append(f"| {cell} | {name} | > {ftime(a['time'])} (stopped) | 1 | — | — | > {fratio(a['time_ratio'])} | — |")
                continue
            runs = f"{a['runs']}*" if a["slow"] else str(a["runs"])
            tr = "1× (ref)" if is_kmseg(m) else fratio(a["time_ratio"])
            ir = "1 (ref)" if is_kmseg(m) else ("—" if a["inertia_ratio"] is None else f"{a['inertia_ratio']:.4f}")
            inertia = finertia(a["inertia_per_px"])
            if case.get("ks"):
                inertia = f"{inertia} (Σ over K)"
            lines.append(f"| {cell} | {name} | {ftime(a['time'])} | {runs} | {fmb(a['peak'])} | {inertia} | {tr} | {ir} |")
    return lines


def skipped_lines(data: dict[str, Any]) -> list[str]:
    out = []
    for case in data["cases"]:
        for m, why in (case.get("skipped") or {}).items():
            out.append(f"- Not run: {label(m)} on *{case['title']}*: {why}.")
    return out


def fir(a: dict[str, Any]) -> str:
    return "—" if a.get("inertia_ratio") is None else f"{a['inertia_ratio']:.4f}"


def _ok(cond: bool | None) -> str:
    return "not run" if cond is None else ("**PASS**" if cond else "**MISS**")


def targets(data: dict[str, Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []

    def get(key: str) -> dict[str, dict[str, Any]] | None:
        c = case_by_key(data, key)
        return aggregate(c) if c else None

    def usable(agg: dict | None, *ms: str) -> bool:
        """Every method ran; a peer stopped at the time limit counts, its ratio being a lower bound."""
        return agg is not None and all(
            m in agg and not agg[m]["error"] and (not agg[m]["timeout"] or not is_kmseg(m)) for m in ms
        )

    def tr(agg: dict[str, Any], m: str) -> str:
        return ("> " if agg[m]["timeout"] else "") + fratio(agg[m]["time_ratio"])

    def le(a: float, b: float) -> bool:
        return a <= b * (1 + REL_TOL)

    a = get("12mp-k8")
    if usable(a, "kmseg", "sklearn"):
        peers = {m: x for m, x in a.items() if not is_kmseg(m) and not x["error"] and x["inertia"] is not None}
        best_m = min(peers, key=lambda m: peers[m]["inertia"])
        r = a["sklearn"]["time_ratio"]
        ok_i = le(a["kmseg"]["inertia"], peers[best_m]["inertia"])
        rows.append({"target": "12 MP, K=8, defaults vs scikit-learn KMeans(n_init=1)",
                     "need": "≥ 50× faster; inertia ≤ lowest of all peers",
                     "measured": f"{tr(a, 'sklearn')}; kmseg {finertia(a['kmseg']['inertia_per_px'])}/px vs best peer "
                                 f"({label(best_m)}) {finertia(peers[best_m]['inertia_per_px'])}/px",
                     "result": _ok(r >= 50 and ok_i)})
    else:
        rows.append({"target": "12 MP, K=8 vs scikit-learn", "need": "≥ 50×, inertia ≤ all peers", "measured": "—", "result": _ok(None)})
    if usable(a, "kmseg", "cv2-tutorial"):
        r = a["cv2-tutorial"]["time_ratio"]
        ok_i = a["cv2-tutorial"]["inertia"] is not None and le(a["kmseg"]["inertia"], a["cv2-tutorial"]["inertia"])
        rows.append({"target": "12 MP, K=8 vs cv2.kmeans tutorial settings", "need": "≥ 1000× faster; inertia no higher",
                     "measured": f"{tr(a, 'cv2-tutorial')}; inertia ratio cv2/kmseg {fir(a['cv2-tutorial'])}",
                     "result": _ok(r >= 1000 and ok_i)})
    else:
        rows.append({"target": "12 MP, K=8 vs cv2.kmeans tutorial", "need": "≥ 1000×, inertia no higher", "measured": "—", "result": _ok(None)})
    e = get("elbow")
    km_e = next((m for m in (e or {}) if is_kmseg(m)), None)
    if km_e and usable(e, km_e, "sklearn-loop"):
        r = e["sklearn-loop"]["time_ratio"]
        rows.append({"target": "elbow K=1..10 on 2 MP vs a loop of scikit-learn KMeans", "need": "≥ 100× faster",
                     "measured": f"{tr(e, 'sklearn-loop')} ({ftime(e[km_e]['time'])} vs {ftime(e['sklearn-loop']['time'])})",
                     "result": _ok(r >= 100)})
    else:
        rows.append({"target": "elbow K=1..10 on 2 MP", "need": "≥ 100×", "measured": "—", "result": _ok(None)})
    b = get("2mp-k64")
    if usable(b, "kmseg", "sklearn", "pillow"):
        r = b["sklearn"]["time_ratio"]
        rp = b["pillow"]["time_ratio"]
        gain = 1 - b["kmseg"]["inertia"] / b["pillow"]["inertia"]
        rows.append({"target": "K=64 on 2 MP vs scikit-learn and Pillow median cut",
                     "need": "≥ 50× faster than scikit-learn; no slower than Pillow; ≥ 10% lower inertia than Pillow",
                     "measured": f"{tr(b, 'sklearn')} vs scikit-learn; Pillow/kmseg time {fratio(rp)}; kmseg inertia {gain:.1%} "
                                 "below Pillow's",
                     "result": _ok(r >= 50 and rp >= 1 and gain >= 0.10)})
    else:
        rows.append({"target": "K=64 on 2 MP", "need": "≥ 50× sklearn, ≤ Pillow time, ≥ 10% lower inertia", "measured": "—", "result": _ok(None)})
    d = get("distinct")
    if usable(d, "kmseg", "sklearn"):
        r = d["sklearn"]["time_ratio"]
        ok_i = d["sklearn"]["inertia"] is not None and le(d["kmseg"]["inertia"], d["sklearn"]["inertia"])
        rows.append({"target": "12 MP all-distinct colours, K=8 vs scikit-learn", "need": "≥ 5× faster; inertia no higher",
                     "measured": f"{tr(d, 'sklearn')}; inertia ratio sklearn/kmseg {fir(d['sklearn'])}",
                     "result": _ok(r >= 5 and ok_i)})
    else:
        rows.append({"target": "12 MP all-distinct", "need": "≥ 5×, inertia no higher", "measured": "—", "result": _ok(None)})
    s = get("16bit")
    if usable(s, "kmseg", "sklearn"):
        r = s["sklearn"]["time_ratio"]
        rows.append({"target": "12 MP 16-bit, K=8 vs scikit-learn", "need": "≥ 10× faster",
                     "measured": f"{tr(s, 'sklearn')} (inertia ratio sklearn/kmseg {fir(s['sklearn'])})",
                     "result": _ok(r >= 10)})
    else:
        rows.append({"target": "12 MP 16-bit", "need": "≥ 10×", "measured": "—", "result": _ok(None)})
    big = case_by_key(data, "48mp")
    g = get("48mp")
    if usable(g, "kmseg") and usable(a, "kmseg"):
        ratio = g["kmseg"]["time"] / a["kmseg"]["time"]
        inp = big["images"][0]["input_bytes"]
        total = inp + g["kmseg"]["peak"]
        limit = 3 * inp + 300 * MB
        rows.append({"target": "48 MP, K=8: time and memory", "need": "time ≤ 2.5× the 12 MP time; input + peak ≤ 3× input + 300 MB",
                     "measured": f"{ratio:.2f}× the 12 MP time; {fmb(inp)} input + {fmb(g['kmseg']['peak'])} peak = "
                                 f"{fmb(total)} (limit {fmb(limit)})",
                     "result": _ok(ratio <= 2.5 and total <= limit)})
    else:
        rows.append({"target": "48 MP, K=8", "need": "≤ 2.5× 12 MP time; ≤ 3× input + 300 MB", "measured": "—", "result": _ok(None)})
    cli = data.get("cli")
    if cli and "warm_median" in cli:
        rows.append({"target": "CLI on a 2 MP PNG, warm", "need": "≤ 1.5 s",
                     "measured": f"{ftime(cli['warm_median'])} (cold {ftime(cli['cold_seconds'])})",
                     "result": _ok(cli["warm_median"] <= 1.5)})
    else:
        rows.append({"target": "CLI on a 2 MP PNG, warm", "need": "≤ 1.5 s",
                     "measured": "error" if cli else "—", "result": _ok(None)})
    return rows


def targets_table(data: dict[str, Any]) -> list[str]:
    lines = ["| target | needs | measured | result |", "|---|---|---|---|"]
    for r in targets(data):
        lines.append(f"| {r['target']} | {r['need']} | {r['measured']} | {r['result']} |")
    if data["meta"]["mode"] != "full":
        lines.append("")
        lines.append("*Quick run: the images are small, so these verdicts say nothing about the targets, which are for the full sizes.*")
    return lines


def cli_table(data: dict[str, Any]) -> list[str]:
    cli = data.get("cli")
    if not cli:
        return []
    if "error" in cli:
        return [f"CLI `{cli['command']}` failed: {cli['error'][:300]}"]
    return [
        f"Command: `{cli['command']}` on a {cli['image']} (subprocess, interpreter start-up included).",
        "",
        "| run | wall time |",
        "|---|--:|",
        f"| cold: the first run in this benchmark (a fresh process; numba loads its on-disk cache) | {ftime(cli['cold_seconds'])} |",
        f"| warm: median of the next {len(cli['warm_seconds'])} | {ftime(cli['warm_median'])} |",
    ]


def oddities(data: dict[str, Any]) -> list[str]:
    """Things about kmseg's results a reader should know; found automatically."""
    notes = []
    for case in data["cases"]:
        for img in case["images"]:
            where = f"{case['title']}" + (f", {img['label']}" if len(case["images"]) > 1 else "")
            vmax = 65535.0 if img["dtype"] == "uint16" else 255.0
            km = next((r for m, r in img["methods"].items() if is_kmseg(m)), None)
            if km is None or "error" in km or km.get("timeout"):
                if km is not None:
                    notes.append(f"{where}: kmseg " + (f"failed: {km['error']}" if "error" in km else "was stopped at the time limit"))
                continue
            if km.get("inertia_source") != "harness":
                notes.append(f"{where}: kmseg's inertias are its own ({km.get('inertia_source')}).")
            rep = km.get("reported_inertia")
            if isinstance(rep, (int, float)) and km["inertia"] > 0 and abs(rep - km["inertia"]) > 1e-6 * km["inertia"]:
                notes.append(f"{where}: kmseg reports inertia {rep:.6g}, but its centres give {km['inertia']:.6g} on all pixels "
                             f"({rep / km['inertia'] - 1:+.2e}).")
            if km.get("own_mismatch"):
                notes.append(f"{where}: {km['own_mismatch']:.3%} of kmseg's labels are not a nearest centre "
                             f"(own-label inertia {km['own_inertia'] / km['inertia'] - 1:+.2e} above nearest).")
            if km.get("fixed_point_dev", 0) > 1e-6 * vmax:
                notes.append(f"{where}: kmseg's centres are not the means of their pixels (max deviation "
                             f"{km['fixed_point_dev']:.3g} in pixel units), so it did not stop at a Lloyd fixed point.")
            if km.get("n_empty"):
                notes.append(f"{where}: {km['n_empty']} kmseg centre(s) are nearest to no pixel.")
            if km.get("info", {}).get("converged") is False:
                notes.append(f"{where}: kmseg says it did not converge (n_iter={km.get('n_iter')}).")
            for m, r in img["methods"].items():
                if is_kmseg(m) or "error" in r or r.get("timeout"):
                    continue
                if r["inertia"] < km["inertia"] * (1 - REL_TOL):
                    notes.append(f"{where}: {label(m)} has lower inertia than kmseg "
                                 f"({r['inertia_per_px']:.6g} vs {km['inertia_per_px']:.6g} per pixel, "
                                 f"kmseg {km['inertia'] / r['inertia'] - 1:+.3%}).")
    return notes


def others_load(data: dict[str, Any]) -> tuple[float | None, float | None]:
    """Mean and max share of the CPUs that other processes used during the timed runs (time-weighted)."""
    tot = used = 0.0
    worst = None
    for case in data["cases"]:
        for img in case["images"]:
            for r in img["methods"].values():
                for sec, share in zip(r.get("seconds", []), r.get("others_cpu_share", [])):
                    if share is None:
                        continue
                    tot += sec
                    used += sec * share
                    worst = share if worst is None else max(worst, share)
    return (used / tot if tot else None), worst


def header_lines(data: dict[str, Any]) -> list[str]:
    meta = data["meta"]
    mach = meta["machine"]
    v = mach["versions"]
    lines = [
        f"Run {meta['started']} ({meta['mode']} mode{', ' + format(meta['wall_seconds'] / 60, '.0f') + ' min' if 'wall_seconds' in meta else ''}) "
        f"on {mach['cpu']}, {mach['usable_cpus']} usable of {mach['logical_cpus']} logical CPUs, {mach['ram_gb']} GB RAM, "
        f"{mach['platform']}; Python {mach['python']}.",
        "",
        f"kmseg {v['kmseg']} (git {mach.get('git_commit')}"
        + (f", {mach['src_uncommitted_files']} uncommitted files under src/" if mach.get("src_uncommitted_files") else "")
        + f"), numpy {v['numpy']}, numba {v['numba']}, scikit-learn {v['scikit-learn']}, OpenCV {v['opencv']}, "
        f"faiss {v['faiss']}, Pillow {v['Pillow']}.",
    ]
    mean, worst = others_load(data)
    if mean is not None and mean > 0.10:
        lines += ["", f"**Warning: other processes used {mean:.0%} of the CPUs on average during the timed runs (up to "
                      f"{worst:.0%} during one run). Timings are unreliable, multi-threaded ones most; rerun on a quiet "
                      "machine.**"]
    return lines


def footnotes(data: dict[str, Any]) -> list[str]:
    meta = data["meta"]
    th = meta["machine"]["threads"]
    cold = data.get("kmseg_cold")
    lines = [
        f"- **time**: median wall time of {meta['repeats']} timed run(s), each from the same in-memory uint8/uint16 "
        "array to labels for every pixel plus the recoloured image (peers: reshape and float conversion, fit, "
        "labelling, `centres[labels]`). kmseg always gets one untimed warm-up run on the same array first (numba). "
        + (f"A peer also gets a warm-up run, unless its first run took over {meta['slow_seconds']:g} s: then that one run "
           "is reported and `runs` shows 1*. " if meta["slow_seconds"] > 0 else
           "Peers are timed on their first run (`runs` 1*), to keep this run short. ")
        + f"A run still going after {meta.get('limit_seconds') or 0:g} s is stopped and shown as a lower bound "
        "(only between Python steps; one long C call runs to its end). Elbow rows time the whole sweep.",
        f"- **peak memory**: {meta['memory_method']}.",
        "- **inertia / pixel**: computed by the harness for every method alike, kmseg included: each pixel goes to its "
        "nearest returned centre (float64, all pixels, chunked), squared distances summed in the input's own units "
        "(0-255 or 0-65535 per channel), divided by the number of pixels. Nobody's self-reported inertia is used.",
        "- **time vs kmseg** = method time / kmseg time: 57× means kmseg was 57 times faster. "
        "**inertia vs kmseg** = method inertia / kmseg inertia: above 1 means kmseg's clustering is tighter.",
        f"- Threads: all libraries use all cores (numba {th.get('numba')}, OpenCV {th.get('opencv')}, faiss OpenMP "
        f"{th.get('faiss_openmp')}, {', '.join(th.get('threadpoolctl', []))}); Pillow is single-threaded. "
        f"Load average at start {meta['loadavg_start'][0]:.2f}"
        + (f", at end {meta['loadavg_end'][0]:.2f}" if "loadavg_end" in meta else "")
        + (f"; other processes used {others_load(data)[0]:.0%} of the CPUs on average during the timed runs "
           "(from /proc/stat minus this process's CPU time)" if others_load(data)[0] is not None else "")
        + ".",
        *([f"- Memory warm-up: before each method's runs the harness wrote to {meta['prefault']['mb']:,} MB of fresh "
           f"memory and freed it (the first time took {meta['prefault']['seconds']:.1f} s). On this virtual machine "
           "fresh pages cost far more when memory has lately been given back to the host or broken up by other "
           "methods' allocations; the same 12 MP run took 0.09 s or 0.14-0.3 s depending on what ran before it. "
           "The warm-up gives every method the same memory state."] if meta.get("prefault") else []),
        f"- Images: made in the harness from the bundled `coffee.png`, resized with cv2.INTER_CUBIC, plus Gaussian "
        f"noise σ={meta['noise_sigma_8bit']:g} (σ={meta['noise_sigma_8bit'] * 257:g} for 16-bit, which is the photo × 257), "
        f"seed {meta['seed']}; the all-distinct image is W·H different 24-bit colours drawn without replacement.",
    ]
    if cold:
        lines.append(f"- kmseg's first call in a fresh process (numba loads its on-disk cache, or compiles): "
                     f"{ftime(cold['first_seconds'])} on {cold['image']} K={cold['k']}, against {ftime(cold['warm_median'])} warm; "
                     "warm calls are what the table times.")
    lines += skipped_lines(data)
    lines.append("- Settings:")
    used = []
    for case in data["cases"]:
        for img in case["images"]:
            used += [m for m in img["methods"] if m not in used]
    for m in used:
        lines.append(f"  - {label(m)}: `{meta['settings'].get(m, m)}`")
    return lines


def readme_markdown(data: dict[str, Any]) -> str:
    parts = header_lines(data) + ["", "#### Results", ""] + results_table(data) + [""] + footnotes(data)
    parts += ["", "#### Targets (from the issue; informative, not asserted by tests)", ""] + targets_table(data)
    cli = cli_table(data)
    if cli:
        parts += ["", "#### Command line", ""] + cli
    odd = oddities(data)
    parts += ["", "#### Notes on kmseg's results (found by the harness)", ""]
    parts += [f"- {n}" for n in odd] if odd else ["- None: kmseg's centres are a Lloyd fixed point everywhere, its labels "
                                                  "are nearest-centre, and no peer reached a lower inertia."]
    return "\n".join(parts) + "\n"


def details(data: dict[str, Any]) -> list[str]:
    lines = ["## Details", "",
             "Per image and method: all timed runs, CPU time / wall time (how many cores it kept busy), Lloyd iterations "
             "(as reported), the inertia of the method's own labels next to the nearest-centre inertia, the share of its "
             "labels that are not a nearest centre, and how far its centres are from the means of their pixels "
             "(0 at a Lloyd fixed point).", "",
             "| image | method | runs (s) | CPU/wall | others' CPU | iters | inertia/px | own labels /px | not nearest | max centre - mean | peak |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for case in data["cases"]:
        for img in case["images"]:
            h, w = img["shape"][:2]
            where = f"{case['key']}: {img['label']} {w}×{h}"
            for m, r in img["methods"].items():
                if "error" in r:
                    lines.append(f"| {where} | {label(m)} | error: {r['error'][:100]} | | | | | | | | |")
                    continue
                if r.get("timeout"):
                    lines.append(f"| {where} | {label(m)} | stopped after {r['median']:.0f} s | | | | | | | | |")
                    continue
                runs = ", ".join(f"{s:.3g}" for s in r["seconds"])
                par = r["cpu_seconds"] / r["median"] if r["median"] > 0 else 0
                it = r.get("n_iter")
                it = "—" if it is None else (",".join(map(str, it)) if isinstance(it, list) else str(it))
                own = finertia(r["own_inertia"] / img["n_pixels"]) if r.get("own_inertia") is not None else "—"
                mis = f"{r['own_mismatch']:.2%}" if r.get("own_mismatch") is not None else "—"
                dev = f"{r['fixed_point_dev']:.3g}" if r.get("fixed_point_dev") is not None else "—"
                sh = [x for x in r.get("others_cpu_share", []) if x is not None]
                oth = f"{max(sh):.0%}" if sh else "—"
                lines.append(f"| {where} | {label(m)} | {runs} | {par:.2f} | {oth} | {it} | {finertia(r['inertia_per_px'])} | "
                             f"{own} | {mis} | {dev} | {fmb(r['peak_bytes'])} |")
    e = case_by_key(data, "elbow")
    if e:
        img = e["images"][0]
        ms = [m for m, r in img["methods"].items() if "inertias" in r]
        if ms:
            lines += ["", "Elbow sweep, inertia per pixel for each K:", "",
                      "| K | " + " | ".join(label(m) for m in ms) + " | ratio |", "|--:|" + "--:|" * (len(ms) + 1)]
            for i, k in enumerate(e["ks"]):
                vals = [img["methods"][m]["inertias"][i] / img["n_pixels"] for m in ms]
                ratio = f"{vals[-1] / vals[0]:.4f}" if len(vals) == 2 and vals[0] > 0 else ""
                lines.append(f"| {k} | " + " | ".join(finertia(v) for v in vals) + f" | {ratio} |")
    meta = data["meta"]
    lines += ["", "Import times (s): " + ", ".join(f"{k} {v:.2f}" for k, v in meta["import_seconds"].items()),
              f"Arguments: `{' '.join(meta['argv']) or '(none)'}`; cases {', '.join(meta['cases_selected'])}."]
    return lines


def full_report(data: dict[str, Any]) -> str:
    return "# kmseg benchmark\n\n" + readme_markdown(data) + "\n" + "\n".join(details(data)) + "\n"
