"""kmseg's warnings point at the caller's own line, as scikit-learn's do, however deep in kmseg
they are raised (the Dask paths are checked in test_distributed.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import kmseg
from kmseg import plot
from kmseg.io import save_image
from kmseg.report import write_report

#: Two colours: fewer than the k asked for, a ConvergenceWarning.
TWO = np.zeros((6, 6, 3), np.uint8)
TWO[:3] = (10, 20, 30)
#: Four channels whose last, read as alpha, is nowhere opaque: a UserWarning.
FAINT = np.zeros((4, 4, 4), np.uint8)
FAINT[..., 3] = 100
FAINT[:2, :, 0] = 200
FAINT[:, :2, 1] = 90
#: Two distinct points for three clusters.
X = np.array([[0.0], [0.0], [1.0]])

# Each call on one line, the line the warning must point at.
CALLS: dict[str, Callable[[Path], Any]] = {
    "segment": lambda tmp: kmseg.segment(TWO, k=5, seed=0),
    "segment a file": lambda tmp: kmseg.segment(save_image(tmp / "two.png", TWO), k=5, seed=0),
    "segment scaled": lambda tmp: kmseg.segment(TWO, k=5, seed=0, scale=0.5),
    "segment uint16": lambda tmp: kmseg.segment(TWO.astype(np.uint16) * 300, k=5, seed=0),
    "Prepared.segment": lambda tmp: kmseg.prepare(TWO).segment(5, seed=0),
    "Prepared.fit": lambda tmp: kmseg.prepare(TWO).fit(5, seed=0),
    "KMeans.fit": lambda tmp: kmseg.KMeans(3, random_state=0).fit(X),
    "KMeans.fit_predict": lambda tmp: kmseg.KMeans(3, random_state=0).fit_predict(X),
    "KMeans.fit_transform": lambda tmp: kmseg.KMeans(3, random_state=0).fit_transform(X),
    "elbow": lambda tmp: kmseg.elbow(TWO, ks=[1, 2, 3], seed=0),
    "plot.grid": lambda tmp: plot.grid(TWO, ks=[2, 5]),
    "write_report": lambda tmp: write_report(TWO, tmp / "r.html", ks=range(1, 4), k=3),
    "segment, alpha": lambda tmp: kmseg.segment(FAINT, k=2, seed=0),
    "prepare, alpha": lambda tmp: kmseg.prepare(FAINT),
    "elbow, alpha": lambda tmp: kmseg.elbow(FAINT, ks=[1, 2, 3], seed=0),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_a_warning_points_at_the_callers_line(name: str, tmp_path: Path) -> None:
    """Was a line inside kmseg (segment.py, estimator.py, report.py, plot.py, _elbow.py) for
    most of these, or the line that called the caller (Prepared.fit)."""
    call = CALLS[name]
    with pytest.warns(UserWarning) as caught:  # ConvergenceWarning is one
        call(tmp_path)
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, call.__code__.co_firstlineno)] * len(caught)

