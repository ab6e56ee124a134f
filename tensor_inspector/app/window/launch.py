"""Starting the app: QApplication set-up, the window first, then files; headless screenshots.

The window is shown before any file is opened, so it paints before a framework
(TensorFlow takes seconds to import) is loaded by the worker. ``--screenshot`` runs
the same window to completion: open, select, wait for the value, its statistics and
a paint, grab the window to PNG, exit with 0 or 1 (reason on stderr).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMessageLogContext, QTimer, QtMsgType

from tensor_inspector.core.errors import InspectorError

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from tensor_inspector.app.window.main_window import MainWindow

DEMO_DIR = Path(__file__).resolve().parents[2] / "resources" / "demo"
_NOT_DEMO_DATA = {".py", ".md", ".txt", ".pyc"}
POLL_MS = 20
SCREENSHOT_SIZE = (1400, 880)
HEADLESS_TIMEOUT_S = 900.0  # a wedged backend must not hang a docs build forever


# System libraries Qt's X11 plugin loads (Debian/Ubuntu package names): without them Qt
# aborts with "Could not load the Qt platform plugin xcb", which names none of them.
XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-image": "libxcb-image0",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0",
    "xcb-randr": "libxcb-randr0",
    "xcb-xkb": "libxcb-xkb1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}


class DisplayUnavailable(InspectorError):
    """The window cannot be shown on this display; the message says what to install."""


def missing_x11_libraries() -> list[str]:
    """Debian package names of the X11 libraries Qt's xcb plugin needs and cannot find."""
    from ctypes.util import find_library

    return [package for lib, package in XCB_LIBRARIES.items() if find_library(lib) is None]


def ensure_platform(headless: bool = False) -> None:
    """Use the offscreen platform without a display; check X11 libraries with one.

    ``headless`` (a screenshot run) falls back to offscreen instead of failing.
    """
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif not os.environ.get("WAYLAND_DISPLAY"):
        missing = missing_x11_libraries()
        if missing and headless:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        elif missing:
            raise DisplayUnavailable(
                "The window needs X11 libraries that are not installed: "
                + ", ".join(missing)
                + f" (Debian/Ubuntu: sudo apt install {' '.join(missing)}). Screenshots and the CLI "
                "work without them (QT_QPA_PLATFORM=offscreen)."
            )


def _quiet_offscreen_messages() -> None:
    """Drop the offscreen plugin's harmless "propagateSizeHints" warning from stderr."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode: QtMsgType, _context: QMessageLogContext, message: str) -> None:
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def make_app(headless: bool = False) -> QApplication:
    """The QApplication (created once), named for QSettings and the desktop file."""
    ensure_platform(headless)
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setOrganizationName("TensorInspector")
    app.setApplicationName("tensor-inspector")
    app.setApplicationDisplayName("Tensor Inspector")
    app.setDesktopFileName("tensor-inspector")
    if app.platformName() == "offscreen":
        _quiet_offscreen_messages()
    return app


class _Driver:
    """Selects the requested node once the files are open; headless, also waits and grabs.

    It polls the window's state every few ms instead of sleeping for a fixed time, so
    it is as fast as the work and never races it.
    """

    def __init__(
        self,
        window: MainWindow,
        select: str | None,
        screenshot: str | Path | None,
        select_file: str | None = None,
        prefer_2d: bool = False,
        headless: bool = True,
    ):
        self.window, self.select, self.screenshot = window, select, screenshot
        self.select_file, self.prefer_2d, self.headless = select_file, prefer_2d, headless
        self.errors: list[str] = []
        self.code: int | None = None
        self._stage = "opening"
        self._start = time.monotonic()
        window.open_error.connect(lambda path, message: self.errors.append(message))
        window.value_failed.connect(lambda message: self.errors.append(message))
        self.timer = QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        window = self.window
        if self.headless and time.monotonic() - self._start > HEADLESS_TIMEOUT_S:
            return self._finish(1, "Timed out waiting for the window to finish loading.")
        if not window.is_idle():
            return
        if self._stage == "opening":
            self._stage = "waiting"
            if self.errors and not window.files:
                return self._finish(1, self.errors[0])
            target = self._target()
            if target is not None and not window.select_node(target[1], target[0]):
                names = ", ".join(f.path.name for f in window.files.values()) or "the open files"
                return self._finish(1, f"No node named {target[1]!r} in {names}.")
            if not self.headless:
                self.timer.stop()  # interactive: the user takes over from here
            return
        view = window.view
        # the picture and statistics of what is shown (a big tensor's sample counts as shown)
        if window.shown() is not None and not (view.stats_ready() and not view.heatmap.is_stale()):
            return
        if self.errors:
            return self._finish(1, self.errors[-1])
        self._finish(0)

    def _target(self) -> tuple[int | None, str] | None:
        files = self.window.files
        if self.select is not None:
            if self.select_file is not None:
                handle = next((h for h, f in files.items() if f.path.name == self.select_file), None)
                if handle is not None:
                    return handle, self.select
            handles = self.window.tree.model.handles_with(self.select)
            return (handles[0] if handles else None), self.select
        if self.prefer_2d:
            for root in self.window.tree.model.roots():  # in the order the files were given
                if root.handle not in files:
                    continue  # still opening
                for node in files[root.handle].nodes:
                    if node.has_value and node.shape is not None and len(node.shape) == 2:
                        return root.handle, node.id
        return None  # keep whatever auto-selection chose

    def _finish(self, code: int, message: str = "") -> None:
        self.timer.stop()
        if message:
            print(f"tensor-inspector: {message}", file=sys.stderr)
            self.window.statusBar().showMessage(message)
        if not self.headless:
            return  # the window stays up and shows the message
        if self.screenshot is not None:
            from PySide6.QtWidgets import QApplication

            QApplication.processEvents()
            path = Path(self.screenshot)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self.window.grab().save(str(path)):
                print(f"tensor-inspector: could not write {path}.", file=sys.stderr)
                code = code or 1
        self.code = code
        from PySide6.QtWidgets import QApplication

        QApplication.exit(code)


def _run(
    paths: Sequence[str | Path],
    select: str | None,
    screenshot: str | Path | None,
    trust: bool,
    select_file: str | None = None,
    prefer_2d: bool = False,
    first: int | None = None,
) -> int:
    """``first``: open only that many paths at once, the others once the first value is shown
    (or failed): the reader serves one call at a time, and a TensorFlow or torch file would keep
    it importing its framework for seconds before the first value could be read."""
    headless = screenshot is not None
    app = make_app(headless)
    from tensor_inspector.app.window.main_window import MainWindow

    window = MainWindow(persist=not headless)
    if headless:
        window.resize(*SCREENSHOT_SIZE)  # the same picture whatever the user's saved geometry
        # never trust silently: without --trust a file that needs it is an error
        window.trust_prompt = lambda path, err: False
    window.auto_select = select is None and not prefer_2d
    window.show()
    app.processEvents()  # paint before any file (and framework) is touched
    if not headless:  # screenshots look the same whatever the user last chose
        from tensor_inspector.app.window.settings import remember_colours

        remember_colours(window.view.heatmap)
    now, later = (list(paths), []) if first is None else (list(paths[:first]), list(paths[first:]))
    window.open_paths(now, trust=trust)
    if later:
        _open_after_first_value(window, later, trust)
    driver = _Driver(window, select, screenshot, select_file, prefer_2d, headless)
    driver.timer.start()
    code = app.exec()
    if headless:
        window.close()
        return int(driver.code if driver.code is not None else 1)
    return int(code)


def _open_after_first_value(window: MainWindow, paths: list[str | Path], trust: bool) -> None:
    """Open ``paths`` once the window shows its first value, or fails to."""
    opened = False

    def open_rest(*_args: object) -> None:
        nonlocal opened
        if not opened:
            opened = True
            window.open_paths(paths, trust=trust)

    for signal in (window.value_shown, window.value_failed, window.open_error):
        signal.connect(open_rest)


def run_gui(
    paths: Sequence[str | Path],
    select: str | None = None,
    screenshot: str | Path | None = None,
    trust: bool = False,
) -> int:
    """Open ``paths`` in the window; with ``screenshot``, render once to PNG and exit."""
    return _run(list(paths), select, screenshot, trust)


def demo_files() -> list[Path]:
    if not DEMO_DIR.is_dir():
        return []
    return sorted(
        p
        for p in DEMO_DIR.iterdir()
        if p.name != "DEFAULT_NODE"
        and not p.name.startswith((".", "_"))
        and p.suffix.lower() not in _NOT_DEMO_DATA
    )


def _default_node() -> tuple[str, str] | None:
    marker = DEMO_DIR / "DEFAULT_NODE"
    if not marker.is_file():
        return None
    line = marker.read_text(encoding="utf-8").strip().splitlines()
    if not line or "\t" not in line[0]:
        return None
    filename, node_id = line[0].split("\t", 1)
    return filename.strip(), node_id.strip()


def run_demo(screenshot: str | Path | None = None, select: str | None = None) -> int:
    """Open the bundled demo files with a 2-D node (or ``select``) selected."""
    files = demo_files()
    if not files:
        print(f"tensor-inspector: no demo files in {DEMO_DIR}.", file=sys.stderr)
        return 1
    if select is not None:
        return _run(files, select, screenshot, False)
    default = _default_node()
    if default is not None:
        # the default node's (numpy) file first: on screen in about a second, while the
        # reader then imports torch and TensorFlow for the others
        files.sort(key=lambda path: path.name != default[0])
        return _run(files, default[1], screenshot, False, select_file=default[0], first=1)
    return _run(files, None, screenshot, False, prefer_2d=True)
