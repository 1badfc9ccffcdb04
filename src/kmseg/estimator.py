"""``KMeans``: the kmseg engine behind the scikit-learn estimator contract, for any data."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from . import _engine
from . import _kernels as K
from ._reduce import COARSE_MIN_POINTS, distinct_rows, grid_levels
from .errors import ConvergenceWarning, ParameterError, ParameterTypeError, counted, not_fitted, user_stacklevel
from .segment import check_fit_options, check_int, make_rng

__all__ = ["KMeans"]

#: What ``n_init="auto"`` stands for: the restarts kmseg runs by default everywhere.
AUTO_N_INIT = 10


def _is_sparse(X: Any) -> bool:
    """Whether ``X`` is a sparse matrix or array (scipy.sparse and its look-alikes), judged by
    its attributes so that scipy need not be imported."""
    return hasattr(X, "nnz") and (hasattr(X, "toarray") or hasattr(X, "todense"))


def _real_array(value: Any, name: str, what: str, fix: str, real_fix: str) -> np.ndarray:
    """``value`` as a float64 array. Complex values are refused: a cast would drop their
    imaginary part. ``what`` and ``fix``: the message for a value that is not numeric."""
    try:
        arr = np.asarray(value)
        complex_ = arr.dtype.kind == "c"
        if not complex_:
            arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise ParameterTypeError(f"{name} could not be read as {what} ({exc}); {fix}") from None
    if complex_:
        raise ParameterError(f"Complex data not supported: {name} has dtype {arr.dtype}; {real_fix}")
    return arr


def _reshape_hint(shape: tuple[int, ...]) -> str:
    """The fix for an ``X`` of ``shape`` that is not 2-D."""
    if len(shape) == 1:
        return "Reshape your data: X.reshape(-1, 1) if it is one feature, X.reshape(1, -1) if it is one sample"
    if len(shape) == 0:
        return "Reshape your data: X.reshape(1, 1) if it is one sample of one feature"
    return f"Reshape your data: X.reshape(-1, {shape[-1]}) makes each entry of the last axis a feature (an image's channels)"


class KMeans:
    """Exact weighted K-means (Lloyd, sped up by Hamerly bounds or a kd-tree) with scikit-learn's interface.

    Works on any ``(n_samples, n_features)`` data, with optional ``sample_weight``. It follows
    the estimator contract (``get_params``/``set_params``, ``fit`` returns ``self``, fitted
    attributes end in ``_``) and passes ``sklearn.utils.estimator_checks.check_estimator``, so
    ``sklearn.base.clone`` and ``Pipeline`` accept it, but kmseg does not import scikit-learn.

    ``fit`` clusters each distinct row once, weighted by the total weight of its copies, in an
    order set by the values alone: an integer ``sample_weight`` gives the same result as
    repeating the rows (rows of weight 0 take no part), and reordering the rows reorders
    ``labels_`` and changes nothing else, random restarts included.

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

    Raises
    ------
    ParameterError, ParameterTypeError
        Bad input, with what to do about it: complex or sparse ``X`` (refused, not cast), ``X``
        that is not 2-D, empty or not finite, or whose feature count differs from ``fit``'s.
    NotFittedError
        ``predict``, ``transform`` or ``score`` before ``fit`` (also scikit-learn's
        ``NotFittedError`` once scikit-learn has been imported).

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
        """Estimator tags for scikit-learn >= 1.6; only scikit-learn calls this, so it imports it here.

        Dense 2-D input without NaN (sparse input is refused), no target, float64 output; and,
        with a fixed ``random_state``, deterministic (the tag's meaning), as scikit-learn's KMeans.
        """
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=["float64"]),
            input_tags=InputTags(two_d_array=True, sparse=False, allow_nan=False),
        )

    #: The estimator type where scikit-learn < 1.6 and code written for it look (ClusterMixin's attribute).
    _estimator_type = "clusterer"

    def _more_tags(self) -> dict[str, Any]:
        """The same tags for scikit-learn < 1.6, whose defaults give the rest."""
        return {"X_types": ["2darray"], "allow_nan": False, "requires_y": False, "preserves_dtype": [np.float64]}

    # -- input checks

    def _check_X(self, X: Any, *, fitted: bool) -> np.ndarray:
        if _is_sparse(X):
            raise ParameterTypeError(
                f"X is sparse ({type(X).__name__}); sparse input is not supported: pass a dense array, X.toarray()"
            )
        arr = _real_array(X, "X", "a numeric array", "pass an (n_samples, n_features) array",
                          "pass real features, such as np.hstack([X.real, X.imag])")
        if arr.ndim != 2:
            raise ParameterError(f"X has shape {arr.shape}; pass a 2-D (n_samples, n_features) array. {_reshape_hint(arr.shape)}")
        if arr.shape[0] == 0:
            raise ParameterError(f"X has 0 samples (shape {arr.shape}); pass at least one")
        if arr.shape[1] == 0:
            raise ParameterError(
                f"X has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required; pass at least one feature column"
            )
        if fitted and arr.shape[1] != self.n_features_in_:
            # The words of scikit-learn's own message, which code written for it may look for.
            raise ParameterError(
                f"X has {arr.shape[1]} features, but KMeans is expecting {self.n_features_in_} features as input; "
                f"pass the {self.n_features_in_} features it was fitted with"
            )
        if not np.isfinite(arr).all():
            raise ParameterError("X contains NaN or infinite values; remove or impute them first")
        return np.ascontiguousarray(arr)

    def _check_weight(self, sample_weight: Any, n: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        w = _real_array(sample_weight, "sample_weight", "numbers", "pass one number per sample", "pass real weights")
        if w.ndim == 0:
            w = np.full(n, float(w))
        if w.shape != (n,):
            raise ParameterError(f"sample_weight has shape {w.shape}; it must have one weight per sample, shape ({n},)")
        if not np.isfinite(w).all():
            raise ParameterError("sample_weight contains NaN or infinite values; pass finite, non-negative weights")
        if (w < 0).any():
            raise ParameterError(f"sample_weight has negative values (the smallest is {float(w.min())!r}); weights must be non-negative")
        if not w.any():
            raise ParameterError("sample_weight is all zero; give at least one sample a positive weight")
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
            if init.dtype.kind == "c":
                raise ParameterError(f"Complex data not supported: init has dtype {init.dtype}; pass real centres")
            if init.shape != (k, X.shape[1]):
                raise ParameterError(f"init has shape {init.shape}; it must be (n_clusters, n_features) = ({k}, {X.shape[1]})")
            init = np.ascontiguousarray(init, dtype=np.float64)
        rng = make_rng(self.random_state)
        # The fit sees each distinct row once, weighted, in an order set by the values alone:
        # w copies of a row and one row of weight w, in any order, give the same clustering.
        P, pw, index = distinct_rows(X, w)
        coarse = grid_levels(P, pw) if P.shape[0] > COARSE_MIN_POINTS and P.shape[1] <= 8 else None
        res = _engine.fit(P, pw, k, init=init, n_init=int(n_init), max_iter=int(self.max_iter), tol=float(self.tol),
                          rng=rng, coarse=coarse)
        lost = np.flatnonzero(index < 0)  # rows of weight zero, which take no part in the fit
        if res.centers.shape[0] < k:
            of = " of positive weight" if lost.size else ""
            warnings.warn(
                f"X has only {counted(res.centers.shape[0], 'distinct point')}{of}, fewer than n_clusters={k}; "
                f"cluster_centers_ has {counted(res.centers.shape[0], 'row')}",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        labels = res.labels[index]
        if lost.size:
            # Labelled by their nearest centre, as predict labels them.
            lost_labels = np.empty(lost.size, dtype=np.int32)
            K.assign(np.ascontiguousarray(X[lost]), res.centers, lost_labels, np.empty(lost.size))
            labels[lost] = lost_labels
        self.cluster_centers_ = res.centers
        self.labels_ = labels
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
