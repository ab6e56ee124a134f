"""The desktop application (PySide6 + pyqtgraph). Never imports torch or TensorFlow."""
