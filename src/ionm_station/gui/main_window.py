"""MainWindow: traces, alarm panel, controls, status bar — a thin shell over a Session.

What the window needs from the session (all read-only, polled on GUI timers):

* ``info`` (sample rate, source name), ``montage``, ``filtered`` ring (traces), ``raw`` ring
  (``published`` = "now" for markers), ``events`` (artifact/EMG/marker overlays; markers are
  appended here), ``status()`` (status bar);
* optional ``alarms`` (AlarmEngine: ``tiles()``, ``acknowledge(key)``, ``silence(seconds)``) —
  without it every tile shows quiet;
* optional ``recorder`` with ``status()`` → ``RecorderStatus`` (state, path,
  file_size_bytes, free_bytes) — the status bar says "REC off" when not recording and
  "REC n/a" when the session cannot record;
* optional ``dsp.bandpass`` / ``dsp.settings`` with ``low_hz``/``high_hz`` for the filter
  band, and ``set_band(low, high)`` to change it (the spin boxes are read-only without it);
* optional ``alarms.audible`` (highest priority that should sound, None when silenced) drives
  an :class:`~ionm_station.audio.AlarmSounder` (volume / mute in the toolbar, persisted);
* optional ``triggered`` (:class:`~ionm_station.triggered.controller.TriggeredEmg`) adds the
  Triggered EMG dock (:mod:`ionm_station.gui.triggered_view`);
* a replay source (``source`` with ``seek`` and ``pause``) shows :attr:`MainWindow.replay_bar`.

The window never starts or stops the session (see :func:`ionm_station.gui.app.run_gui`) and
never opens a modal dialog.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSlider,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ionm_station.alarms import TileState
from ionm_station.audio import AlarmSounder
from ionm_station.events import Event
from ionm_station.gui.alarm_panel import AlarmPanel, AlarmWindow, quiet_tiles
from ionm_station.gui.replay_bar import ReplayBar
from ionm_station.gui.settings import N_PRESETS, GuiSettings, default_settings_path
from ionm_station.gui.traces import SENSITIVITIES_UV, TIMEBASES_S, TraceView
from ionm_station.gui.triggered_view import TriggeredView

#: Poll periods (ms) of the alarm tiles and the status bar.
TILES_MS = 100
STATUS_MS = 500


def filter_band_hz(session: Any) -> tuple[float, float] | None:
    """(low, high) band-pass edges (Hz) of the session's DSP, if it says."""
    dsp = getattr(session, "dsp", None)
    for holder in (getattr(dsp, "settings", None), getattr(dsp, "bandpass", None)):
        low, high = getattr(holder, "low_hz", None), getattr(holder, "high_hz", None)
        if low is not None and high is not None:
            return float(low), float(high)
    return None


def _bytes_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


class MainWindow(QMainWindow):
    """The monitoring window.

    Args:
        session: a :class:`~ionm_station.session.Session` (started or not).
        settings_path: JSON settings file; default ``~/.config/ionm-station/gui.json``.

    Signals:
        threshold_changed(str, float): the user set a root-side's event threshold (key, µV).
        marker_added(str, int): a marker was appended to ``session.events`` (text, sample index).
        record_toggled(bool): start (True) / stop (False) recording was requested.
    """

    threshold_changed = Signal(str, float)
    marker_added = Signal(str, int)
    record_toggled = Signal(bool)

    def __init__(self, session: Any, settings_path: Path | None = None,
                 sounder: Any | None = None) -> None:
        super().__init__()
        self.session = session
        self.montage = session.montage
        self.settings_path = settings_path or default_settings_path()
        self.settings = GuiSettings.load(self.settings_path)
        #: Plays alarm tones (``set_priority``/``volume``/``muted``/``notice``/``close``).
        self.sounder = sounder if sounder is not None else AlarmSounder(
            self.settings.alarm_volume, self.settings.alarm_muted)
        self._sounding: str | None = None
        self._keys = self.montage.root_sides()
        self.alarm_window: AlarmWindow | None = None
        self.replay_bar: ReplayBar | None = None
        self.setWindowTitle(f"IONM Station — {self.montage.name} — research use only")

        self.traces = TraceView(session.filtered, self.montage, session.info.sample_rate_hz,
                                session.events)
        self.setCentralWidget(self.traces)
        self.alarm_panel = AlarmPanel(self._keys)
        self.alarm_panel.acknowledge_requested.connect(self.acknowledge)
        self.alarm_panel.setMinimumWidth(300)
        self._alarm_dock = self._dock("Alarms", "alarms", self.alarm_panel,
                                      Qt.DockWidgetArea.RightDockWidgetArea)
        self._setup_dock = self._dock("Setup", "setup", self._build_setup(),
                                      Qt.DockWidgetArea.LeftDockWidgetArea)
        self.triggered_view: TriggeredView | None = None
        self.triggered_dock: QDockWidget | None = None
        if getattr(session, "triggered", None) is not None:
            self.triggered_view = TriggeredView(session)
            self.triggered_view.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
            self.triggered_dock = self._dock("Triggered EMG", "triggered", self.triggered_view,
                                             Qt.DockWidgetArea.LeftDockWidgetArea)
            self.tabifyDockWidget(self._setup_dock, self.triggered_dock)
            self._setup_dock.raise_()
        self._build_toolbar()
        self._build_status_bar()
        if callable(getattr(session.source, "seek", None)) and callable(
                getattr(session.source, "pause", None)):
            self.replay_bar = ReplayBar()
            bar = QToolBar("Replay")
            bar.setObjectName("replay")
            bar.setMovable(False)
            bar.addWidget(self.replay_bar)
            bar.addSeparator()
            self.review_slider = QSlider(Qt.Orientation.Horizontal)
            self.review_slider.setFixedWidth(220)
            self.review_slider.setInvertedAppearance(True)  # right = now, left = further back
            self.review_slider.setEnabled(False)
            self.review_slider.setToolTip("Paused: scroll back through the last "
                                          "30 s (also the mouse wheel on the traces)")
            self.review_label = QLabel("review: live")
            self.review_label.setMinimumWidth(110)
            self.review_slider.valueChanged.connect(
                lambda v: self._show_review(self.traces.set_review(v / 10)))
            self.traces.review_changed.connect(self._show_review)
            bar.addWidget(QLabel(" Review "))
            bar.addWidget(self.review_slider)
            bar.addWidget(self.review_label)
            self.addToolBar(Qt.ToolBarArea.BottomToolBarArea, bar)
            self._wire_replay(session.source, self.replay_bar)
        self._build_shortcuts()
        self._apply_settings()

        self._tile_timer = QTimer(self)
        self._tile_timer.setInterval(TILES_MS)
        self._tile_timer.timeout.connect(self.refresh_tiles)
        self._tile_timer.timeout.connect(self.refresh_replay)
        self._tile_timer.start()
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_MS)
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start()
        self.traces.start()
        self.refresh_status()

    # --- construction ----------------------------------------------------------------------------

    def _dock(self, title: str, name: str, widget: QWidget,
              area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_toolbar(self) -> None:
        bar = QToolBar("Controls")
        bar.setObjectName("controls")
        bar.setMovable(False)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
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
            bar.addWidget(QLabel(f" {label} "))
            bar.addWidget(w)
        bar.addSeparator()
        self.ack_button = QPushButton("Acknowledge  [A / Space]")
        self.ack_button.setObjectName("ack")
        self.ack_button.clicked.connect(lambda: self.acknowledge(None))
        self.silence_button = QPushButton("Silence  [S]")
        self.silence_button.setObjectName("silence")
        self.silence_button.clicked.connect(self.silence)
        bar.addWidget(self.ack_button)
        bar.addWidget(self.silence_button)
        self.mute_button = QPushButton("Sound on")
        self.mute_button.setCheckable(True)
        self.mute_button.setToolTip("Mute / unmute alarm sound (the tiles keep showing)")
        self.mute_button.toggled.connect(self._on_mute)
        self.volume_slider = QSlider(Qt.Orientation.Horizontal)
        self.volume_slider.setRange(5, 100)
        self.volume_slider.setFixedWidth(90)
        self.volume_slider.setToolTip("Alarm volume")
        self.volume_slider.valueChanged.connect(self._on_volume)
        bar.addWidget(self.mute_button)
        bar.addWidget(self.volume_slider)
        bar.addSeparator()
        self.marker_edit = QLineEdit()
        self.marker_edit.setPlaceholderText("M: marker text, Enter to add · F1–F8 presets")
        self.marker_edit.setMinimumWidth(300)
        self.marker_edit.returnPressed.connect(self._on_marker_entered)
        bar.addWidget(self.marker_edit)
        bar.addSeparator()
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        can_record = hasattr(self.session, "start_recording")
        self.record_button.setEnabled(can_record)
        self.record_button.setToolTip("Start / stop recording the case" if can_record
                                      else "This source cannot be recorded")
        self.record_button.toggled.connect(self.record_toggled)
        bar.addWidget(self.record_button)
        self.surgeon_button = QPushButton("Surgeon display  [F11]")
        self.surgeon_button.clicked.connect(self.toggle_alarm_window)
        bar.addWidget(self.surgeon_button)

    def _build_setup(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(6, 6, 6, 6)

        m = QGroupBox("Montage")
        form = QFormLayout(m)
        form.addRow("Name", QLabel(f"<b>{self.montage.name}</b>"))
        form.addRow("Channels", QLabel(str(len(self.montage.channels))))
        info = self.session.info
        form.addRow("Source", QLabel(f"{info.source}, {info.sample_rate_hz:g} Hz"))
        layout.addWidget(m)

        f = QGroupBox("Filter band (free-run)")
        form = QFormLayout(f)
        band = filter_band_hz(self.session) or (0.0, 0.0)
        nyquist = float(info.sample_rate_hz) / 2
        can_set = callable(getattr(self.session, "set_band", None))
        self.filter_low = QDoubleSpinBox()
        self.filter_low.setRange(0.1, 1000.0)
        self.filter_high = QDoubleSpinBox()
        self.filter_high.setRange(10.0, max(10.0, nyquist))
        for spin, value in ((self.filter_low, band[0]), (self.filter_high, band[1])):
            spin.setDecimals(1)
            spin.setSuffix(" Hz")
            spin.setValue(value)
            spin.setKeyboardTracking(False)
            spin.setEnabled(can_set)
            spin.setToolTip("Band-pass edge; applied on Enter" if can_set
                            else "This session's band cannot be changed")
            spin.valueChanged.connect(lambda _: self.apply_band())
        form.addRow("High-pass", self.filter_low)
        form.addRow("Low-pass", self.filter_high)
        layout.addWidget(f)

        c = QGroupBox("Channel gain")
        form = QFormLayout(c)
        self.channel_box = QComboBox()
        for ch in self.montage.channels:
            self.channel_box.addItem(ch.label)
        self.channel_gain_box = QComboBox()
        self.channel_gain_box.addItem("global", None)
        for s in SENSITIVITIES_UV:
            self.channel_gain_box.addItem(f"{s} µV/div", s)
        self.channel_box.currentIndexChanged.connect(self._show_channel_gain)
        self.channel_gain_box.activated.connect(self._on_channel_gain)
        self.traces.channel_clicked.connect(self.channel_box.setCurrentIndex)
        form.addRow("Channel", self.channel_box)
        form.addRow("Gain", self.channel_gain_box)
        layout.addWidget(c)

        t = QGroupBox("Event threshold per root (µV)")
        form = QFormLayout(t)
        self.threshold_boxes: dict[str, QDoubleSpinBox] = {}
        for key in self._keys:
            root, _, side = key.partition("-")
            spin = QDoubleSpinBox()
            spin.setRange(5.0, 5000.0)
            spin.setDecimals(0)
            spin.setSingleStep(10.0)
            spin.setSuffix(" µV")
            spin.setValue(min(ch.threshold_uv for ch in self.montage.channels
                              if ch.root_side == key))
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(lambda v, k=key: self.threshold_changed.emit(k, float(v)))
            form.addRow(key, spin)
            self.threshold_boxes[key] = spin
        layout.addWidget(t)

        p = QGroupBox("Marker presets")
        form = QFormLayout(p)
        self.preset_edits: list[QLineEdit] = []
        for i in range(N_PRESETS):
            edit = QLineEdit()
            edit.editingFinished.connect(self._store_presets)
            form.addRow(f"F{i + 1}", edit)
            self.preset_edits.append(edit)
        layout.addWidget(p)
        layout.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidget(box)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(250)
        return scroll

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_labels: dict[str, QLabel] = {}
        for name in ("source", "rate", "samples", "dropped", "overruns", "recording", "disk",
                     "audio", "error"):
            lbl = QLabel()
            self.status_labels[name] = lbl
            bar.addPermanentWidget(lbl)
        self.status_labels["error"].setStyleSheet("color: #ff6b6b; font-weight: bold;")
        self.status_labels["audio"].setStyleSheet("color: #ffb02e;")

    def _build_shortcuts(self) -> None:
        def key(seq: QKeySequence | str, slot: Any) -> None:
            QShortcut(QKeySequence(seq), self, activated=slot)

        key("A", lambda: self.acknowledge(None))
        key(Qt.Key.Key_Space, lambda: self.acknowledge(None))
        key("S", self.silence)
        key("M", self._focus_marker)
        key(Qt.Key.Key_F11, self.toggle_alarm_window)
        key("]", lambda: self._step_combo(self.sensitivity_box, 1))
        key("[", lambda: self._step_combo(self.sensitivity_box, -1))
        key(".", lambda: self._step_combo(self.timebase_box, 1))
        key(",", lambda: self._step_combo(self.timebase_box, -1))
        for i in range(N_PRESETS):
            key(getattr(Qt.Key, f"Key_F{i + 1}"), lambda i=i: self.add_marker(
                self.preset_edits[i].text() or f"Marker F{i + 1}"))
        self.marker_escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self.marker_edit,
                                       activated=self._leave_marker)
        self.marker_escape.setContext(Qt.ShortcutContext.WidgetShortcut)

    def _apply_settings(self) -> None:
        s = self.settings
        self._select(self.sensitivity_box, s.sensitivity_uv)
        self._select(self.timebase_box, s.timebase_s)
        self.mode_box.setCurrentIndex(1 if s.scroll_mode else 0)
        self.traces.set_sensitivity(s.sensitivity_uv)
        self.traces.set_timebase(s.timebase_s)
        self.traces.set_scroll_mode(s.scroll_mode)
        for i, ch in enumerate(self.montage.channels):
            if ch.label in s.channel_sensitivity_uv:
                self.traces.set_channel_sensitivity(i, s.channel_sensitivity_uv[ch.label])
        for edit, text in zip(self.preset_edits, s.marker_presets):
            edit.setText(text)
        self.volume_slider.setValue(round(100 * s.alarm_volume))
        self.mute_button.setChecked(s.alarm_muted)
        self._on_mute(s.alarm_muted)
        if s.band_low_hz > 0 and s.band_high_hz > 0 and self.filter_low.isEnabled():
            for spin, value in ((self.filter_low, s.band_low_hz),
                                (self.filter_high, s.band_high_hz)):
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)
            self.apply_band()
        if s.geometry:
            self.restoreGeometry(QByteArray.fromBase64(s.geometry.encode()))
        else:
            self.resize(1600, 1000)
        if s.window_state:
            self.restoreState(QByteArray.fromBase64(s.window_state.encode()))
        self._show_channel_gain(self.channel_box.currentIndex())

    @staticmethod
    def _select(box: QComboBox, value: float) -> None:
        i = box.findData(value)
        if i < 0:  # a value not offered: pick the nearest one that is
            values = [box.itemData(j) for j in range(box.count())]
            i = min(range(len(values)), key=lambda j: abs(float(values[j]) - value))
        box.setCurrentIndex(i)

    @staticmethod
    def _step_combo(box: QComboBox, step: int) -> None:
        box.setCurrentIndex(min(box.count() - 1, max(0, box.currentIndex() + step)))

    def _wire_replay(self, source: Any, bar: ReplayBar) -> None:
        """Connect the replay bar to a ReplaySource (play/pause/set_speed/seek_time/
        next_event/previous_event/position_s/n_samples); missing methods leave a control inert."""
        def call(name: str, *args: Any) -> None:
            method = getattr(source, name, None)
            if callable(method):
                method(*args)

        bar.play_toggled.connect(lambda playing: call("play" if playing else "pause"))
        bar.speed_changed.connect(lambda speed: call("set_speed", speed))
        bar.seek_requested.connect(lambda seconds: call("seek_time", seconds))
        bar.step_event.connect(lambda step: call("next_event" if step > 0 else "previous_event"))
        key_play = QShortcut(QKeySequence("P"), self)
        key_play.activated.connect(lambda: bar.set_playing(not bar.playing, emit=True))
        key_prev = QShortcut(QKeySequence("Ctrl+Left"), self)
        key_prev.activated.connect(lambda: bar.step_event.emit(-1))
        key_next = QShortcut(QKeySequence("Ctrl+Right"), self)
        key_next.activated.connect(lambda: bar.step_event.emit(1))

    def refresh_replay(self) -> None:
        """Move the replay timeline to the source's position."""
        if self.replay_bar is None:
            return
        src = self.session.source
        fs = self.session.info.sample_rate_hz
        position = float(getattr(src, "position_s", 0.0))
        total = float(getattr(src, "n_samples", 0)) / fs
        self.replay_bar.set_position(position, total)
        paused = getattr(src, "paused", None)
        if isinstance(paused, bool):
            self.replay_bar.set_playing(not paused)
        paused = paused is True
        self.traces.review_enabled = paused
        self.review_slider.setEnabled(paused)
        if paused:
            self.review_slider.setMaximum(int(self.traces.max_review_s() * 10))
        elif self.traces.review_s > 0:
            self._show_review(self.traces.set_review(0.0))

    def _show_review(self, back_s: float) -> None:
        """Reflect the trace view's scroll-back in the slider and its label."""
        self.review_slider.blockSignals(True)
        self.review_slider.setValue(round(back_s * 10))
        self.review_slider.blockSignals(False)
        self.review_label.setText(f"review: −{back_s:.1f} s" if back_s > 0 else "review: live")
        self.review_label.setStyleSheet("color: #ffb02e; font-weight: bold;" if back_s > 0
                                        else "")

    # --- control handlers --------------------------------------------------------------------------

    def _on_sensitivity(self, index: int) -> None:
        value = float(self.sensitivity_box.itemData(index))
        self.settings.sensitivity_uv = value
        self.traces.set_sensitivity(value)

    def _on_timebase(self, index: int) -> None:
        value = float(self.timebase_box.itemData(index))
        self.settings.timebase_s = value
        self.traces.set_timebase(value)

    def _on_mode(self, index: int) -> None:
        self.settings.scroll_mode = index == 1
        self.traces.set_scroll_mode(index == 1)

    def _show_channel_gain(self, channel: int) -> None:
        own = self.traces.channel_overrides().get(channel)
        self.channel_gain_box.setCurrentIndex(max(0, self.channel_gain_box.findData(own))
                                              if own is not None else 0)

    def _on_channel_gain(self, index: int) -> None:
        channel = self.channel_box.currentIndex()
        value = self.channel_gain_box.itemData(index)
        self.traces.set_channel_sensitivity(channel, value)
        label = self.montage.channels[channel].label
        if value is None:
            self.settings.channel_sensitivity_uv.pop(label, None)
        else:
            self.settings.channel_sensitivity_uv[label] = float(value)

    def _on_mute(self, muted: bool) -> None:
        self.settings.alarm_muted = bool(muted)
        self.sounder.muted = bool(muted)
        self.mute_button.setText("Sound muted" if muted else "Sound on")
        self.mute_button.setStyleSheet("background: #5a4a12;" if muted else "")

    def _on_volume(self, value: int) -> None:
        self.settings.alarm_volume = value / 100
        self.sounder.volume = value / 100

    def apply_band(self) -> bool:
        """Apply the band of the spin boxes (``session.set_band``); errors go to the status
        bar. Returns True if the session took it."""
        low, high = float(self.filter_low.value()), float(self.filter_high.value())
        try:
            self.session.set_band(low, high)
        except (ValueError, AttributeError) as exc:
            self.statusBar().showMessage(f"Filter band not changed: {exc}", 8000)
            return False
        self.settings.band_low_hz, self.settings.band_high_hz = low, high
        self.statusBar().showMessage(f"Filter band {low:g}–{high:g} Hz", 4000)
        return True

    def _store_presets(self) -> None:
        self.settings.marker_presets = [e.text() for e in self.preset_edits]

    def _focus_marker(self) -> None:
        self.marker_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _leave_marker(self) -> None:
        self.marker_edit.clear()
        self.traces.setFocus()

    def _on_marker_entered(self) -> None:
        text = self.marker_edit.text().strip()
        if text:
            self.add_marker(text)
        self._leave_marker()

    # --- actions -------------------------------------------------------------------------------------

    def add_marker(self, text: str) -> Event:
        """Append a marker at the newest acquired sample to ``session.events``."""
        index = int(self.session.raw.published)
        event = Event("marker", index, index, (), {"text": text})
        self.session.events.append(event)
        seconds = self.session.info.samples_to_seconds(index)
        self.statusBar().showMessage(f"Marker “{text}” at {seconds:.1f} s", 5000)
        self.marker_added.emit(text, index)
        return event

    def acknowledge(self, key: str | None = None) -> None:
        """Acknowledge one tile's alarm (``key``) or all (None)."""
        alarms = getattr(self.session, "alarms", None)
        if alarms is not None:
            alarms.acknowledge(key)
            self.refresh_tiles()
        self.statusBar().showMessage("Alarms acknowledged" if key is None
                                     else f"{key} acknowledged", 3000)

    def silence(self) -> None:
        """Silence alarm sounds for ``settings.silence_s`` seconds."""
        alarms = getattr(self.session, "alarms", None)
        if alarms is not None:
            alarms.silence(self.settings.silence_s)
            self.refresh_tiles()
        self.statusBar().showMessage(f"Alarm sound silenced for {self.settings.silence_s:g} s",
                                     3000)

    def toggle_alarm_window(self) -> None:
        """Show the alarm panel alone in its own window (full screen on a second monitor)."""
        if self.alarm_window is not None:
            self.alarm_window.close()
            return
        self.alarm_window = AlarmWindow(self._keys, f"{self.montage.name} · "
                                                    f"{len(self._keys)} roots")
        self.alarm_window.panel.acknowledge_requested.connect(self.acknowledge)
        self.alarm_window.closed.connect(self._alarm_window_closed)
        self.alarm_window.show_on_best_screen()
        self.refresh_tiles()

    def _alarm_window_closed(self) -> None:
        self.alarm_window = None

    def current_tiles(self) -> list[TileState]:
        """The alarm engine's snapshot, or all-quiet tiles without an engine."""
        alarms = getattr(self.session, "alarms", None)
        return alarms.tiles() if alarms is not None else quiet_tiles(self._keys)

    def refresh_tiles(self) -> None:
        """Pull the alarm snapshot into the docked panel and the surgeon window."""
        tiles = self.current_tiles()
        self.alarm_panel.update_tiles(tiles)
        if self.alarm_window is not None:
            self.alarm_window.panel.update_tiles(tiles)
        self.refresh_audio()

    def refresh_audio(self) -> None:
        """Hand the sounder the priority that should sound now (only when it changes)."""
        alarms = getattr(self.session, "alarms", None)
        priority = getattr(alarms, "audible", None) if alarms is not None else None
        if priority != self._sounding:
            self._sounding = priority
            self.sounder.set_priority(priority)

    def refresh_status(self) -> None:
        """Update the status bar from ``session.status()``."""
        st = self.session.status()
        lbl = self.status_labels
        lbl["source"].setText(f"{st.source} · {st.channels} ch")
        lbl["rate"].setText(f"{st.rate_hz:g} Hz")
        lbl["samples"].setText(f"t {st.elapsed_s:,.1f} s · {st.samples:,} samples")
        lbl["dropped"].setText(f"dropped {st.dropped}  gaps {st.gaps}")
        lbl["overruns"].setText(f"overruns {st.overruns}")
        lbl["overruns"].setStyleSheet("color: #ff6b6b;" if st.overruns else "")
        recorder = getattr(self.session, "recorder", None)
        rec = recorder.status() if recorder is not None else None
        on = rec is not None and rec.state in ("recording", "low_disk")
        if on:
            lbl["recording"].setText(f"● REC {_bytes_text(rec.file_size_bytes)}")
        elif rec is not None and rec.state == "failed":
            lbl["recording"].setText("REC failed")
        else:
            lbl["recording"].setText("REC off" if hasattr(self.session, "start_recording")
                                     else "REC n/a")
        lbl["recording"].setStyleSheet("color: #ff5252; font-weight: bold;"
                                       if on or (rec is not None and rec.state == "failed")
                                       else "")
        free = rec.free_bytes if rec is not None and rec.free_bytes >= 0 else None
        if free is None:
            try:
                free = shutil.disk_usage(Path(rec.path).parent if rec else Path.home()).free
            except OSError:
                free = None
        lbl["disk"].setText("disk ?" if free is None else f"disk {_bytes_text(free)} free")
        lbl["audio"].setText(getattr(self.sounder, "notice", "") or "")
        lbl["error"].setText(st.error or "")

    # --- lifetime ---------------------------------------------------------------------------------------

    def save_settings(self) -> None:
        """Write the settings file (window layout included)."""
        self._store_presets()
        self.settings.geometry = bytes(self.saveGeometry().toBase64().data()).decode()
        self.settings.window_state = bytes(self.saveState().toBase64().data()).decode()
        try:
            self.settings.save(self.settings_path)
        except OSError as exc:
            self.statusBar().showMessage(f"settings not saved: {exc}", 5000)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.traces.stop()
        self._tile_timer.stop()
        self._status_timer.stop()
        self.sounder.set_priority(None)
        self.sounder.close()
        if self.triggered_view is not None:
            self.triggered_view.stop()
        if self.alarm_window is not None:
            self.alarm_window.close()
        self.save_settings()
        super().closeEvent(event)

