"""The desktop application (PySide6 + pyqtgraph). Never imports torch or TensorFlow."""

from tensor_inspector.app.background import pin_singletons

# Guard against PySide6 builds that under-count references to None/True/False on
# CPython 3.11 (6.12.0 aborts after a few thousand calls); a no-op on good builds.
pin_singletons()
