"""``python -m tensor_inspector`` runs the command-line entry point; so does the desktop bundle.

The bundle (packaging/tensor-inspector.spec) has no separate Python interpreter: its
executable is this script, and ``sys.executable`` names it. The window starts its reader as
``sys.executable -m tensor_inspector.session.reader FD`` and risky probes as
``sys.executable -c CODE ...``, so a frozen executable answers those two forms the way
Python does. Frameworks are not bundled: they are found in a ``site-packages`` folder
beside the executable, or in the folders of TENSOR_INSPECTOR_SITE_PACKAGES.

Nothing heavy is imported before the dispatch: a reader must start no thread (numpy's
BLAS pool) before its sandbox is up.
"""

from __future__ import annotations

import os
import sys

SITE_PACKAGES_VARIABLE = "TENSOR_INSPECTOR_SITE_PACKAGES"


def _add_frameworks_beside_the_bundle() -> None:
    """Put frameworks installed for this Python version after the bundle's own modules.

    Appended, so the bundle's numpy and Qt win over copies in those folders; ``.pth``
    files there are honoured as in a normal site-packages.
    """
    folders = [p for p in os.environ.get(SITE_PACKAGES_VARIABLE, "").split(os.pathsep) if p]
    folders.append(os.path.join(os.path.dirname(sys.executable), "site-packages"))
    for folder in folders:
        if os.path.isdir(folder) and folder not in sys.path:
            import site

            site.addsitedir(folder)


def _run_as_python(argv: list[str]) -> int | None:
    """Serve ``-m MODULE ARGS`` and ``-c CODE ARGS`` like Python; None for anything else."""
    if len(argv) < 2 or argv[0] not in ("-m", "-c"):
        return None
    if argv[0] == "-m":
        import runpy

        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    sys.argv = ["-c", *argv[2:]]
    exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    return 0


def run() -> int:
    if getattr(sys, "frozen", False):
        _add_frameworks_beside_the_bundle()
        code = _run_as_python(sys.argv[1:])
        if code is not None:
            return code
    from tensor_inspector.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
