"""The Setup dock: montage, free-run filter band, per-channel gain, event thresholds per tile,
marker presets.

Band and thresholds are the session's: changes go through :meth:`Session.set_band` and
:meth:`Session.set_threshold` (checked when submitted: a refused value is said in the status
bar and not kept), and :meth:`SetupPanel.show_state` shows what the processing thread applied
(a spin box being edited is left alone). Gain and presets are the view's and the settings'.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ionm_station.alarms import THRESHOLD_RANGE_UV
from ionm_station.gui.settings import N_PRESETS, GuiSettings
from ionm_station.gui.traces import SENSITIVITIES_UV, TraceView
from ionm_station.pipeline.state import StationState
from ionm_station.session import Session


def tile_thresholds_uv(session: Session, state: StationState) -> dict[str, float]:
    """Event threshold (µV p-p) per tile key: the lowest of the tile's channels."""
    out: dict[str, float] = {}
    for ch, uv in zip(session.montage.channels, state.processing.thresholds_uv):
        out[ch.tile_key] = min(uv, out.get(ch.tile_key, uv))
    return out


def _spin(low: float, high: float, decimals: int, suffix: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setSuffix(suffix)
    spin.setKeyboardTracking(False)  # applied on Enter or the arrows, not per keystroke
    return spin


def _show(spin: QDoubleSpinBox, value: float) -> None:
    """Show ``value`` without emitting a change (nor overriding the user's typing)."""
    if spin.hasFocus() or spin.value() == value:
        return
    spin.blockSignals(True)
    spin.setValue(value)
    spin.blockSignals(False)


class SetupPanel(QScrollArea):
    """The Setup dock's contents.

    Args:
        session: band and thresholds are set through it; montage and rate are shown.
        traces: per-channel gain acts on it.
        settings: the accepted band and the marker presets are kept here.

    Signals:
        message(str): for the status bar (band or threshold refused or applied).
    """

    message = Signal(str)

    def __init__(self, session: Session, traces: TraceView, settings: GuiSettings) -> None:
        super().__init__()
        self._session = session
        self._traces = traces
        self._settings = settings
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(6, 6, 6, 6)
        state = session.state()
        for group in (self._montage_box(), self._band_box(state), self._gain_box(),
                      self._threshold_box(state), self._preset_box()):
            layout.addWidget(group)
        layout.addStretch(1)
        self.setWidget(box)
        self.setWidgetResizable(True)
        self.setMinimumWidth(250)

    # --- groups ---

    def _montage_box(self) -> QGroupBox:
        m = QGroupBox("Montage")
        form = QFormLayout(m)
        info = self._session.info
        form.addRow("Name", QLabel(f"<b>{self._session.montage.name}</b>"))
        form.addRow("Channels", QLabel(str(info.n_channels)))
        form.addRow("Source", QLabel(f"{info.source}, {info.sample_rate_hz:g} Hz"))
        return m

    def _band_box(self, state: StationState) -> QGroupBox:
        f = QGroupBox("Filter band (free-run)")
        form = QFormLayout(f)
        band = state.processing.settings
        self.filter_low = _spin(0.1, 1000.0, 1, " Hz")
        self.filter_high = _spin(10.0, max(10.0, self._session.info.sample_rate_hz / 2), 1, " Hz")
        for spin, value in ((self.filter_low, band.low_hz), (self.filter_high, band.high_hz)):
            spin.setValue(value)
            spin.setToolTip("Band-pass edge; applied on Enter")
            spin.valueChanged.connect(lambda _: self.apply_band())
        form.addRow("High-pass", self.filter_low)
        form.addRow("Low-pass", self.filter_high)
        return f

    def _gain_box(self) -> QGroupBox:
        c = QGroupBox("Channel gain")
        form = QFormLayout(c)
        self.channel_box = QComboBox()
        for ch in self._session.montage.channels:
            self.channel_box.addItem(ch.label)
        self.channel_gain_box = QComboBox()
        self.channel_gain_box.addItem("global", None)
        for s in SENSITIVITIES_UV:
            self.channel_gain_box.addItem(f"{s} µV/div", s)
        self.channel_box.currentIndexChanged.connect(self._show_channel_gain)
        self.channel_gain_box.activated.connect(self._on_channel_gain)
        self._traces.channel_clicked.connect(self.channel_box.setCurrentIndex)
        form.addRow("Channel", self.channel_box)
        form.addRow("Gain", self.channel_gain_box)
        own = self._settings.channel_sensitivity_uv
        for i, ch in enumerate(self._session.montage.channels):
            if ch.label in own:
                self._traces.set_channel_sensitivity(i, own[ch.label])
        self._show_channel_gain(0)
        return c

    def _threshold_box(self, state: StationState) -> QGroupBox:
        t = QGroupBox("Event threshold per tile (µV p-p)")
        form = QFormLayout(t)
        self.threshold_boxes: dict[str, QDoubleSpinBox] = {}
        for key, uv in tile_thresholds_uv(self._session, state).items():
            spin = _spin(*THRESHOLD_RANGE_UV, 0, " µV")
            spin.setSingleStep(10.0)
            spin.setValue(uv)
            spin.valueChanged.connect(lambda v, k=key: self.apply_threshold(k, float(v)))
            form.addRow(key, spin)
            self.threshold_boxes[key] = spin
        return t

    def _preset_box(self) -> QGroupBox:
        p = QGroupBox("Marker presets")
        form = QFormLayout(p)
        self.preset_edits: list[QLineEdit] = []
        for i, text in zip(range(N_PRESETS), self._settings.marker_presets):
            edit = QLineEdit(text)
            edit.editingFinished.connect(self._store_presets)
            form.addRow(f"F{i + 1}", edit)
            self.preset_edits.append(edit)
        return p

    # --- acting ---

    def preset(self, i: int) -> str:
        """Text of marker preset ``i`` (0 = F1)."""
        return self.preset_edits[i].text() or f"Marker F{i + 1}"

    def apply_band(self) -> bool:
        """Ask the session for the band of the spin boxes; True if it was accepted."""
        low, high = float(self.filter_low.value()), float(self.filter_high.value())
        try:
            self._session.set_band(low, high)
        except ValueError as exc:
            self.message.emit(f"Filter band not changed: {exc}")
            return False
        self._settings.band_low_hz, self._settings.band_high_hz = low, high
        self.message.emit(f"Filter band {low:g}–{high:g} Hz")
        return True

    def apply_threshold(self, key: str, threshold_uv: float) -> bool:
        """Ask the session for tile ``key``'s event threshold; True if it was accepted."""
        try:
            self._session.set_threshold(key, threshold_uv)
        except ValueError as exc:
            self.message.emit(f"Threshold not changed: {exc}")
            return False
        self.message.emit(f"{key} threshold {threshold_uv:g} µV")
        return True

    def restore_band(self) -> None:
        """Re-apply the band kept in the settings (0 = the session's own)."""
        s = self._settings
        if s.band_low_hz > 0 and s.band_high_hz > 0:
            for spin, value in ((self.filter_low, s.band_low_hz),
                                (self.filter_high, s.band_high_hz)):
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)
            self.apply_band()

    def show_state(self, state: StationState) -> None:
        """Show the band and thresholds in force (spin boxes being edited are left alone)."""
        band = state.processing.settings
        _show(self.filter_low, band.low_hz)
        _show(self.filter_high, band.high_hz)
        for key, uv in tile_thresholds_uv(self._session, state).items():
            _show(self.threshold_boxes[key], uv)

    # --- view ---

    def _show_channel_gain(self, channel: int) -> None:
        own = self._traces.channel_overrides().get(channel)
        self.channel_gain_box.setCurrentIndex(max(0, self.channel_gain_box.findData(own))
                                              if own is not None else 0)

    def _on_channel_gain(self, index: int) -> None:
        channel = self.channel_box.currentIndex()
        value = self.channel_gain_box.itemData(index)
        self._traces.set_channel_sensitivity(channel, value)
        label = self._session.montage.channels[channel].label
        if value is None:
            self._settings.channel_sensitivity_uv.pop(label, None)
        else:
            self._settings.channel_sensitivity_uv[label] = float(value)

    def _store_presets(self) -> None:
        self._settings.marker_presets = [e.text() for e in self.preset_edits]
