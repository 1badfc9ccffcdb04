"""Benchmark cases: the arrays are made here, from the bundled photos, with a fixed seed.

Every method of a case runs on the very same array object. Nothing is read from disk while a
method is timed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

SEED = 0
NOISE_SIGMA = 2.0  # in 8-bit units; the 16-bit case uses 2 * 257
BASE_PHOTO = "coffee.png"

# (width, height) of the generated images, full run and --quick run
SIZES = {
    "full": {"2mp": (1730, 1150), "12mp": (4000, 3000), "48mp": (8000, 6000), "bands": (2000, 2000)},
    "quick": {"2mp": (240, 160), "12mp": (320, 240), "48mp": (640, 480), "bands": (240, 160)},
}

ALL_METHODS = ("kmseg", "sklearn", "minibatch", "cv2-tutorial", "cv2-pp", "faiss", "faiss-all", "pillow")
ELBOW_METHODS = ("kmseg-elbow", "sklearn-loop")
SLOW_CV2 = ("10 attempts x up to 100 iterations take minutes per 12 MP image (about 10x the 1-attempt run, more "
            "at larger K); run only on the photos and 12 MP K=8, where a target needs it (--all-peers runs it everywhere)")
SLOW_MINIBATCH = ("since scikit-learn 1.7 every minibatch is drawn with rng.choice(N, 1024, p=weights), O(N) per step, "
                  "so it takes over a minute on 12 MP; run only on the photos and 12 MP K=8 (--all-peers runs it everywhere)")
QUICK = "left out of --quick runs"


@dataclass
class Case:
    key: str
    title: str
    k: int
    images: Callable[[str], list[tuple[str, np.ndarray]]]  # size mode -> [(label, array)]
    methods: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it is not run
    ks: tuple[int, ...] | None = None  # the elbow sweep


# --------------------------------------------------------------------------- arrays

_cache: dict[tuple, np.ndarray] = {}


def photo(name: str) -> np.ndarray:
    import kmseg

    img = kmseg.load_image(kmseg.data.path(name))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """img + N(0, sigma), rounded and clipped to the dtype, row block by row block (bounded memory)."""
    vmax = np.iinfo(img.dtype).max
    out = np.empty_like(img)
    step = max(1, (1 << 21) // (img.shape[1] * img.shape[2]))
    for r in range(0, img.shape[0], step):
        blk = img[r : r + step].astype(np.float32)
        blk += rng.standard_normal(blk.shape, dtype=np.float32) * np.float32(sigma)
        np.rint(blk, out=blk)
        np.clip(blk, 0, vmax, out=blk)
        out[r : r + step] = blk
    return out


def upscaled(size: tuple[int, int], *, bits: int = 8) -> np.ndarray:
    """The base photo resized to ``size`` = (width, height) with bicubic interpolation, plus noise."""
    key = ("up", size, bits)
    if key not in _cache:
        import cv2

        base = photo(BASE_PHOTO)
        if bits == 16:
            base = base.astype(np.uint16) * np.uint16(257)
        up = cv2.resize(base, size, interpolation=cv2.INTER_CUBIC)  # saturates to the dtype
        sigma = NOISE_SIGMA * (257 if bits == 16 else 1)
        _cache[key] = _add_noise(up, sigma, np.random.default_rng([SEED, size[0], size[1], bits]))
    return _cache[key]


def distinct(size: tuple[int, int]) -> np.ndarray:
    """Every pixel a different colour: ``W*H`` distinct 24-bit codes drawn without replacement."""
    key = ("distinct", size)
    if key not in _cache:
        w, h = size
        n = w * h
        if n > 1 << 24:
            raise ValueError("an 8-bit RGB image cannot have more than 2^24 distinct colours")
        rng = np.random.default_rng([SEED, 24])
        codes = rng.permutation(1 << 24)[:n].astype(np.uint32)
        img = np.empty((h, w, 3), np.uint8)
        flat = img.reshape(-1, 3)
        flat[:, 0] = codes >> 16
        flat[:, 1] = (codes >> 8) & 255
        flat[:, 2] = codes & 255
        _cache[key] = img
    return _cache[key]


def bands(size: tuple[int, int], n: int = 8) -> np.ndarray:
    """The 16-bit photo-like image mixed into ``n`` correlated bands (fixed non-negative weights,
    each band a weighted mean of R, G and B), like a multi-band sensor's: (H, W, n) uint16."""
    key = ("bands", size, n)
    if key not in _cache:
        rgb = upscaled(size, bits=16)
        mix = np.random.default_rng([SEED, n]).random((3, n))
        mix /= mix.sum(axis=0)
        mixed = rgb.reshape(-1, 3).astype(np.float32) @ mix.astype(np.float32)
        _cache[key] = np.rint(mixed).astype(np.uint16).reshape(size[1], size[0], n)
    return _cache[key]


def grey16(size: tuple[int, int]) -> np.ndarray:
    """The 16-bit photo-like image's green band alone, as a grey microscope or medical image
    would be: (H, W, 1) uint16."""
    return np.ascontiguousarray(upscaled(size, bits=16)[..., 1:2])


def release() -> None:
    _cache.clear()


def unique_colours(img: np.ndarray) -> int:
    flat = img.reshape(-1, img.shape[2])
    if img.dtype == np.uint8 and img.shape[2] == 3:
        codes = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
        return int(np.count_nonzero(np.bincount(codes, minlength=1 << 24)))
    if flat.shape[1] > 4 or flat.dtype.itemsize > 2:
        return int(np.unique(flat, axis=0).shape[0])
    codes = np.zeros(flat.shape[0], np.uint64)
    for c in range(flat.shape[1]):
        codes = (codes << np.uint64(8 * flat.dtype.itemsize)) | flat[:, c].astype(np.uint64)
    codes.sort()  # sort + count changes: numpy 2.4's np.unique is very slow on 12 M uint64
    return int(1 + np.count_nonzero(np.diff(codes))) if codes.size else 0


# --------------------------------------------------------------------------- the case list


def _photos(mode: str) -> list[tuple[str, np.ndarray]]:
    import kmseg

    names = kmseg.data.NAMES if mode == "full" else (BASE_PHOTO,)
    return [(n, photo(n)) for n in names]


def _one(fn: Callable[[str], np.ndarray], label: str) -> Callable[[str], list[tuple[str, np.ndarray]]]:
    return lambda mode: [(label, fn(mode))]


def cases(all_peers: bool = False, quick: bool = False) -> list[Case]:
    def skip(d: dict[str, str]) -> dict[str, str]:
        return {} if all_peers else dict(d)

    def methods(*ms: str, but: dict[str, str]) -> tuple[str, ...]:
        return ms if all_peers else tuple(m for m in ms if m not in but)

    no_cv2_mb = {"cv2-tutorial": SLOW_CV2, "minibatch": SLOW_MINIBATCH}
    big48 = {
        "cv2-tutorial": "10 attempts on 48 MP: about 4x its 12 MP K=8 time, roughly 10 min (--all-peers runs it)",
        "minibatch": SLOW_MINIBATCH,
    }
    k64_2mp = {
        m: "the issue compares K=64 on 2 MP with scikit-learn and Pillow only (--all-peers runs it)"
        for m in ("minibatch", "cv2-tutorial", "cv2-pp", "faiss", "faiss-all")
    }
    sixteen = dict(no_cv2_mb, pillow="Pillow quantizes 8-bit RGB images only")
    out = [
        Case("photos", "bundled sample photos, K=8", 8, _photos, ALL_METHODS),
        Case("12mp-k8", "12 MP photo-like, K=8", 8, _one(lambda m: upscaled(SIZES[m]["12mp"]), "12mp"), ALL_METHODS),
        Case(
            "12mp-k64", "12 MP photo-like, K=64", 64, _one(lambda m: upscaled(SIZES[m]["12mp"]), "12mp"),
            methods(*ALL_METHODS, but=no_cv2_mb), skip(no_cv2_mb),
        ),
        Case(
            "48mp", "48 MP photo-like, K=8", 8, _one(lambda m: upscaled(SIZES[m]["48mp"]), "48mp"),
            methods(*ALL_METHODS, but=big48), skip(big48),
        ),
        Case(
            "2mp-k64", "2 MP photo-like, K=64", 64, _one(lambda m: upscaled(SIZES[m]["2mp"]), "2mp"),
            methods(*ALL_METHODS, but=k64_2mp), skip(k64_2mp),
        ),
        Case(
            "elbow", "2 MP photo-like, elbow sweep K=1..10", 0, _one(lambda m: upscaled(SIZES[m]["2mp"]), "2mp"),
            ELBOW_METHODS, ks=tuple(range(1, 11)),
        ),
        Case(
            "distinct", "12 MP, every pixel a distinct colour, K=8", 8,
            _one(lambda m: distinct(SIZES[m]["12mp"]), "distinct"), methods(*ALL_METHODS, but=no_cv2_mb),
            skip(no_cv2_mb),
        ),
        Case(
            "16bit", "12 MP 16-bit photo-like, K=8", 8, _one(lambda m: upscaled(SIZES[m]["12mp"], bits=16), "16bit"),
            methods(*(m for m in ALL_METHODS if m != "pillow"), but=sixteen),
            dict(skip(sixteen), pillow=sixteen["pillow"]),
        ),
    ]
    out.append(Case(
        "bands", "4 MP, 8 correlated 16-bit bands (multi-band-like), K=8", 8,
        _one(lambda m: bands(SIZES[m]["bands"]), "bands"),
        methods(*(m for m in ALL_METHODS if m != "pillow"), but=no_cv2_mb),
        dict(skip(no_cv2_mb), pillow="Pillow quantizes 8-bit RGB images only"),
    ))
    out.append(Case(
        "grey16", "12 MP 16-bit grey (microscopy-like), K=8", 8,
        _one(lambda m: grey16(SIZES[m]["12mp"]), "grey16"),
        methods(*(m for m in ALL_METHODS if m != "pillow"), but=no_cv2_mb),
        dict(skip(no_cv2_mb), pillow="Pillow quantizes 8-bit RGB images only"),
    ))
    if quick:  # a smoke run: the two slowest peers only where a target needs them
        for c in out:
            if c.key != "12mp-k8":
                gone = [m for m in ("cv2-tutorial", "minibatch") if m in c.methods]
                c.methods = tuple(m for m in c.methods if m not in gone)
                c.skipped.update({m: QUICK for m in gone})
    return out


ALIASES = {
    "12mp": ("12mp-k8", "12mp-k64"),
    "2mp": ("2mp-k64", "elbow"),
    "all": ("photos", "12mp-k8", "12mp-k64", "48mp", "2mp-k64", "elbow", "distinct", "16bit", "bands", "grey16", "cli"),
}
KEYS = ALIASES["all"]


def select(spec: str) -> list[str]:
    """'photos,12mp,cli' -> the case keys in their canonical order."""
    wanted: set[str] = set()
    for part in (p.strip().lower() for p in spec.split(",")):
        if not part:
            continue
        if part in ALIASES:
            wanted.update(ALIASES[part])
        elif part in KEYS:
            wanted.add(part)
        else:
            raise SystemExit(f"unknown case {part!r}; choose from {', '.join(KEYS + tuple(a for a in ALIASES if a != 'all'))} or all")
    return [k for k in KEYS if k in wanted]
