"""MainWindow: a thin shell over a :class:`~ionm_station.session.Session`.

It composes the panels — traces (:mod:`.traces`), alarm tiles (:mod:`.alarm_panel`), controls
toolbar (:mod:`.controls`), Setup dock (:mod:`.setup_panel`), Triggered EMG dock
(:mod:`.triggered_view`), Events dock (:mod:`.case_log_view`: the event log, baseline check,
case report), Trends dock (:mod:`.trends_view`), replay toolbar (:mod:`.replay_controls`),
status bar (:mod:`.status_bar`) — and runs the timers. Every :data:`TILES_MS` it reads
:meth:`Session.state` once and shows it: tiles (technical alarms already laid over), the
sound, the trace banner and raw fallback (a state that cannot be read shows as NOT MONITORING,
never as the last picture); every :data:`STATUS_MS` the status bar and the Setup values. It
acts only through the session's commands (acknowledge, silence, marker, band, threshold, hunt,
stimulate) and recording calls; a refused command is a status-bar message.

The window never starts or stops the session (see :func:`ionm_station.gui.app.run_gui`) and
never opens a modal dialog.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

from ionm_station.audio import AlarmSounder
from ionm_station.errors import IonmError
from ionm_station.gui.alarm_panel import AlarmPanel, AlarmWindow
from ionm_station.gui.case_log_view import CaseLogView
from ionm_station.gui.controls import ControlBar, step_combo
from ionm_station.gui.replay_controls import ReplayControls
from ionm_station.gui.settings import (
    FREE_TEXT_SUFFIX,
    N_PRESETS,
    GuiSettings,
    default_settings_path,
)
from ionm_station.gui.setup_panel import SetupPanel
from ionm_station.gui.status_bar import StationStatusBar
from ionm_station.gui.trace_banner import trace_notice
from ionm_station.gui.traces import TraceView
from ionm_station.gui.trends_view import TrendsView
from ionm_station.gui.triggered_view import TriggeredView
from ionm_station.pipeline.state import StationState
from ionm_station.pipeline.technical import TechnicalAlarm, overlay
from ionm_station.recording import CaseMetadata
from ionm_station.session import Session

#: Poll periods (ms) of the state (tiles, sound, trace banner) and of the status bar.
TILES_MS = 100
STATUS_MS = 500
#: How long action confirmations stay in the status bar (ms).
MESSAGE_MS = 5000
#: Narrowest docked alarm panel (px): two tiles wide enough for a 150-character reason;
#: width of the Setup / Triggered EMG docks at first start (px).
ALARM_PANEL_MIN_WIDTH = 380
SETUP_WIDTH = 300
#: Where the record button puts new recordings.
RECORDINGS_DIR = Path.home() / "ionm-recordings"


class MainWindow(QMainWindow):
    """The monitoring window.

    Args:
        session: the session shown (started or not).
        settings_path: JSON settings file; default ``~/.config/ionm-station/gui.json``.
        sounder: plays alarm tones (default: a new :class:`~ionm_station.audio.AlarmSounder`).
        recordings_dir: where the record button creates recordings.
        case: case metadata (patient id, procedure, operator) stored in the recordings the
            record button starts, each with its own start time.
        profile_doc: the hardware profile stored in those recordings.

    Signals:
        marker_added(str, int): a marker was submitted (text, sample index).
        closed(): the window was closed.
    """

    marker_added = Signal(str, int)
    closed = Signal()

    def __init__(self, session: Session, settings_path: Path | None = None,
                 sounder: AlarmSounder | None = None,
                 recordings_dir: Path = RECORDINGS_DIR, case: CaseMetadata | None = None,
                 profile_doc: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.session = session
        self.case = case or CaseMetadata()
        self.profile_doc = profile_doc
        self.montage = session.montage
        self.recordings_dir = recordings_dir
        self.settings_path = settings_path or default_settings_path()
        self.settings = GuiSettings.load(self.settings_path)
        self.sounder = sounder if sounder is not None else AlarmSounder(
            self.settings.alarm_volume, self.settings.alarm_muted)
        session.supervise(self.sounder)  # a sound that dies must show, not fall silent
        self._sounding: str | None = None
        self.state: StationState = session.state()
        self.alarm_window: AlarmWindow | None = None
        self.setWindowTitle(f"IONM Station — {self.montage.name} — research use only")

        self.traces = TraceView(session.clean, session.raw, self.montage,
                                session.info.sample_rate_hz, session.events)
        self.setCentralWidget(self.traces)
        self.status = StationStatusBar(session.events)
        self.setStatusBar(self.status)
        self.alarm_panel = AlarmPanel(self.montage)
        self.alarm_panel.acknowledge_requested.connect(self.acknowledge)
        self.alarm_panel.setMinimumWidth(ALARM_PANEL_MIN_WIDTH)
        alarm_dock = self._dock("Alarms", "alarms", self.alarm_panel,
                                Qt.DockWidgetArea.RightDockWidgetArea)
        self.setup = SetupPanel(session, self.traces, self.settings)
        self.setup.message.connect(self.say)
        setup_dock = self._dock("Setup", "setup", self.setup, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.triggered_view = TriggeredView(session)
        self.triggered_view.message.connect(self.say)
        self.triggered_dock = self._dock("Triggered EMG", "triggered", self.triggered_view,
                                         Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(setup_dock, self.triggered_dock)
        self.case_log = CaseLogView(session, self.traces)
        self.case_log.message.connect(self.say)
        self.events_dock = self._dock("Events", "events", self.case_log,
                                      Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(setup_dock, self.events_dock)
        self.trends = TrendsView(session)
        self.trends_dock = self._dock("Trends", "trends", self.trends,
                                      Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(setup_dock, self.trends_dock)
        setup_dock.raise_()
        self.controls = ControlBar(self.traces, self.sounder, self.settings, session.can_record,
                                   self.montage.labels)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.controls)
        self.controls.acknowledge_requested.connect(lambda: self.acknowledge(None))
        self.controls.silence_requested.connect(self.silence)
        self.controls.marker_entered.connect(self.add_marker)
        self.controls.marker_entered.connect(lambda _: self.traces.setFocus())
        self.controls.record_toggled.connect(self.toggle_recording)
        self.controls.surgeon_requested.connect(self.toggle_alarm_window)
        self.controls.listen_changed.connect(self._listen_to)
        kept = self.controls.listen_channel()  # the channel the settings kept, if any
        if kept is not None:
            self._listen_to(kept)
        self.replay_controls: ReplayControls | None = None
        if session.replay is not None:
            self.replay_controls = ReplayControls(session.replay, self.traces, self)
            self.addToolBar(Qt.ToolBarArea.BottomToolBarArea, self.replay_controls)
        self._build_shortcuts()
        self._restore_layout([setup_dock, alarm_dock])
        self.setup.restore_band()

        self._tile_timer = QTimer(self)
        self._tile_timer.setInterval(TILES_MS)
        self._tile_timer.timeout.connect(self.refresh_tiles)
        self._tile_timer.start()
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_MS)
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start()
        self.traces.start()
        self.refresh_status()

    # --- construction ----------------------------------------------------------------------

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

    def _build_shortcuts(self) -> None:
        c = self.controls
        ack_all = lambda: self.acknowledge(None)  # noqa: E731
        keys = [("A", ack_all), (Qt.Key.Key_Space, ack_all), ("S", self.silence),
                ("M", self._focus_marker), (Qt.Key.Key_F11, self.toggle_alarm_window),
                ("]", lambda: step_combo(c.sensitivity_box, 1)),
                ("[", lambda: step_combo(c.sensitivity_box, -1)),
                (".", lambda: step_combo(c.timebase_box, 1)),
                (",", lambda: step_combo(c.timebase_box, -1))]
        keys += [(getattr(Qt.Key, f"Key_F{i + 1}"), lambda i=i: self.preset_marker(i))
                 for i in range(N_PRESETS)]
        for seq, slot in keys:
            QShortcut(QKeySequence(seq), self).activated.connect(slot)
        escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), c.marker_edit)
        escape.setContext(Qt.ShortcutContext.WidgetShortcut)
        escape.activated.connect(self._leave_marker)

    def _restore_layout(self, side_docks: list[QDockWidget]) -> None:
        """The saved geometry and dock layout, or 1600×1000 with narrow side docks."""
        s = self.settings
        if s.geometry:
            self.restoreGeometry(QByteArray.fromBase64(s.geometry.encode()))
        else:
            self.resize(1600, 1000)
        if s.window_state:
            self.restoreState(QByteArray.fromBase64(s.window_state.encode()))
        else:
            self.resizeDocks(side_docks, [SETUP_WIDTH, ALARM_PANEL_MIN_WIDTH],
                             Qt.Orientation.Horizontal)

    def _focus_marker(self) -> None:
        self.controls.marker_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _leave_marker(self) -> None:
        self.controls.marker_edit.clear()
        self.traces.setFocus()

    # --- acting ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A message in the status bar."""
        self.status.showMessage(text, MESSAGE_MS)

    def add_marker(self, text: str) -> None:
        """Submit a marker at the newest acquired sample."""
        try:
            index = self.session.add_marker(text)
        except ValueError as exc:
            self.say(f"Marker not added: {exc}")
            return
        self.say(f"Marker “{text}” at {self.session.info.samples_to_seconds(index):.1f} s")
        self.marker_added.emit(text, index)

    def preset_marker(self, i: int) -> None:
        """Preset ``i`` (F1 = 0): added at once, or one ending in ':' ("Surgeon informed:")
        put in the marker field for the free text that follows (Enter adds it)."""
        text = self.setup.preset(i).strip()
        if not text.endswith(FREE_TEXT_SUFFIX):
            self.add_marker(text)
            return
        self._focus_marker()  # focus first: focusing by shortcut selects the text, typing kills it
        self.controls.marker_edit.setText(f"{text} ")
        self.say(f"{text} type what was said, Enter adds the marker")

    def acknowledge(self, key: str | None = None) -> None:
        """Acknowledge one tile's latched alarm (``key``) or all (None), in the operator's
        name when the case has one."""
        try:
            self.session.acknowledge(key, self.case.operator)
        except ValueError as exc:
            self.say(f"Not acknowledged: {exc}")
            return
        self.say("Alarms acknowledged" if key is None else f"{key} acknowledged")

    def silence(self) -> None:
        """Silence alarm sound for ``settings.silence_s`` seconds."""
        try:
            self.session.silence(self.settings.silence_s)
        except ValueError as exc:
            self.say(f"Not silenced: {exc}")
            return
        self.say(f"Alarm sound silenced for {self.settings.silence_s:g} s")

    def toggle_recording(self, on: bool) -> None:
        """Start a new recording (named by date and time) or close the current one; a failure
        is said in the status bar, never in a dialog."""
        if not on:
            self.session.stop_recording()
            self.say("Recording closed")
            return
        now = datetime.now().astimezone()
        path = self.recordings_dir / f"case-{now:%Y%m%d-%H%M%S}.h5"
        case = dataclasses.replace(self.case, start_time=now.isoformat(timespec="seconds"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.session.start_recording(path, case, self.profile_doc)
        except (IonmError, OSError) as exc:
            self._show_recording(False)
            self.say(f"Recording not started: {exc}")
            return
        self.say(f"Recording to {path}")

    def listen(self, label: str | None) -> None:
        """Play the free-run EMG of the channel labelled ``label`` (its clean signal) through
        the sounder's output; None: stop (alarm tones play on). ValueError for a label the
        montage does not have."""
        self.controls.select_listen(label)

    def _listen_to(self, channel: int) -> None:
        if channel < 0:
            self.sounder.unlisten()
        else:
            self.sounder.listen(self.session.clean, channel, self.session.info.sample_rate_hz)
        self.refresh_status()  # the choice shows at once

    def toggle_alarm_window(self) -> None:
        """Show the alarm panel alone in its own window (full screen on a second monitor)."""
        if self.alarm_window is not None:
            self.alarm_window.close()
            return
        keys = self.montage.tile_keys()
        self.alarm_window = AlarmWindow(self.montage, f"{self.montage.name} · {len(keys)} tiles")
        self.alarm_window.panel.acknowledge_requested.connect(self.acknowledge)
        self.alarm_window.closed.connect(self._alarm_window_closed)
        self.alarm_window.panel.update_tiles(self.state.tiles)
        self.alarm_window.show_on_best_screen()

    def _alarm_window_closed(self) -> None:
        self.alarm_window = None

    # --- showing -----------------------------------------------------------------------------

    def read_state(self) -> StationState:
        """The station's state; if it cannot be read, the last one with NOT MONITORING laid
        over every tile — a window that cannot see must not go on showing green tiles."""
        try:
            return self.session.state()
        except Exception as exc:  # any failure must show on the tiles, not freeze them
            blind = TechnicalAlarm("not_monitoring", "warning", "the window cannot read the "
                                   f"station's state ({type(exc).__name__}: {exc})")
            return dataclasses.replace(self.state, tiles=tuple(overlay(list(self.state.tiles),
                                                                       [blind])),
                                       technical=(blind,), audible="warning", monitoring=False)

    def refresh_tiles(self) -> StationState:
        """Read the station's state and show it: tiles, sound, trace banner and raw fallback."""
        self.state = state = self.read_state()
        self.alarm_panel.update_tiles(state.tiles)
        if self.alarm_window is not None:
            self.alarm_window.panel.update_tiles(state.tiles)
        if state.audible != self._sounding:
            self._sounding = state.audible
            self.sounder.set_priority(state.audible)
        self.traces.show_notice(trace_notice(state))
        self.traces.set_open_artifacts(state.processing.open_spans if state.monitoring else ())
        if self.replay_controls is not None:
            self.replay_controls.refresh()
        return state

    def refresh_status(self) -> None:
        """Status bar, the record button (a recording that failed is not "on") and the Setup
        dock's band and thresholds, from the last state."""
        rec = self.session.recording_status()
        channel = self.sounder.listening
        self.status.show_state(self.state, rec, self.session.can_record, self.sounder.notice,
                               "" if channel is None else self.montage.channels[channel].label)
        self._show_recording(rec is not None and rec.state in ("recording", "low_disk"))
        self.setup.show_state(self.state)

    def _show_recording(self, on: bool) -> None:
        """The record button's state, without asking for a change."""
        button = self.controls.record_button
        button.blockSignals(True)
        button.setChecked(on)
        button.blockSignals(False)

    # --- lifetime ----------------------------------------------------------------------------

    def save_settings(self) -> None:
        """Write the settings file (window layout included)."""
        self.settings.geometry = bytes(self.saveGeometry().toBase64().data()).decode()
        self.settings.window_state = bytes(self.saveState().toBase64().data()).decode()
        try:
            self.settings.save(self.settings_path)
        except OSError as exc:
            self.say(f"settings not saved: {exc}")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.traces.stop()
        self._tile_timer.stop()
        self._status_timer.stop()
        self.sounder.set_priority(None)
        self.sounder.close()
        self.triggered_view.stop()
        self.case_log.stop()
        self.trends.stop()
        if self.alarm_window is not None:
            self.alarm_window.close()
        self.save_settings()
        super().closeEvent(event)
        self.closed.emit()
