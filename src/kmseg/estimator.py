"""``KMeans``: the kmseg engine behind the scikit-learn estimator contract, for any data."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from . import _engine
from . import _kernels as K
from ._reduce import COARSE_MIN_POINTS, grid_levels
from .errors import ConvergenceWarning, ParameterError, ParameterTypeError, counted, not_fitted
from .segment import check_fit_options, check_int, make_rng

__all__ = ["KMeans"]

#: What ``n_init="auto"`` stands for: the restarts kmseg runs by default everywhere.
AUTO_N_INIT = 10


class KMeans:
    """Exact weighted K-means (Lloyd, sped up by Hamerly bounds or a kd-tree) with scikit-learn's interface.

    Works on any ``(n_samples, n_features)`` data, with optional ``sample_weight``. It follows
    the estimator contract (``get_params``/``set_params``, ``fit`` returns ``self``, fitted
    attributes end in ``_``), so ``sklearn.base.clone`` and ``Pipeline`` accept it, but kmseg
    does not import scikit-learn.

    Parameters
    ----------
    n_clusters : int
        Number of clusters.
    init : {"k-means++", "random"} or (n_clusters, n_features) ndarray
    n_init : int or "auto"
        Restarts; the lowest inertia wins. Large inputs run them on a coarse grid summary.
        ``"auto"`` (scikit-learn's default) means kmseg's default, 10: restarts are cheap here,
        so kmseg does not drop to scikit-learn's single k-means++ run. An array ``init`` runs once.
    max_iter : int
    tol : float
        As in :func:`kmseg.segment`: relative to the mean feature variance; 0 runs to a fixed point.
    random_state : int, numpy Generator or None

    Attributes
    ----------
    cluster_centers_ : (n_clusters, n_features) ndarray
    labels_ : (n_samples,) ndarray of int32
    inertia_ : float
    n_iter_ : int
    n_features_in_ : int

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(np.bincount(km.labels_).tolist()), round(km.inertia_, 3)
    ([2, 2], 0.01)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        n_init: int | str = 10,
        max_iter: int = 300,
        tol: float = 0.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    # -- the estimator contract, written out so that scikit-learn need not be imported

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> KMeans:
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ParameterError(f"{name!r} is not a parameter of KMeans; valid parameters are {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = [
            f"{k}={v!r}" for k, v in self.get_params().items()
            if not (isinstance(v, np.ndarray) or isinstance(defaults[k], np.ndarray)) and v != defaults[k]
        ]
        return f"KMeans({', '.join(shown)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    def __sklearn_tags__(self) -> Any:
        """Estimator tags for scikit-learn >= 1.6; only scikit-learn calls this, so it imports it here."""
        from sklearn.utils import Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=["float64"]),
            non_deterministic=self.random_state is None,
        )

    # -- input checks

    def _check_X(self, X: Any, *, fitted: bool) -> np.ndarray:
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ParameterTypeError(f"X could not be read as a numeric array ({exc}); pass an (n_samples, n_features) array") from None
        if arr.ndim != 2:
            raise ParameterError(f"X has shape {arr.shape}; pass a 2-D (n_samples, n_features) array (reshape(-1, 1) for one feature)")
        if arr.shape[0] == 0:
            raise ParameterError("X has 0 samples; pass at least one")
        if not np.isfinite(arr).all():
            raise ParameterError("X contains NaN or infinite values; remove or impute them first")
        if fitted and arr.shape[1] != self.n_features_in_:
            raise ParameterError(f"X has {arr.shape[1]} features, but KMeans was fitted with {self.n_features_in_}")
        return np.ascontiguousarray(arr)

    def _check_weight(self, sample_weight: Any, n: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == 0:
            w = np.full(n, float(w))
        if w.shape != (n,):
            raise ParameterError(f"sample_weight has shape {w.shape}; it must have one weight per sample, shape ({n},)")
        if not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
            raise ParameterError("sample_weight must be finite and non-negative, with a positive sum")
        return np.ascontiguousarray(w)

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise not_fitted("this KMeans is not fitted yet; call fit(X) first")

    # -- fitting and using

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute the clustering of ``X`` (``y`` is ignored)."""
        X = self._check_X(X, fitted=False)
        w = self._check_weight(sample_weight, X.shape[0])
        k = check_int("n_clusters", self.n_clusters, 1)
        n_init = self.n_init
        if isinstance(n_init, str):
            if n_init != "auto":
                raise ParameterError(f"n_init={n_init!r} is not supported; pass a whole number such as 10, or 'auto'")
            n_init = AUTO_N_INIT
        check_fit_options(n_init, self.max_iter, self.tol, self.init)
        init = self.init
        if isinstance(init, np.ndarray):
            if init.shape != (k, X.shape[1]):
                raise ParameterError(f"init has shape {init.shape}; it must be (n_clusters, n_features) = ({k}, {X.shape[1]})")
            init = np.ascontiguousarray(init, dtype=np.float64)
        rng = make_rng(self.random_state)
        coarse = grid_levels(X, w) if X.shape[0] > COARSE_MIN_POINTS and X.shape[1] <= 8 else None
        res = _engine.fit(X, w, k, init=init, n_init=int(n_init), max_iter=int(self.max_iter), tol=float(self.tol),
                          rng=rng, coarse=coarse)
        if res.centers.shape[0] < k:
            warnings.warn(
                f"X has only {counted(res.centers.shape[0], 'distinct point')}, fewer than n_clusters={k}; "
                f"cluster_centers_ has {counted(res.centers.shape[0], 'row')}",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.cluster_centers_ = res.centers
        self.labels_ = res.labels
        self.inertia_ = res.inertia
        self.n_iter_ = res.n_iter
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre of every sample."""
        self._check_fitted()
        X = self._check_X(X, fitted=True)
        labels = np.empty(X.shape[0], dtype=np.int32)
        K.assign(X, self.cluster_centers_, labels, np.empty(X.shape[0]))
        return labels

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X: Any) -> np.ndarray:
        """(n_samples, n_clusters) Euclidean distances to every centre, measured as ``predict``
        measures them (so the nearest is its label), with no larger array on the way."""
        self._check_fitted()
        X = self._check_X(X, fitted=True)
        out = np.empty((X.shape[0], self.cluster_centers_.shape[0]))
        K.distances(X, self.cluster_centers_, out)
        return out

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the inertia of ``X`` on the fitted centres (higher is better)."""
        self._check_fitted()
        X = self._check_X(X, fitted=True)
        w = self._check_weight(sample_weight, X.shape[0])
        labels = self.predict(X)
        return -_engine.inertia_of(X, w, self.cluster_centers_, labels)
