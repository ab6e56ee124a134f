"""The boundary from design.md: backends/core load no Qt and no framework until a file needs it."""

import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_backends_and_core_import_no_qt_and_no_framework():
    out = run_python("""
        import sys, pkgutil, importlib
        import tensor_inspector.backends, tensor_inspector.core
        import tensor_inspector.core as core
        for info in pkgutil.iter_modules(core.__path__):
            importlib.import_module("tensor_inspector.core." + info.name)
        # every registered backend module (their framework-specific helpers load lazily)
        from tensor_inspector.backends import available_backends
        assert {"numpy", "safetensors"} <= set(available_backends())
        bad = sorted(m for m in sys.modules
                     if m.split(".")[0] in {"PySide6", "pyqtgraph", "superqt", "shiboken6",
                                             "torch", "tensorflow", "keras"})
        print(bad)
    """)
    assert out.strip() == "[]"


def test_opening_a_numpy_file_imports_no_framework(tmp_path):
    import numpy as np

    np.save(tmp_path / "x.npy", np.arange(4))
    out = run_python(f"""
        import sys
        from tensor_inspector.backends import open_path
        s = open_path({str(tmp_path / "x.npy")!r}); s.read(s.value_nodes()[0].id)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensorflow", "PySide6")))
    """)
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["tensor_inspector.app", "tensor_inspector.session"])
def test_app_and_session_import_no_framework(module):
    """Every module of the window's process, subpackages included: no framework comes with them."""
    out = run_python(f"""
        import sys, pkgutil, importlib
        import {module} as pkg
        names = [info.name for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
        for name in names:
            importlib.import_module(name)
        assert len(names) > 5, names
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensorflow", "keras", "h5py")))
    """)
    assert out.strip() == "[]"
