"""Tensor Inspector: open ML weight files, evaluate any node, view, export and edit tensors."""

__version__ = "0.1.0"
