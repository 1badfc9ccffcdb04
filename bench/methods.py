"""The methods compared, each timed from the same in-memory (H, W, C) uint8/uint16 array to a
segmentation: one label per pixel plus the recoloured image.

Peers do inside the timed call what a user must do: reshape to (N, C) and convert to the float
type the library needs, fit, label every pixel (faiss: ``index.search``), and paint the
recoloured image (``centres[labels]``, or Pillow's own ``convert("RGB")``). kmseg's
``segment`` does all of that itself.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

SKLEARN_DTYPE = np.float64


@dataclass
class Output:
    centers: Any  # (k, C) float64 in the input's units; a list of them for the elbow sweep
    labels: np.ndarray | None = None  # (N,) the method's own assignment, if it makes one
    n_iter: Any = None
    reported_inertia: Any = None  # what the method says its inertia is (not used for the table)
    info: dict = field(default_factory=dict)
    keep: Any = None  # the recoloured image, kept so that it counts in peak memory


# Settings shown in the report, one line per method.
SETTINGS = {
    "kmseg": "kmseg.segment(img, k, seed=0): defaults (n_init=10, k-means++, max_iter=300, tol=0: runs until no label changes)",
    "sklearn": "KMeans(n_clusters=k, n_init=1, algorithm='lloyd', random_state=0), on {dtype} pixels (tol=1e-4, max_iter=300)",
    "minibatch": "MiniBatchKMeans(n_clusters=k, random_state=0), its defaults: batch_size=1024, max_iter=100, "
    "n_init='auto' (= 1 with k-means++), compute_labels=True; on {dtype} pixels",
    "cv2-tutorial": "cv2.kmeans(float32 pixels, k, None, (EPS+MAX_ITER, 100, 0.2), attempts=10, KMEANS_RANDOM_CENTERS), "
    "cv2.setRNGSeed(0)",
    "cv2-pp": "cv2.kmeans(float32 pixels, k, None, (EPS+MAX_ITER, 100, 0.2), attempts=1, KMEANS_PP_CENTERS), cv2.setRNGSeed(0)",
    "faiss": "faiss.Kmeans(C, k, seed=0) defaults: niter=25, max_points_per_centroid=256, so it trains on a random "
    "sample of 256*k pixels; then index.search labels all pixels",
    "faiss-all": "faiss.Kmeans(C, k, seed=0, max_points_per_centroid=ceil(N/k)): trains on all N pixels, niter=25; "
    "index.search labels all pixels",
    "pillow": "Image.fromarray(img).quantize(k, method=Image.Quantize.MEDIANCUT) (kmeans=0, no dither); "
    "labels = the P image, recoloured = convert('RGB')",
    "kmseg-elbow": "kmseg.elbow(img, ks=range(1, 11), seed=0)",
    "kmseg-elbow-loop": "p = kmseg.prepare(img); [p.segment(k, seed=0) for k in 1..10] (kmseg has no elbow function)",
    "sklearn-loop": "[KMeans(n_clusters=k, n_init=1, algorithm='lloyd', random_state=0).fit(X) for k in 1..10], "
    "X = {dtype} pixels converted once",
}

LABELS = {
    "kmseg": "kmseg",
    "sklearn": "scikit-learn KMeans",
    "minibatch": "scikit-learn MiniBatchKMeans",
    "cv2-tutorial": "cv2.kmeans tutorial (10 random starts)",
    "cv2-pp": "cv2.kmeans k-means++ (1 start)",
    "faiss": "faiss Kmeans (defaults, subsampled)",
    "faiss-all": "faiss Kmeans (all points)",
    "pillow": "Pillow median cut",
    "kmseg-elbow": "kmseg elbow",
    "kmseg-elbow-loop": "kmseg prepare + segment loop",
    "sklearn-loop": "scikit-learn KMeans loop",
}


def settings(method: str) -> str:
    return SETTINGS[method].format(dtype=np.dtype(SKLEARN_DTYPE).name)


# --------------------------------------------------------------------------- helpers


def _pixels(img: np.ndarray, dtype: Any) -> np.ndarray:
    return np.ascontiguousarray(img.reshape(-1, img.shape[2]), dtype=dtype)


def _recolour(img: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    vmax = np.iinfo(img.dtype).max
    pal = np.clip(np.rint(centers), 0, vmax).astype(img.dtype)
    return pal[labels].reshape(img.shape)


# --------------------------------------------------------------------------- the methods


def kmseg_segment(img: np.ndarray, k: int) -> Output:
    import kmseg

    seg = kmseg.segment(img, k, seed=0)
    return Output(
        np.asarray(seg.centers, np.float64), seg.labels.reshape(-1), seg.n_iter, seg.inertia,
        {"converged": seg.converged, "k_returned": seg.k}, keep=seg,
    )


def sklearn_kmeans(img: np.ndarray, k: int) -> Output:
    from sklearn.cluster import KMeans

    X = _pixels(img, SKLEARN_DTYPE)
    km = KMeans(n_clusters=k, n_init=1, algorithm="lloyd", random_state=0).fit(X)
    out = _recolour(img, km.cluster_centers_, km.labels_)
    return Output(km.cluster_centers_.astype(np.float64), km.labels_, int(km.n_iter_), float(km.inertia_), keep=out)


def sklearn_minibatch(img: np.ndarray, k: int) -> Output:
    from sklearn.cluster import MiniBatchKMeans

    X = _pixels(img, SKLEARN_DTYPE)
    km = MiniBatchKMeans(n_clusters=k, random_state=0).fit(X)
    out = _recolour(img, km.cluster_centers_, km.labels_)
    info = {"n_init_used": getattr(km, "_n_init", None), "n_steps": int(getattr(km, "n_steps_", -1))}
    return Output(km.cluster_centers_.astype(np.float64), km.labels_, int(km.n_iter_), float(km.inertia_), info, keep=out)


def _cv2(img: np.ndarray, k: int, attempts: int, pp: bool) -> Output:
    import cv2

    X = _pixels(img, np.float32)
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 0.2)
    flags = cv2.KMEANS_PP_CENTERS if pp else cv2.KMEANS_RANDOM_CENTERS
    compactness, labels, centers = cv2.kmeans(X, k, None, criteria, attempts, flags)
    labels = labels.reshape(-1)
    out = _recolour(img, centers, labels)
    return Output(centers.astype(np.float64), labels, None, float(compactness), keep=out)


def cv2_tutorial(img: np.ndarray, k: int) -> Output:
    return _cv2(img, k, 10, False)


def cv2_pp(img: np.ndarray, k: int) -> Output:
    return _cv2(img, k, 1, True)


def _faiss(img: np.ndarray, k: int, all_points: bool) -> Output:
    import faiss

    X = _pixels(img, np.float32)
    n, d = X.shape
    extra = {"max_points_per_centroid": -(-n // k)} if all_points else {}
    km = faiss.Kmeans(d, k, seed=0, **extra)
    km.train(X)
    _, idx = km.index.search(X, 1)
    labels = idx.reshape(-1)
    out = _recolour(img, km.centroids, labels)
    trained_on = min(n, k * int(km.cp.max_points_per_centroid))
    return Output(
        km.centroids.astype(np.float64), labels, int(km.cp.niter), float(km.obj[-1]) if len(km.obj) else None,
        {"trained_on_points": trained_on}, keep=out,
    )


def faiss_default(img: np.ndarray, k: int) -> Output:
    return _faiss(img, k, False)


def faiss_all(img: np.ndarray, k: int) -> Output:
    return _faiss(img, k, True)


def pillow_mediancut(img: np.ndarray, k: int) -> Output:
    from PIL import Image

    if img.dtype != np.uint8 or img.shape[2] != 3:
        raise TypeError("Pillow quantizes 8-bit RGB only")
    q = Image.fromarray(img).quantize(colors=k, method=Image.Quantize.MEDIANCUT)
    labels = np.asarray(q).reshape(-1)
    rgb = np.asarray(q.convert("RGB"))
    pal = np.asarray(q.getpalette()[: 3 * k], np.float64).reshape(-1, 3)
    n_used = int(labels.max()) + 1
    return Output(pal[: max(n_used, 1)], labels, None, None, {"palette_size": pal.shape[0]}, keep=rgb)


def kmseg_elbow(img: np.ndarray, ks: tuple[int, ...]) -> Output:
    """kmseg.elbow.elbow if it exists, else the loop it stands for."""
    import kmseg

    fn = elbow_function()
    if fn is not None:
        res = fn(img, ks=ks, seed=0)
        centers = _elbow_centers(res)
        return Output(centers, None, None, [float(v) for v in res.inertias], {"knee": getattr(res, "knee", None)}, keep=res)
    p = kmseg.prepare(img)
    segs = [p.segment(k, seed=0) for k in ks]
    return Output([np.asarray(s.centers, np.float64) for s in segs], None, [s.n_iter for s in segs],
                  [s.inertia for s in segs], keep=segs)


def _elbow_centers(res: Any) -> list[np.ndarray] | None:
    for name in ("centers", "centres", "cluster_centers"):
        c = getattr(res, name, None)
        if c is not None:
            return [np.asarray(x, np.float64) for x in c]
    segs = getattr(res, "segmentations", None) or getattr(res, "results", None)
    if segs is not None:
        try:
            return [np.asarray(s.centers, np.float64) for s in segs]
        except AttributeError:
            return None
    return None


def elbow_function() -> Callable[..., Any] | None:
    """kmseg's elbow sweep: ``kmseg.elbow`` (the public function, DESIGN.md), else the function in a
    ``kmseg.elbow`` module; None if neither exists."""
    import kmseg

    fn = getattr(kmseg, "elbow", None)
    if callable(fn):
        return fn
    try:
        return getattr(importlib.import_module("kmseg.elbow"), "elbow", None)
    except ImportError:
        return None


def sklearn_loop(img: np.ndarray, ks: tuple[int, ...]) -> Output:
    from sklearn.cluster import KMeans

    X = _pixels(img, SKLEARN_DTYPE)
    fits = [KMeans(n_clusters=k, n_init=1, algorithm="lloyd", random_state=0).fit(X) for k in ks]
    return Output([f.cluster_centers_.astype(np.float64) for f in fits], None, [int(f.n_iter_) for f in fits],
                  [float(f.inertia_) for f in fits])


METHODS: dict[str, Callable[..., Output]] = {
    "kmseg": kmseg_segment,
    "sklearn": sklearn_kmeans,
    "minibatch": sklearn_minibatch,
    "cv2-tutorial": cv2_tutorial,
    "cv2-pp": cv2_pp,
    "faiss": faiss_default,
    "faiss-all": faiss_all,
    "pillow": pillow_mediancut,
    "kmseg-elbow": kmseg_elbow,
    "sklearn-loop": sklearn_loop,
}
