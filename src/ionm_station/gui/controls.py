"""The controls toolbar: display (gain, timebase, sweep/scroll), alarms (acknowledge, silence,
sound, volume), EMG audio (listen to one channel, its volume), marker text, record, surgeon
display.

Display controls act on the :class:`~ionm_station.gui.traces.TraceView` directly and sound
controls on the sounder; both are stored in :class:`~ionm_station.gui.settings.GuiSettings`.
What touches the session (acknowledge, silence, markers, recording) is emitted for the main
window, which owns the session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QSlider, QToolBar

from ionm_station.audio import AlarmSounder
from ionm_station.gui.settings import GuiSettings
from ionm_station.gui.traces import SENSITIVITIES_UV, TIMEBASES_S, TraceView


def select_nearest(box: QComboBox, value: float) -> None:
    """Select the item whose data is ``value``, or the nearest one offered."""
    i = box.findData(value)
    if i < 0:
        values = [float(box.itemData(j)) for j in range(box.count())]
        i = min(range(len(values)), key=lambda j: abs(values[j] - value))
    box.setCurrentIndex(i)


def step_combo(box: QComboBox, step: int) -> None:
    """Move the selection of ``box`` by ``step`` items, within its ends."""
    box.setCurrentIndex(min(box.count() - 1, max(0, box.currentIndex() + step)))


class ControlBar(QToolBar):
    """The top toolbar.

    Args:
        traces: the trace view the display controls act on.
        sounder: the alarm sounder (``muted``, ``volume``).
        settings: where display and sound choices are kept (applied at construction).
        can_record: the session can be recorded (else the record button is disabled).
        listen_labels: the montage's channel labels offered by the Listen selector.

    Signals:
        acknowledge_requested(): acknowledge every tile.
        silence_requested(): silence alarm sound.
        marker_entered(str): marker text entered (Enter in the marker field).
        record_toggled(bool): start (True) / stop (False) recording.
        surgeon_requested(): show or close the surgeon's alarm display.
        listen_changed(int): the channel to play as EMG audio (-1: Off).
    """

    acknowledge_requested = Signal()
    silence_requested = Signal()
    marker_entered = Signal(str)
    record_toggled = Signal(bool)
    surgeon_requested = Signal()
    listen_changed = Signal(int)

    def __init__(self, traces: TraceView, sounder: AlarmSounder, settings: GuiSettings,
                 can_record: bool, listen_labels: Sequence[str] = ()) -> None:
        super().__init__("Controls")
        self.setObjectName("controls")
        self.setMovable(False)
        self._traces = traces
        self._sounder = sounder
        self._settings = settings
        self._display_controls()
        self.addSeparator()
        self._alarm_controls()
        self.addSeparator()
        self._listen_controls(listen_labels)
        self.addSeparator()
        self.marker_edit = QLineEdit()
        self.marker_edit.setPlaceholderText("M: marker text · F1–F9 presets")
        self.marker_edit.setMinimumWidth(180)
        self.marker_edit.returnPressed.connect(self._on_marker_entered)
        self.addWidget(self.marker_edit)
        self.addSeparator()
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setEnabled(can_record)
        self.record_button.setToolTip("Start / stop recording the case" if can_record
                                      else "A replay is not recorded again")
        self.record_button.toggled.connect(self.record_toggled)
        self.addWidget(self.record_button)
        self.surgeon_button = QPushButton("Surgeon display  [F11]")
        self.surgeon_button.clicked.connect(self.surgeon_requested)
        self.addWidget(self.surgeon_button)
        self._apply(settings)

    def _display_controls(self) -> None:
        self.sensitivity_box = QComboBox()
        for s in SENSITIVITIES_UV:
            self.sensitivity_box.addItem(f"{s} µV/div", s)
        self.sensitivity_box.setToolTip("Sensitivity of all channels ( [ / ] )")
        self.sensitivity_box.currentIndexChanged.connect(self._on_sensitivity)
        self.timebase_box = QComboBox()
        for t in TIMEBASES_S:
            self.timebase_box.addItem(f"{t} s", t)
        self.timebase_box.setToolTip("Seconds across the screen ( , / . )")
        self.timebase_box.currentIndexChanged.connect(self._on_timebase)
        self.mode_box = QComboBox()
        self.mode_box.addItems(["Sweep", "Scroll"])
        self.mode_box.setToolTip("Sweep with an erase bar, or scroll")
        self.mode_box.currentIndexChanged.connect(self._on_mode)
        for label, w in (("Gain", self.sensitivity_box), ("Time", self.timebase_box),
                         ("Mode", self.mode_box)):
            self.addWidget(QLabel(f" {label} "))
            self.addWidget(w)

    def _alarm_controls(self) -> None:
        self.ack_button = QPushButton("Acknowledge  [A / Space]")
        self.ack_button.setObjectName("ack")
        self.ack_button.clicked.connect(self.acknowledge_requested)
        self.silence_button = QPushButton("Silence  [S]")
        self.silence_button.setObjectName("silence")
        self.silence_button.clicked.connect(self.silence_requested)
        self.mute_button = QPushButton("Sound on")
        self.mute_button.setCheckable(True)
        self.mute_button.setToolTip("Mute / unmute alarm sound (the tiles keep showing)")
        self.mute_button.toggled.connect(self._on_mute)
        self.volume_slider = _slider(5, 100, 70, "Alarm volume", self._on_volume)
        for w in (self.ack_button, self.silence_button, self.mute_button, self.volume_slider):
            self.addWidget(w)

    def _listen_controls(self, labels: Sequence[str]) -> None:
        self.listen_box = QComboBox()
        self.listen_box.addItem("Off", -1)
        for i, label in enumerate(labels):
            self.listen_box.addItem(label, i)
        self.listen_box.setToolTip("Free-run EMG audio: the clean signal of one channel "
                                   "(±500 µV full scale); alarms sound over it")
        self.listen_box.currentIndexChanged.connect(self._on_listen)
        self.emg_volume_slider = _slider(0, 100, 60, "EMG audio volume (alarm volume is separate)",
                                         self._on_emg_volume)
        self.addWidget(QLabel(" Listen "))
        self.addWidget(self.listen_box)
        self.addWidget(self.emg_volume_slider)

    def listen_channel(self) -> int | None:
        """The channel the Listen selector shows (None: Off)."""
        channel = int(self.listen_box.currentData())
        return None if channel < 0 else channel

    def select_listen(self, label: str | None) -> None:
        """Show ``label`` (None or '': Off) in the Listen selector; emits listen_changed if
        that changes the choice. ValueError for a label the selector does not offer."""
        i = 0 if not label else self.listen_box.findText(label)
        if i < 0:
            raise ValueError(f"no channel {label!r} to listen to")
        self.listen_box.setCurrentIndex(i)

    def _apply(self, s: GuiSettings) -> None:
        select_nearest(self.sensitivity_box, s.sensitivity_uv)
        select_nearest(self.timebase_box, s.timebase_s)
        self.mode_box.setCurrentIndex(1 if s.scroll_mode else 0)
        self._traces.set_sensitivity(s.sensitivity_uv)
        self._traces.set_timebase(s.timebase_s)
        self._traces.set_scroll_mode(s.scroll_mode)
        self.volume_slider.setValue(round(100 * s.alarm_volume))
        self.mute_button.setChecked(s.alarm_muted)
        self._on_mute(s.alarm_muted)
        self.emg_volume_slider.setValue(round(100 * s.emg_volume))
        self._on_emg_volume(self.emg_volume_slider.value())
        i = self.listen_box.findText(s.listen_label) if s.listen_label else 0
        self.listen_box.blockSignals(True)  # the window starts the chosen channel itself
        self.listen_box.setCurrentIndex(max(0, i))
        self.listen_box.blockSignals(False)

    def _on_sensitivity(self, index: int) -> None:
        value = float(self.sensitivity_box.itemData(index))
        self._settings.sensitivity_uv = value
        self._traces.set_sensitivity(value)

    def _on_timebase(self, index: int) -> None:
        value = float(self.timebase_box.itemData(index))
        self._settings.timebase_s = value
        self._traces.set_timebase(value)

    def _on_mode(self, index: int) -> None:
        self._settings.scroll_mode = index == 1
        self._traces.set_scroll_mode(index == 1)

    def _on_mute(self, muted: bool) -> None:
        self._settings.alarm_muted = bool(muted)
        self._sounder.muted = bool(muted)
        self.mute_button.setText("Sound muted" if muted else "Sound on")
        self.mute_button.setStyleSheet("background: #5a4a12;" if muted else "")

    def _on_volume(self, value: int) -> None:
        self._settings.alarm_volume = value / 100
        self._sounder.volume = value / 100

    def _on_emg_volume(self, value: int) -> None:
        self._settings.emg_volume = value / 100
        self._sounder.set_emg_volume(value / 100)

    def _on_listen(self, index: int) -> None:
        channel = int(self.listen_box.itemData(index))
        self._settings.listen_label = self.listen_box.itemText(index) if channel >= 0 else ""
        self.listen_changed.emit(channel)

    def _on_marker_entered(self) -> None:
        text = self.marker_edit.text().strip()
        if text:
            self.marker_entered.emit(text)
        self.marker_edit.clear()


def _slider(low: int, high: int, width_px: int, tip: str,
            on_change: Callable[[int], object]) -> QSlider:
    """A horizontal slider ``low``–``high`` (percent), ``width_px`` wide, calling
    ``on_change(value)``."""
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(low, high)
    slider.setFixedWidth(width_px)
    slider.setToolTip(tip)
    slider.valueChanged.connect(on_change)
    return slider
