"""The heatmap's toolbar: colormap, scale, levels (with the typed range), complex part, tools.

The controls hold one ``ColourSettings`` and emit ``changed`` with it; the
Colours… button opens the colormap and levels dialog for what the toolbar has no
room for (gamma, percentile, k). Picture-only changes (colormap, gamma) and
changes that need new levels are told apart by the view, not here.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QWidget

from tensor_inspector.app.views.colormaps import COLORMAPS, COMPLEX_PARTS, is_diverging
from tensor_inspector.app.views.heatmap_render import LEVEL_MODES, LEVEL_TIPS, SCALES, ColourSettings


class HeatmapControls(QWidget):
    """Combos and spins for one heatmap; ``settings`` is the single source of truth."""

    changed = Signal(object, object)  # new ColourSettings, old ColourSettings
    complex_changed = Signal(str)
    dialog_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = ColourSettings()
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(list(COLORMAPS))
        self.cmap_combo.setToolTip("Colormap (diverging maps switch levels to symmetric)")
        self.scale_combo = QComboBox()
        self.scale_combo.addItems(list(SCALES))
        self.scale_combo.setToolTip("How values map to colours: linear, log10, symmetric log, gamma")
        self.levels_combo = QComboBox()
        self.levels_combo.addItems(list(LEVEL_MODES))
        for i, mode in enumerate(LEVEL_MODES):
            self.levels_combo.setItemData(i, LEVEL_TIPS[mode], 3)  # Qt.ToolTipRole
        self.levels_combo.setToolTip("Colour levels (Colours… for percentile, k and gamma)")
        self.lo_spin = pg.SpinBox(value=0.0, dec=True, minStep=0, format="{value:.6g}", compactHeight=False)
        self.hi_spin = pg.SpinBox(value=1.0, dec=True, minStep=0, format="{value:.6g}", compactHeight=False)
        for spin, tip in ((self.lo_spin, "Lowest level"), (self.hi_spin, "Highest level")):
            spin.setToolTip(tip)
            spin.setFixedWidth(110)  # room for a sign and 6 significant digits
        self.complex_label = QLabel("complex:")
        self.complex_combo = QComboBox()
        self.complex_combo.addItems(list(COMPLEX_PARTS))
        self.complex_combo.setToolTip("Part of complex values to draw")
        self.colours_button = QToolButton()
        self.colours_button.setText("Colours…")
        self.colours_button.setToolTip("Colormap, scale and levels (min/max, percentile, mean ± k std)")
        self.aspect_button = QToolButton()
        self.aspect_button.setText("1:1")
        self.aspect_button.setCheckable(True)
        self.aspect_button.setToolTip("Square pixels")
        self.profile_button = QToolButton()
        self.profile_button.setText("Profile")
        self.profile_button.setCheckable(True)
        self.profile_button.setToolTip("Row and column profiles through the cursor")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for widget in (
            self.cmap_combo,
            self.scale_combo,
            QLabel("levels:"),
            self.levels_combo,
            self.lo_spin,
            self.hi_spin,
            self.complex_label,
            self.complex_combo,
            self.colours_button,
            self.aspect_button,
            self.profile_button,
        ):
            row.addWidget(widget)
        self.cmap_combo.currentTextChanged.connect(self._on_cmap)
        self.scale_combo.currentTextChanged.connect(lambda scale: self.update(scale=scale))
        self.levels_combo.currentTextChanged.connect(lambda mode: self.update(levels=mode))
        self.lo_spin.sigValueChanged.connect(self._on_spins)
        self.hi_spin.sigValueChanged.connect(self._on_spins)
        self.complex_combo.currentTextChanged.connect(self.complex_changed)
        self.colours_button.clicked.connect(self.dialog_requested)
        self.set_settings(self.settings)

    def update(self, **changes: object) -> None:  # type: ignore[override]
        """Change some settings (as the user would) and tell the view."""
        self.set_settings(self.settings.with_(**changes))

    def set_settings(self, settings: ColourSettings) -> None:
        """Show ``settings`` in the widgets and emit ``changed`` if they differ."""
        old, self.settings = self.settings, settings
        for combo, text in (
            (self.cmap_combo, settings.colormap),
            (self.scale_combo, settings.scale),
            (self.levels_combo, settings.levels),
        ):
            combo.blockSignals(True)
            combo.setCurrentText(text)
            combo.blockSignals(False)
        self.show_levels(settings.manual)
        self.enable(self.cmap_combo.isEnabled())
        if settings != old:
            self.changed.emit(settings, old)

    def show_levels(self, levels: tuple[float, float]) -> None:
        """The levels in use, in the spins (typing there switches to manual)."""
        for spin, value in zip((self.lo_spin, self.hi_spin), levels):
            spin.blockSignals(True)
            spin.setValue(float(value))
            spin.blockSignals(False)

    def enable(self, image: bool) -> None:
        """Colour controls apply to 2-D pictures only."""
        for widget in (
            self.cmap_combo,
            self.scale_combo,
            self.levels_combo,
            self.aspect_button,
            self.colours_button,
            self.profile_button,
        ):
            widget.setEnabled(image)
        manual = self.settings.levels == "manual"
        self.lo_spin.setEnabled(manual and image)
        self.hi_spin.setEnabled(manual and image)

    def show_complex(self, visible: bool) -> None:
        self.complex_combo.setVisible(visible)
        self.complex_label.setVisible(visible)

    def _on_cmap(self, name: str) -> None:
        changes: dict[str, object] = {"colormap": name}
        if is_diverging(name) and self.settings.levels in ("auto", "percentile"):
            changes["levels"] = "symmetric"
        self.update(**changes)

    def _on_spins(self, *_args: object) -> None:
        if self.settings.levels == "manual":
            self.update(manual=(float(self.lo_spin.value()), float(self.hi_spin.value())))
