"""The package surface: __all__, version, typing marker, lean imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kmseg
from kmseg.cli import main


def test_all_is_sorted_and_complete():
    assert kmseg.__all__ == sorted(kmseg.__all__)
    for name in kmseg.__all__:
        assert hasattr(kmseg, name), name
    public = {n for n in dir(kmseg) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(kmseg, n)).__name__ == "module"}
    assert public - modules - {"annotations"} <= set(kmseg.__all__)


def test_py_typed_and_sample_notice_ship():
    root = Path(kmseg.__file__).parent
    assert (root / "py.typed").exists()
    assert "CC0" in (root / "data" / "NOTICE.md").read_text()
    for name in kmseg.data.NAMES:
        assert kmseg.data.path(name).exists()


def test_segment_import_path_is_lean():
    """`kmseg segment` must not pay for matplotlib or the web stack."""
    code = (
        "import sys, kmseg.cli; kmseg.cli.build_parser(); "
        "print(sorted(m for m in ('matplotlib', 'fastapi', 'uvicorn', 'dask', 'distributed', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_command_spares_numbas_blas_probe_and_scipy_still_imports(tmp_path):
    """numba's first compiled call imports scipy.linalg (0.15 s) to ask whether np.correlate may
    use BLAS; the `kmseg` command answers it first. Its results are those of ``main`` run in
    this process, and scipy imports as usual afterwards."""
    pytest.importorskip("scipy.linalg")  # installed with scikit-learn, as scientists have it
    image = tmp_path / "coffee.png"
    image.write_bytes(kmseg.data.path("coffee.png").read_bytes())
    code = (
        "import sys\nfrom kmseg.cli import console\n"
        f"sys.argv = ['kmseg', 'segment', {str(image)!r}, '-k', '4', '-o', {str(tmp_path / 'cmd')!r}]\n"
        "rc = console()\nprobed = 'scipy.linalg' in sys.modules\n"
        "import scipy.linalg, numpy as np\n"
        "assert np.allclose(scipy.linalg.inv(np.eye(2) * 2), np.eye(2) / 2)\n"
        "print(rc, probed)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].split() == ["0", "False"]
    assert main(["segment", str(image), "-k", "4", "-o", str(tmp_path / "here")]) == 0
    for made in sorted((tmp_path / "here").iterdir()):
        assert (tmp_path / "cmd" / made.name).read_bytes() == made.read_bytes()
