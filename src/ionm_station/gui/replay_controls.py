"""The replay toolbar: the :class:`~ionm_station.gui.replay_bar.ReplayBar` wired to the
session's :class:`~ionm_station.sources.replay.ReplaySource`, and the Review slider that
scrolls a paused replay back through the trace view's ring.

Keys (on the window given): P play/pause, Ctrl+← / Ctrl+→ previous / next recorded event.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QSlider, QToolBar, QWidget

from ionm_station.gui import theme
from ionm_station.gui.replay_bar import ReplayBar
from ionm_station.gui.traces import TraceView
from ionm_station.sources.replay import ReplaySource

#: Review slider steps per second.
REVIEW_STEPS_PER_S = 10


class ReplayControls(QToolBar):
    """Transport and review for a replay.

    Args:
        replay: the session's replay source.
        traces: the trace view (review scrolls it back while paused).
        window: where the replay keys live.
    """

    def __init__(self, replay: ReplaySource, traces: TraceView, window: QWidget) -> None:
        super().__init__("Replay")
        self.setObjectName("replay")
        self.setMovable(False)
        self._replay = replay
        self._traces = traces
        self.bar = ReplayBar()
        fs = replay.info.sample_rate_hz
        self.bar.set_events([(e.start / fs, e.kind) for e in replay.media.events])
        self.bar.play_toggled.connect(lambda playing: replay.play() if playing else replay.pause())
        self.bar.speed_changed.connect(replay.set_speed)
        self.bar.seek_requested.connect(replay.seek_time)
        self.bar.step_event.connect(lambda step: replay.next_event() if step > 0
                                    else replay.previous_event())
        self.addWidget(self.bar)
        self.addSeparator()
        self.review_slider = QSlider(Qt.Orientation.Horizontal)
        self.review_slider.setFixedWidth(220)
        self.review_slider.setInvertedAppearance(True)  # right = now, left = further back
        self.review_slider.setEnabled(False)
        self.review_slider.setToolTip("Paused: scroll back through the last 30 s (also the "
                                      "mouse wheel on the traces)")
        self.review_label = QLabel("review: live")
        self.review_label.setMinimumWidth(110)
        self.review_slider.valueChanged.connect(
            lambda v: self._show_review(traces.set_review(v / REVIEW_STEPS_PER_S)))
        traces.review_changed.connect(self._show_review)
        self.addWidget(QLabel(" Review "))
        self.addWidget(self.review_slider)
        self.addWidget(self.review_label)
        for keys, slot in (("P", lambda: self.bar.set_playing(not self.bar.playing, emit=True)),
                           ("Ctrl+Left", lambda: self.bar.step_event.emit(-1)),
                           ("Ctrl+Right", lambda: self.bar.step_event.emit(1))):
            QShortcut(QKeySequence(keys), window).activated.connect(slot)

    def refresh(self) -> None:
        """Follow the replay: timeline position, play/pause, review allowed while paused."""
        r = self._replay
        self.bar.set_position(r.position_s, r.n_samples / r.info.sample_rate_hz)
        self.bar.set_playing(not r.paused)
        self._traces.review_enabled = r.paused
        self.review_slider.setEnabled(r.paused)
        if r.paused:
            self.review_slider.setMaximum(int(self._traces.max_review_s() * REVIEW_STEPS_PER_S))
        elif self._traces.review_s > 0:
            self._show_review(self._traces.set_review(0.0))

    def _show_review(self, back_s: float) -> None:
        """Reflect the trace view's scroll-back in the slider and its label."""
        self.review_slider.blockSignals(True)
        self.review_slider.setValue(round(back_s * REVIEW_STEPS_PER_S))
        self.review_slider.blockSignals(False)
        self.review_label.setText(f"review: −{back_s:.1f} s" if back_s > 0 else "review: live")
        self.review_label.setStyleSheet(f"color: {theme.AMBER}; font-weight: bold;" if back_s > 0
                                        else "")
