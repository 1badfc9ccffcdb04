"""The package surface: __all__, version, typing marker, lean imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kmseg


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
