"""Biofeedback windows: the patient's full-screen display and the clinician's view beside it.

A thin shell over :class:`~ionm_station.therapy.live.BiofeedbackLive`: a timer pulls the clean
ring into the core (:meth:`BiofeedbackLive.poll`) and both views draw what the core says — the
display envelope, the band, the cue and the trial, the scores. Nothing is measured here.

* :class:`PatientDisplay` — for a second screen, readable from 3 m: one large vertical bar of
  the RMS envelope (green in the band, amber outside), the target band as a lit zone with its
  edges, the cue WORK / REST in letters a sixth of the screen high, the seconds left in the
  phase and the trial counter.
* :class:`ClinicianView` — the envelope trace of the last 20 s with the band, the settings
  (protocol, smoothing, MVC, band) and a table of the per-trial scores, and the session scores.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ionm_station.gui import theme
from ionm_station.therapy.live import BiofeedbackLive

#: Seconds of envelope the clinician's trace shows.
TRACE_S = 20.0
#: Envelope points kept per second for the trace (the display envelope is smooth).
TRACE_RATE_HZ = 50.0
REWARD = "#2fd27a"
OUTSIDE = "#ffb347"
BAND_FILL = QColor(47, 210, 122, 60)
CUE_COLOURS = {"WORK": "#ffd84d", "REST": "#5ec8ff", "WAIT": "#7b8794", "DONE": "#7b8794"}


class PatientDisplay(QWidget):
    """The patient's display (see the module text); :meth:`show_state` sets what it draws."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Biofeedback — patient display")
        self.setMinimumSize(640, 400)
        self.level_uv: float | None = None
        self.scale_uv = 100.0
        self.band_uv: tuple[float, float] | None = None
        self.reward = False
        self.cue = "WAIT"
        self.left_s: float | None = None
        self.trial_text = ""

    def show_state(self, level_uv: float | None, scale_uv: float,
                   band_uv: tuple[float, float] | None, reward: bool, cue: str,
                   left_s: float | None, trial_text: str) -> None:
        self.level_uv, self.scale_uv, self.band_uv = level_uv, max(scale_uv, 1e-6), band_uv
        self.reward, self.cue, self.left_s, self.trial_text = reward, cue, left_s, trial_text
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), QColor(theme.BACKGROUND))
        # the bar: left 40 % of the width
        margin = h * 0.06
        bar = QRectF(w * 0.08, margin, w * 0.30, h - 2 * margin)

        def y_of(v: float) -> float:
            return bar.bottom() - min(max(v / self.scale_uv, 0.0), 1.0) * bar.height()

        p.fillRect(bar, QColor(theme.PANEL))
        if self.band_uv is not None:
            top, bottom = y_of(self.band_uv[1]), y_of(self.band_uv[0])
            zone = QRectF(bar.left() - w * 0.03, top, bar.width() + w * 0.06, bottom - top)
            p.fillRect(zone, BAND_FILL)
            p.setPen(QPen(QColor(REWARD), max(3.0, h * 0.008)))
            p.drawLine(zone.topLeft(), zone.topRight())
            p.drawLine(zone.bottomLeft(), zone.bottomRight())
        if self.level_uv is not None and np.isfinite(self.level_uv):
            y = y_of(self.level_uv)
            fill = QRectF(bar.left() + bar.width() * 0.15, y, bar.width() * 0.7, bar.bottom() - y)
            p.fillRect(fill, QColor(REWARD if self.reward else OUTSIDE))
        p.setPen(QPen(QColor(theme.TEXT_DIM), 2))
        p.drawRect(bar)
        # the cue, the time left, the trial
        right = QRectF(w * 0.44, margin, w * 0.54, h - 2 * margin)
        font = QFont(self.font())
        font.setBold(True)
        font.setPixelSize(max(24, int(h * 0.2)))
        p.setFont(font)
        p.setPen(QColor(CUE_COLOURS.get(self.cue, theme.TEXT)))
        p.drawText(QRectF(right.left(), right.top(), right.width(), right.height() * 0.45),
                   Qt.AlignmentFlag.AlignCenter, self.cue)
        font.setPixelSize(max(16, int(h * 0.1)))
        font.setBold(False)
        p.setFont(font)
        p.setPen(QColor(theme.TEXT))
        if self.left_s is not None:
            p.drawText(QRectF(right.left(), right.top() + right.height() * 0.45, right.width(),
                              right.height() * 0.25), Qt.AlignmentFlag.AlignCenter,
                       f"{max(0.0, self.left_s):.0f} s")
        p.drawText(QRectF(right.left(), right.top() + right.height() * 0.7, right.width(),
                          right.height() * 0.3), Qt.AlignmentFlag.AlignCenter, self.trial_text)
        p.end()


class ClinicianView(QWidget):
    """Trace with the band, settings and per-trial scores."""

    COLUMNS = ("trial", "onset ms", "release ms", "in target %", "reward %", "MF Hz", "mean µV")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.settings = QLabel()
        self.settings.setWordWrap(True)
        layout.addWidget(self.settings)
        self.plot = pg.PlotWidget(background=theme.BACKGROUND)
        self.plot.setLabel("left", "RMS", units="µV")
        self.plot.setLabel("bottom", "time", units="s")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.curve = self.plot.plot(pen=pg.mkPen(theme.TRACE_RIGHT, width=2), connect="finite")
        self.band_lo = pg.InfiniteLine(angle=0, pen=pg.mkPen(REWARD, width=1.5))
        self.band_hi = pg.InfiniteLine(angle=0, pen=pg.mkPen(REWARD, width=1.5))
        for line in (self.band_lo, self.band_hi):
            line.setVisible(False)
            self.plot.addItem(line)
        layout.addWidget(self.plot, 3)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 2)
        self.scores = QLabel()
        self.scores.setWordWrap(True)
        layout.addWidget(self.scores)

    def set_trials(self, trials: list) -> None:
        def cell(v: float | None, scale: float = 1.0, digits: int = 0) -> str:
            return "—" if v is None else f"{v * scale:.{digits}f}"

        self.table.setRowCount(len(trials))
        for r, t in enumerate(trials):
            values = (f"{'MVC ' if t.kind == 'mvc' else ''}{t.number}", cell(t.onset_s, 1000),
                      cell(t.release_s, 1000), cell(t.time_in_target, 100),
                      cell(t.reward_fraction, 100), cell(t.median_frequency_hz, 1, 1),
                      cell(t.work_mean_uv))
            for c, v in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(v))


class BiofeedbackWindow(QMainWindow):
    """The clinician's window; it owns the patient display (a second top-level window).

    Args:
        live: the biofeedback session (its session not yet started; :meth:`start` starts it).
        tone: a :class:`~ionm_station.therapy.reward.RewardTone` (None: no sound).
        patient_screen: index of the screen for the patient display (full screen there when
            it exists; otherwise a normal window).
    """

    def __init__(self, live: BiofeedbackLive, tone=None, patient_screen: int = 1) -> None:
        super().__init__()
        self.live = live
        self.tone = tone
        self.setWindowTitle(f"Biofeedback — {live.core.protocol.kind} — {live.label}")
        self.view = ClinicianView()
        self.setCentralWidget(self.view)
        self.patient = PatientDisplay()
        self._patient_screen = patient_screen
        fs = live.core.fs
        self._step = max(1, round(fs / TRACE_RATE_HZ))
        n = int(TRACE_S * TRACE_RATE_HZ)
        self._trace = np.full(n, np.nan)
        self._trace_t = np.full(n, np.nan)
        self._level: float | None = None
        self._reward = False
        self._index = 0
        self._seen_max = 1.0
        self._shown_trials = -1
        self.timer = QTimer(self)
        self.timer.setInterval(40)
        self.timer.timeout.connect(self.tick)
        self._show_settings()

    def start(self) -> None:
        """Start the session, show both windows, start the timer."""
        self.live.session.start()
        screens = QApplication.screens()
        if 0 <= self._patient_screen < len(screens) and len(screens) > 1:
            self.patient.setGeometry(screens[self._patient_screen].geometry())
            self.patient.showFullScreen()
        else:
            self.patient.resize(900, 560)
            self.patient.show()
        self.show()
        self.timer.start()

    def stop(self) -> None:
        """Stop the timer and the session, take the rest of the signal, score what is left."""
        self.timer.stop()
        self.live.session.stop()
        self.live.finish()
        self.refresh()

    def closeEvent(self, event) -> None:
        self.timer.stop()
        self.patient.close()
        super().closeEvent(event)

    def tick(self) -> None:
        """Pull new samples into the core and redraw (the timer's slot)."""
        block = self.live.poll()
        while block is not None:
            self._take(block)
            block = self.live.poll()
        if self.tone is not None:
            self.tone.update(self._reward, time.monotonic())
        self.refresh()

    def _take(self, block) -> None:
        env = block.envelope_uv
        finite = np.flatnonzero(np.isfinite(env))
        if len(finite):
            self._level = float(env[finite[-1]])
            self._seen_max = max(self._seen_max, float(np.nanmax(env)))
        self._reward = bool(block.reward[-1]) if len(block.reward) else False
        self._index = block.start + len(env)
        first = (-block.start) % self._step
        picked = env[first::self._step]
        t = (block.start + first + np.arange(len(picked)) * self._step) / self.live.core.fs
        k = len(picked)
        if k:
            self._trace = np.concatenate([self._trace[k:], picked])[-len(self._trace):]
            self._trace_t = np.concatenate([self._trace_t[k:], t])[-len(self._trace_t):]

    def scale_uv(self) -> float:
        """Full scale of the patient's bar: 100 % MVC (relaxation: 4 × the band's top), before
        the MVC is known 1.2 × the largest envelope so far."""
        core = self.live.core
        band = core.band_uv
        if core.mvc_uv is None or band is None:
            return 1.2 * self._seen_max
        if core.protocol.kind == "relaxation":
            return 4.0 * band[1]
        return core.mvc_uv

    def refresh(self) -> None:
        core = self.live.core
        cue, c = core.phase_at(self._index)
        left = None
        if c is not None:
            left = ((c.rest if cue == "WORK" else c.end) - self._index) / core.fs
        if c is None:
            trial = f"{len([t for t in core.trials if t.kind == 'trial'])} / {core.protocol.trials} done" \
                if cue == "DONE" else "get ready"
        elif c.kind == "mvc":
            trial = f"maximal effort {c.number} / {core.protocol.mvc_trials}"
        else:
            trial = f"trial {c.number} / {core.protocol.trials}"
        self.patient.show_state(self._level, self.scale_uv(), core.band_uv, self._reward, cue,
                                left, trial)
        self.view.curve.setData(self._trace_t, self._trace)
        band = core.band_uv
        for line, v in zip((self.view.band_lo, self.view.band_hi), band or (0, 0), strict=True):
            line.setVisible(band is not None)
            line.setValue(v)
        if len(core.trials) != self._shown_trials:
            self._shown_trials = len(core.trials)
            self.view.set_trials(core.trials)
            self._show_settings()

    def _show_settings(self) -> None:
        core = self.live.core
        pr = core.protocol
        band = core.band_uv
        self.view.settings.setText(
            f"<b>{pr.kind}</b> on {self.live.label} · smoothing {core.envelope.window_ms:.0f} ms · "
            f"{pr.mvc_trials} maximal efforts ({pr.mvc_work_s:g} s / {pr.mvc_rest_s:g} s) · "
            f"{pr.trials} trials ({pr.work_s:g} s work / {pr.rest_s:g} s rest) · band "
            f"{pr.band_pct[0]:g}–{pr.band_pct[1]:g} % MVC"
            + ("" if band is None else f" = {band[0]:.0f}–{band[1]:.0f} µV (MVC "
               f"{core.mvc_uv:.0f} µV)"))
        sc = core.scores()
        parts = [f"scored {sc.trials_scored} / {sc.trials_planned}"]
        if sc.time_in_target is not None:
            parts.append(f"time in target {sc.time_in_target * 100:.0f} %")
        if sc.onset_s_median is not None:
            parts.append(f"onset {sc.onset_s_median * 1000:.0f} ms")
        if sc.release_s_median is not None:
            parts.append(f"release {sc.release_s_median * 1000:.0f} ms")
        if sc.median_frequency_slope_hz_per_trial is not None:
            parts.append(f"MF slope {sc.median_frequency_slope_hz_per_trial:+.2f} Hz/trial")
        self.view.scores.setText("Session: " + " · ".join(parts))


def run_biofeedback_gui(live: BiofeedbackLive) -> int:
    """Open both windows, run until the clinician closes the window or the session ends."""
    from PySide6.QtCore import QEventLoop

    from ionm_station.audio_out import AudioOutput
    from ionm_station.gui.app import ensure_app
    from ionm_station.therapy.reward import RewardTone

    app = ensure_app()
    output = AudioOutput("auto")
    output.open()
    if output.notice:
        print(f"ionm-station: {output.notice}", flush=True)
    tone = RewardTone(output) if output.running else None
    window = BiofeedbackWindow(live, tone)
    loop = QEventLoop()
    done = QTimer()
    done.setInterval(200)
    done.timeout.connect(lambda: loop.quit() if live.session.finished or not window.isVisible()
                         else None)
    window.start()
    done.start()
    try:
        loop.exec()
    finally:
        done.stop()
        window.stop()
        window.close()
        window.deleteLater()
        output.close()
        app.processEvents()
    return 0
