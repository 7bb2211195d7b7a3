"""The injection window: a thin Qt shell over :class:`~ionm_station.injection.InjectionGuide`.

One large trace of the needle channel (the clean ring's last 5 s, min/max per pixel column),
the big ACTIVE / INSERTION / REST indicator, EMG audio volume and mute (the one
:class:`~ionm_station.audio_out.AudioOutput`, fed by the supervised audio worker), stimulation
in ±1.0 / ±0.1 mA steps with the response-vs-current plot and a motor-point search, and the
injection log form. A 50 ms timer polls the guide and redraws; nothing here decides anything.
"""

from __future__ import annotations

import signal
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ionm_station.audio import AlarmSounder
from ionm_station.audio_out import AudioOutput
from ionm_station.gui import theme
from ionm_station.gui.app import ensure_app
from ionm_station.gui.decimate import minmax_columns
from ionm_station.injection import InjectionGuide

#: Seconds of trace shown.
TRACE_S = 5.0
#: Trace range (µV, ±).
TRACE_RANGE_UV = 300.0
REFRESH_MS = 50
STATE_STYLE = {
    "active": ("ACTIVE", "#1b5e20", "#e8f5e9"),
    "insertion": ("INSERTION", "#8a5a00", "#fff3e0"),
    "rest": ("REST", "#263238", "#cfd8dc"),
    "learning": ("LEARNING REST…", "#263238", "#90a4ae"),
}


class InjectionWindow(QMainWindow):
    """The injection mode's window over a session and its guide.

    Args:
        session: the running (or about to run) session.
        guide: the injection guide on that session.
        output: the audio output (default: the sound card, if there is one).
    """

    closed = Signal()

    def __init__(self, session: Any, guide: InjectionGuide,
                 output: AudioOutput | None = None) -> None:
        ensure_app()  # the station's dark theme, also under pytest-qt
        super().__init__()
        self.session = session
        self.guide = guide
        self.output = output if output is not None else AudioOutput()
        self.sounder = AlarmSounder(output=self.output)
        session.supervise(self.sounder)  # audio that dies shows as AUDIO OFF
        self.setWindowTitle(f"IONM Station — injection guidance — {guide.label} "
                            f"({guide.muscle}, {guide.side})")
        self._shown_sites = 0
        self._shown_curve = -1
        central = QWidget()
        self.setCentralWidget(central)
        root = QHBoxLayout(central)
        root.addWidget(self._trace_panel(), 3)
        root.addWidget(self._side_panel(), 1)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(REFRESH_MS)

    # --- layout ---

    def _trace_panel(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        self.indicator = QLabel("LEARNING REST…")
        self.indicator.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = QFont()
        font.setPointSize(40)
        font.setBold(True)
        self.indicator.setFont(font)
        self.indicator.setMinimumHeight(120)
        lay.addWidget(self.indicator)
        self.level = QLabel("")
        self.level.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.level)
        self.plot = pg.PlotWidget(background=theme.BACKGROUND)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setYRange(-TRACE_RANGE_UV, TRACE_RANGE_UV, padding=0)
        self.plot.setXRange(-TRACE_S, 0, padding=0)
        self.plot.setLabel("left", "µV")
        self.plot.setLabel("bottom", "s")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.curve = self.plot.plot(pen=pg.mkPen(theme.TRACE_LEFT, width=1), connect="finite")
        self.curve.setDownsampling(auto=False)
        lay.addWidget(self.plot, 1)
        return box

    def _side_panel(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.addWidget(self._audio_group())
        lay.addWidget(self._stim_group(), 3)
        lay.addWidget(self._log_group(), 2)
        return box

    def _audio_group(self) -> QGroupBox:
        g = QGroupBox("EMG audio")
        lay = QVBoxLayout(g)
        row = QHBoxLayout()
        self.mute_button = QPushButton("Mute")
        self.mute_button.setCheckable(True)
        self.mute_button.toggled.connect(self._mute)
        self.volume_slider = QSlider(Qt.Orientation.Horizontal)
        self.volume_slider.setRange(0, 100)
        self.volume_slider.setValue(round(self.output.emg_volume * 100))
        self.volume_slider.valueChanged.connect(self._volume)
        row.addWidget(QLabel("Volume"))
        row.addWidget(self.volume_slider, 1)
        row.addWidget(self.mute_button)
        lay.addLayout(row)
        self.audio_notice = QLabel(self.output.notice)
        self.audio_notice.setStyleSheet(f"color: {theme.AMBER};")
        self.audio_notice.setVisible(bool(self.output.notice))
        lay.addWidget(self.audio_notice)
        return g

    def _stim_group(self) -> QGroupBox:
        g = QGroupBox(f"Stimulation — motor point ({self.guide.target})")
        lay = QVBoxLayout(g)
        self.current_label = QLabel()
        font = QFont()
        font.setPointSize(20)
        font.setBold(True)
        self.current_label.setFont(font)
        self.current_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.current_label)
        steps = QGridLayout()
        self.step_buttons = {}
        for col, delta in enumerate((-1.0, -0.1, 0.1, 1.0)):
            b = QPushButton(f"{delta:+.1f} mA")
            b.clicked.connect(lambda _=False, d=delta: self._step(d))
            steps.addWidget(b, 0, col)
            self.step_buttons[delta] = b
        self.stim_button = QPushButton("Stimulate")
        self.stim_button.clicked.connect(lambda: self.guide.stimulate())
        self.search_button = QPushButton("Find motor point")
        self.search_button.clicked.connect(lambda: self.guide.start_search())
        steps.addWidget(self.stim_button, 1, 0, 1, 2)
        steps.addWidget(self.search_button, 1, 2, 1, 2)
        lay.addLayout(steps)
        self.motor_point = QLabel("motor point: —")
        lay.addWidget(self.motor_point)
        self.response_plot = pg.PlotWidget(background=theme.PANEL)
        self.response_plot.setMouseEnabled(False, False)
        self.response_plot.hideButtons()
        self.response_plot.setLabel("bottom", "current (mA)")
        self.response_plot.setLabel("left", "twitch (µV p-p)")
        self.response_plot.setXRange(0, 5, padding=0.02)
        self.response_plot.showGrid(x=True, y=True, alpha=0.2)
        self.points = pg.ScatterPlotItem(size=9)
        self.response_plot.addItem(self.points)
        self.criterion = pg.InfiniteLine(pos=50.0, angle=0,
                                         pen=pg.mkPen(theme.TEXT_DIM, style=Qt.PenStyle.DashLine))
        self.response_plot.addItem(self.criterion)
        self.response_plot.setMinimumHeight(200)
        lay.addWidget(self.response_plot, 1)
        self._show_current()
        return g

    def _log_group(self) -> QGroupBox:
        g = QGroupBox("Injection log")
        lay = QGridLayout(g)
        self.muscle_edit = QLineEdit(self.guide.muscle)
        self.side_box = QComboBox()
        self.side_box.addItems(["L", "R", ""])
        self.side_box.setCurrentText(self.guide.side)
        self.dose_spin = QDoubleSpinBox()
        self.dose_spin.setRange(0.5, 1000.0)
        self.dose_spin.setDecimals(1)
        self.dose_spin.setValue(25.0)
        self.dose_spin.setSuffix(" U")
        self.log_button = QPushButton("Log injection here")
        self.log_button.clicked.connect(self.log_site)
        self.sites = QListWidget()
        self.sites.setWordWrap(True)
        self.log_error = QLabel("")
        self.log_error.setStyleSheet(f"color: {theme.AMBER};")
        lay.addWidget(QLabel("Muscle"), 0, 0)
        lay.addWidget(self.muscle_edit, 0, 1, 1, 3)
        lay.addWidget(QLabel("Side"), 1, 0)
        lay.addWidget(self.side_box, 1, 1)
        lay.addWidget(QLabel("Dose"), 1, 2)
        lay.addWidget(self.dose_spin, 1, 3)
        lay.addWidget(self.log_button, 2, 0, 1, 4)
        lay.addWidget(self.log_error, 3, 0, 1, 4)
        lay.addWidget(self.sites, 4, 0, 1, 4)
        return g

    # --- actions ---

    def _mute(self, muted: bool) -> None:
        self.output.emg_muted = bool(muted)
        self.mute_button.setText("Muted" if muted else "Mute")

    def _volume(self, value: int) -> None:
        self.output.emg_volume = value / 100

    def _step(self, delta: float) -> None:
        self.guide.step_current(delta)
        self._show_current()

    def _show_current(self) -> None:
        self.current_label.setText(f"{self.guide.current_ma:.1f} mA")

    def log_site(self) -> None:
        """Log an injection now with the form's muscle, side and dose."""
        try:
            self.guide.log_site(self.dose_spin.value(), self.muscle_edit.text(),
                                self.side_box.currentText())
        except ValueError as exc:
            self.log_error.setText(str(exc))
            return
        self.log_error.setText("")

    def start_audio(self) -> None:
        """Play the guided channel (the clean ring) through the output."""
        s = self.session
        self.sounder.listen(s.clean, self.guide.channel, s.info.sample_rate_hz)

    # --- refresh ---

    def refresh(self) -> None:
        self.guide.poll()
        self._draw_trace()
        ind = self.guide.indicator
        text, bg, fg = STATE_STYLE.get(ind.state, STATE_STYLE["rest"])
        self.indicator.setText(text)
        self.indicator.setStyleSheet(f"background: {bg}; color: {fg}; border-radius: 8px;")
        rest = ind.rest_uv
        self.level.setText(f"envelope {ind.envelope_uv:.1f} µV RMS · rest "
                           + ("—" if not np.isfinite(rest) else f"{rest:.1f} µV RMS"))
        if len(self.guide.curve) != self._shown_curve:
            self._draw_curve()
        while self._shown_sites < len(self.guide.sites):
            s = self.guide.sites[self._shown_sites]
            self.sites.addItem(f"{s.index / self.guide.fs:.1f} s · {s.muscle} {s.side} · "
                               f"{s.dose_units:g} U · {s.state}, {s.rms_uv:.1f} µV RMS")
            self._shown_sites += 1
        notice = self.sounder.notice or self.output.notice
        self.audio_notice.setText(notice)
        self.audio_notice.setVisible(bool(notice))

    def _draw_trace(self) -> None:
        fs = self.guide.fs
        n = round(TRACE_S * fs)
        got = self.session.clean.latest(n)
        if got.n_samples == 0:
            return
        width = max(100, self.plot.width())
        x, y = minmax_columns(got.data[:, self.guide.channel:self.guide.channel + 1], width)
        t = (x + got.start - self.session.clean.published) / fs
        self.curve.setData(t, y[:, 0])

    def _draw_curve(self) -> None:
        curve = self.guide.curve
        self._shown_curve = len(curve)
        if curve:
            xs = [c for c, _, _ in curve]
            ys = [r for _, r, _ in curve]
            brushes = [pg.mkBrush("#66bb6a" if t else "#78909c") for _, _, t in curve]
            self.points.setData(xs, ys, brush=brushes, pen=None)
            self.response_plot.setXRange(0, max(5.0, max(xs) + 0.5), padding=0.02)
        s = self.guide.search
        if s is not None and s.finished:
            self.motor_point.setText(f"motor point: {s.threshold_ma} mA" if s.threshold_ma
                                     else "motor point: no twitch up to the limit")
        elif s is not None:
            self.motor_point.setText("motor point: searching…")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()
        self.sounder.close()
        self.output.close()
        self.closed.emit()
        super().closeEvent(event)


def run_injection_window(session: Any, guide: InjectionGuide) -> int:
    """Open the injection window, start the session, run until the window closes (or the
    session's ``--seconds`` end); the session is always stopped."""
    app = ensure_app()
    window = InjectionWindow(session, guide)
    previous = {s: signal.signal(s, lambda *_: window.close())
                for s in (signal.SIGINT, signal.SIGTERM)}
    done = QTimer()
    done.timeout.connect(lambda: session.finished and window.close())
    done.start(200)
    window.closed.connect(app.quit)
    try:
        session.start()
        window.start_audio()
        window.resize(1600, 1000)
        window.show()
        app.exec()
    finally:
        done.stop()
        session.stop()
        window.closed.disconnect(app.quit)
        window.deleteLater()
        app.processEvents()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 1 if session.status().error else 0
