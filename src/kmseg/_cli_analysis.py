"""Command-line verbs for choosing k and looking at the result: ``elbow``, ``edges``, ``palette``, ``report``.

:func:`register` only adds the verbs. The library (and matplotlib, for the figures) is
imported when a verb runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from .cli import Progress, UsageError, add_image_options, add_plane_option, parse_float, positive_int, segment_options

__all__ = ["register"]

_FIGURE_SUFFIXES = (".png", ".svg")
_REPORT_SUFFIXES = (".html", ".htm")
#: The palette files ``kmseg palette -o`` writes: kmseg.io.PALETTE_FORMATS (not imported here, to keep the parser lean).
_PALETTE_SUFFIXES = (".gpl", ".ase", ".css", ".json", ".png")


def _threshold(text: str) -> float:
    v = parse_float(text)
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range; a threshold is a number >= 0")
    return v


def _check_output(path: str, force: bool, suffixes: tuple[str, ...] | None, image: str) -> None:
    """Refuse a bad suffix, a path that cannot be a file or that is the input ``image`` (usage
    errors: inputs are never overwritten, even with --force), or an existing file (failed run),
    before any work."""
    from .errors import exists_already, listed
    from .io import same_file, through_a_file

    p = Path(path)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        what = f"unknown suffix {p.suffix!r}" if p.suffix else "no suffix"
        raise UsageError(f"-o {path}: {what}; use {listed(suffixes)}")
    if p.is_dir():
        raise UsageError(f"-o {path} is a directory; pass a file path")
    if same_file(p, image):
        raise UsageError(f"-o {path} is the input image; inputs are never overwritten: pass another path")
    problem = through_a_file(p)
    if problem is not None:
        raise UsageError(f"-o {problem}")
    if p.exists() and not force:
        raise exists_already(p)  # main() prints it as the command line words it


# --------------------------------------------------------------------------- elbow


def cmd_elbow(args: argparse.Namespace) -> int:
    from ._elbow import elbow

    if args.k_max - args.k_min < 2:
        raise UsageError(f"--k-min {args.k_min} --k-max {args.k_max} sweeps fewer than 3 ks; the knee needs at least 3")
    if args.out:
        _check_output(args.out, args.force, _FIGURE_SUFFIXES, args.image)
    ks = range(args.k_min, args.k_max + 1)
    bar = Progress(len(ks), "elbow")
    try:
        result = elbow(args.image, ks, silhouette=args.silhouette, progress=lambda k: bar.advance(note=f"k={k}"),
                       **segment_options(args))
    finally:
        bar.close()
    written = None
    if args.out:
        from . import plot

        plot.elbow(result, save=args.out, force=args.force)
        written = args.out
    if args.json:
        print(json.dumps({"input": args.image, **result.to_dict(), "plot": written}, indent=2))
        return 0
    sil = result.silhouettes
    print(f"{'k':>3}  {'inertia':>14}" + (f"  {'silhouette':>10}" if sil is not None else ""))
    for i, k in enumerate(result.ks.tolist()):
        line = f"{k:>3}  {result.inertias[i]:>14.6g}"
        if sil is not None:
            line += f"  {'-' if math.isnan(sil[i]) else format(sil[i], '.4f'):>10}"
        print(line + ("  <- knee" if k == result.knee else ""))
    print(f"knee: k={result.knee}" + (f" (best silhouette: k={result.best_silhouette})" if result.best_silhouette else ""))
    if written:
        print(f"wrote {written}")
    return 0


# --------------------------------------------------------------------------- edges


def cmd_edges(args: argparse.Namespace) -> int:
    from ._edges import edges
    from .io import save_image

    if args.low > args.high:
        raise UsageError(f"--low {args.low:g} is above --high {args.high:g}; pass --low <= --high")
    _check_output(args.out, args.force, None, args.image)
    e = edges(args.image, args.low, args.high, max_pixels=args.max_pixels, plane=args.plane)
    path = save_image(args.out, e, force=args.force)
    print(f"{args.image}: {int(e.sum())} edge pixels ({100 * e.mean():.1f}%) -> {path}")
    return 0


# --------------------------------------------------------------------------- palette


def cmd_palette(args: argparse.Namespace) -> int:
    from .io import write_palette
    from .segment import segment

    if args.out:
        _check_output(args.out, args.force, _PALETTE_SUFFIXES, args.image)
    seg = segment(args.image, args.k, **segment_options(args))
    pal = seg.palette()
    written = str(write_palette(args.out, seg, force=args.force)) if args.out else None
    if args.json:
        print(json.dumps({"input": args.image, "k": seg.k, "inertia": seg.inertia, "n_iter": seg.n_iter,
                          "palette": pal, "output": written}, indent=2))
        return 0
    for p in pal:
        r, g, b = p["rgb"]
        print(f"{p['index']:>3}  {p['hex']}  rgb({r:>3}, {g:>3}, {b:>3})  {100 * p['fraction']:5.1f}%")
    if written:
        print(f"wrote {written}")
    return 0


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from .report import n_steps, write_report

    if args.k_max < 3:
        raise UsageError(f"--k-max {args.k_max} sweeps fewer than 3 ks; the knee needs at least 3")
    if args.low > args.high:
        raise UsageError(f"--low {args.low:g} is above --high {args.high:g}; pass --low <= --high")
    _check_output(args.out, args.force, _REPORT_SUFFIXES, args.image)
    ks = range(1, args.k_max + 1)
    bar = Progress(n_steps(ks), "report")
    try:
        path = write_report(args.image, args.out, k=args.k, force=args.force, ks=ks,
                            canny=(args.low, args.high), progress=lambda d, t, note: bar.advance(note=note),
                            **segment_options(args))
    finally:
        bar.close()
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- registration


def register(sub: Any) -> None:
    """Add the ``elbow``, ``edges``, ``palette`` and ``report`` verbs to ``kmseg``'s subparsers."""
    p = sub.add_parser(
        "elbow",
        help="inertia for k = 1..K-MAX and the suggested k (the knee)",
        description="Segment IMAGE for every k from --k-min to --k-max and print the inertia of each, the knee "
        "(Kneedle on the log-inertia curve) and optionally silhouette scores. Inertia never rises with k.",
    )
    p.add_argument("image", metavar="IMAGE", help="image file")
    p.add_argument("--k-min", type=positive_int, default=1, help="smallest k (default 1)")
    p.add_argument("--k-max", type=positive_int, default=10, help="largest k (default 10)")
    p.add_argument("--silhouette", action="store_true", help="also compute silhouette scores on a 2000-pixel sample")
    p.add_argument("-o", "--out", metavar="PLOT", default=None, help="also write the elbow plot (.png or .svg)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    p.add_argument("--force", action="store_true", help="overwrite the plot if it exists")
    add_image_options(p)
    p.set_defaults(func=cmd_elbow)

    p = sub.add_parser(
        "edges",
        help="Canny edges of an image, as a black and white PNG",
        description="Write the Canny edges of IMAGE (OpenCV, on its 8-bit grey version) as an image: 255 on edges.",
    )
    p.add_argument("image", metavar="IMAGE", help="image file")
    p.add_argument("--low", type=_threshold, default=100.0, help="lower hysteresis threshold (default 100)")
    p.add_argument("--high", type=_threshold, default=200.0, help="upper hysteresis threshold (default 200)")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="output image (.png, .tif, ...)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument("--max-pixels", type=positive_int, default=None, help="decompression-bomb limit in pixels")
    add_plane_option(p)
    p.set_defaults(func=cmd_edges)

    p = sub.add_parser(
        "palette",
        help="the k colours of an image, largest share first",
        description="Segment IMAGE into K colours and print one line per colour, largest share first: "
        "cluster index, hex, rgb and percentage of pixels. With -o, also write the palette as a file for "
        "designers' tools, in the format its suffix names: .gpl (GIMP palette: GIMP, Inkscape, Krita), .ase "
        "(Adobe Swatch Exchange), .css (custom properties --kmseg-0, --kmseg-1..., largest share first), .json "
        "(as kmseg segment writes NAME-palette.json) or .png (a swatch strip, one equal band per colour).",
    )
    p.add_argument("image", metavar="IMAGE", help="image file")
    p.add_argument("-k", "--k", type=positive_int, required=True, help="number of colours")
    p.add_argument("-o", "--out", metavar="FILE", default=None,
                   help="also write the palette to FILE: .gpl, .ase, .css, .json or .png")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument("--json", action="store_true", help="print the palette as JSON (same order)")
    add_image_options(p)
    p.set_defaults(func=cmd_palette)

    p = sub.add_parser(
        "report",
        help="one self-contained HTML page: elbow, segmentation, figures, palette, timings",
        description="Write a single HTML file about IMAGE with every figure embedded (no external links): "
        "the elbow sweep and its knee, the segmentation, k = 3, 5, 7 side by side, a 3-D colour scatter, "
        "the colour histogram, the palette, masks, Canny edges, parameters and timings.",
    )
    p.add_argument("image", metavar="IMAGE", help="image file")
    p.add_argument("-k", "--k", type=positive_int, default=None, help="number of clusters (default: the elbow's knee)")
    p.add_argument("--k-max", type=positive_int, default=10, help="largest k of the elbow sweep (default 10)")
    p.add_argument("--low", type=_threshold, default=100.0, help="Canny lower threshold (default 100)")
    p.add_argument("--high", type=_threshold, default=200.0, help="Canny upper threshold (default 200)")
    p.add_argument("-o", "--out", required=True, metavar="HTML", help="the report to write (.html or .htm)")
    p.add_argument("--force", action="store_true", help="overwrite HTML if it exists")
    add_image_options(p)
    p.set_defaults(func=cmd_report)
