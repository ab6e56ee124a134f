"""Colours…: colormap, scale (linear, log, symlog, gamma) and levels (min/max, percentile,
mean ± k std, symmetric, typed in) for the heatmap, with a preview of the colormap.

The dialog edits a copy of the heatmap's ``ColourSettings``; Apply and OK hand it
back through ``applied`` (the heatmap redraws and the window remembers it), Cancel
leaves the picture as it was.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.app.views.colormaps import COLORMAPS
from tensor_inspector.app.views.heatmap_render import (
    LEVEL_MODES,
    LEVEL_TIPS,
    SCALES,
    ColourSettings,
    warped_colormap,
)


def _spin(lo: float, hi: float, decimals: int, step: float, value: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin


class ColormapDialog(QDialog):
    """Edits one ``ColourSettings``; ``applied(settings)`` on Apply and OK."""

    applied = Signal(object)

    def __init__(
        self, settings: ColourSettings, current_levels: tuple[float, float], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Colours and levels")
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.setCurrentText(settings.colormap)
        self.preview = QLabel()
        self.preview.setFixedHeight(18)
        self.preview.setMinimumWidth(256)
        self.scale_combo = QComboBox()
        self.scale_combo.addItems(list(SCALES))
        self.scale_combo.setCurrentText(settings.scale)
        self.gamma_spin = _spin(0.05, 20.0, 2, 0.1, settings.gamma)
        self.gamma_spin.setToolTip("Above 1 spreads the low values over more colours, below 1 the high ones")
        self.levels_combo = QComboBox()
        self.levels_combo.addItems(list(LEVEL_MODES))
        self.levels_combo.setCurrentText(settings.levels if settings.levels in LEVEL_MODES else "auto")
        self.about_levels = QLabel()
        self.about_levels.setStyleSheet("color: #555;")
        self.percentile_spin = _spin(0.0, 49.9, 2, 0.5, settings.percentile)
        self.percentile_spin.setSuffix(" %")
        self.k_spin = _spin(0.1, 100.0, 2, 0.5, settings.k)
        lo, hi = settings.manual if settings.levels == "manual" else current_levels
        self.lo_spin = pg.SpinBox(value=float(lo), dec=True, minStep=0, format="{value:.9g}")
        self.hi_spin = pg.SpinBox(value=float(hi), dec=True, minStep=0, format="{value:.9g}")
        manual = QHBoxLayout()
        manual.addWidget(self.lo_spin)
        manual.addWidget(QLabel("to"))
        manual.addWidget(self.hi_spin)
        form = QFormLayout()
        form.addRow("Colormap:", self.colormap_combo)
        form.addRow("", self.preview)
        form.addRow("Scale:", self.scale_combo)
        form.addRow("Gamma:", self.gamma_spin)
        form.addRow("Levels:", self.levels_combo)
        form.addRow("", self.about_levels)
        form.addRow("Percentile p:", self.percentile_spin)
        form.addRow("k (std):", self.k_spin)
        form.addRow("Range:", manual)
        self.form = form
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        for signal in (
            self.colormap_combo.currentTextChanged,
            self.scale_combo.currentTextChanged,
            self.levels_combo.currentTextChanged,
            self.gamma_spin.valueChanged,
        ):
            signal.connect(self._update)
        self._update()

    def settings(self) -> ColourSettings:
        """What the dialog shows now."""
        return ColourSettings(
            colormap=self.colormap_combo.currentText(),
            scale=self.scale_combo.currentText(),
            gamma=float(self.gamma_spin.value()),
            levels=self.levels_combo.currentText(),
            percentile=float(self.percentile_spin.value()),
            k=float(self.k_spin.value()),
            manual=(float(self.lo_spin.value()), float(self.hi_spin.value())),
        )

    def apply(self) -> None:
        self.applied.emit(self.settings())

    def accept(self) -> None:
        self.apply()
        super().accept()

    def _update(self, *_args: object) -> None:
        """Only the fields that apply are enabled; the preview shows the (warped) colormap."""
        mode, scale = self.levels_combo.currentText(), self.scale_combo.currentText()
        self.about_levels.setText(LEVEL_TIPS.get(mode, ""))
        self.gamma_spin.setEnabled(scale == "gamma")
        self.percentile_spin.setEnabled(mode == "percentile")
        self.k_spin.setEnabled(mode == "mean ± k std")
        for spin in (self.lo_spin, self.hi_spin):
            spin.setEnabled(mode == "manual")
        gamma = float(self.gamma_spin.value()) if scale == "gamma" else 1.0
        colours = warped_colormap(self.colormap_combo.currentText(), gamma).map(
            np.linspace(0.0, 1.0, 256), mode="byte"
        )
        rgba = np.ascontiguousarray(np.repeat(colours[np.newaxis, :, :4], 18, axis=0).astype(np.uint8))
        image = QImage(rgba.data, 256, 18, 256 * 4, QImage.Format.Format_RGBA8888).copy()
        self.preview.setPixmap(QPixmap.fromImage(image))
