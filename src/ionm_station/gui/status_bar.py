"""The status bar: counters, worker health, technical alarms, pacing, recording, disk, audio.

Everything comes from the station's state (:class:`~ionm_station.pipeline.state.StationState`),
the recorder's status, the channel listened to and the sounder's notice. Technical alarms are
named in their tile colours (the whole reason in the tooltip); a command the processing thread
refused (``command_rejected`` in the event log) and a worker restart are shown as messages.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStatusBar

from ionm_station.events import EventLog
from ionm_station.gui import theme
from ionm_station.pipeline.state import StationState
from ionm_station.recording import RecorderStatus

#: Labels, left to right.
FIELDS = ("source", "samples", "counts", "workers", "technical", "pacing", "recording", "disk",
          "listen", "audio", "error")
#: Widest the free-text labels get (px): longer text is elided there, whole in the tooltip.
MAX_WIDTH = {"workers": 180, "technical": 240, "pacing": 220, "listen": 180, "audio": 200,
             "error": 240}
#: How long event messages stay (ms).
MESSAGE_MS = 8000


def bytes_text(n: float) -> str:
    """``"1.2 MB"``: bytes in decimal units."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def pacing_label(state: str, pulses: int) -> tuple[str, str]:
    """(label, tooltip) for the pacemaker-pulse stage's ``state`` (see
    :class:`~ionm_station.pipeline.state.ProcessingSnapshot`): empty until pacing was
    established (pulses taken out while a pattern is learnt are not pacing yet)."""
    if state == "detected":
        return (f"PACED · {pulses} pulses out",
                "Pacemaker pulses are found on every channel at once and taken out before "
                "detection (their samples filled as lost).")
    if state == "lapsed":
        return (f"pacing lapsed · {pulses} out",
                "Pacemaker pulses were taken out earlier and none match now: any that come "
                "reach the detector until their pattern is learnt again.")
    return "", ""


def recording_text(rec: RecorderStatus | None, can_record: bool) -> tuple[str, bool]:
    """(label, in red) for the recording state."""
    if rec is not None and rec.state in ("recording", "low_disk"):
        return f"● REC {bytes_text(rec.file_size_bytes)}", True
    if rec is not None and rec.state == "failed":
        return "REC failed", True
    return ("REC off" if can_record else "REC n/a"), False


class StationStatusBar(QStatusBar):
    """Permanent labels (:data:`FIELDS`, in :attr:`labels`) and event messages.

    Args:
        events: the session's event log (read with its own cursor for refusals and restarts).
    """

    def __init__(self, events: EventLog) -> None:
        super().__init__()
        self._events = events
        self._cursor = len(events)
        self.labels: dict[str, QLabel] = {}
        for name in FIELDS:
            label = QLabel()
            label.setMinimumWidth(1)  # squeezed rather than widening a narrow window
            self.labels[name] = label
            self.addPermanentWidget(label)
        self.labels["error"].setStyleSheet(f"color: {theme.ERROR_RED}; font-weight: bold;")
        self.labels["audio"].setStyleSheet(f"color: {theme.AMBER};")

    def show_state(self, state: StationState, rec: RecorderStatus | None, can_record: bool,
                   audio_notice: str, listening: str = "") -> None:
        """Update every label from ``state``, the recorder's status, the sounder's notice and
        the label of the channel whose EMG is played (``listening``; '' none)."""
        st, lbl = state.status, self.labels
        lbl["source"].setText(f"{st.source} · {st.channels} ch · {st.rate_hz:g} Hz")
        lbl["samples"].setText(f"t {st.elapsed_s:,.1f} s · {st.samples:,} samples")
        lbl["counts"].setText(f"dropped {st.dropped} · gaps {st.gaps} · overruns {st.overruns}")
        lbl["counts"].setStyleSheet(f"color: {theme.ERROR_RED};" if st.overruns else "")
        restarts = sum(w.restarts for w in state.workers)
        down = [w for w in state.workers if w.down]
        self._set("workers", " · ".join(f"{w.name} {w.state}" for w in down)
                  or (f"restarts {restarts}" if restarts else "workers ok"),
                  "\n".join(f"{w.name}: {w.state}, {w.restarts} restarts"
                            + (f", {w.error}" if w.error else "") for w in state.workers))
        lbl["workers"].setStyleSheet(f"color: {theme.ERROR_RED};" if down else "")
        self._show_technical(state)
        self._set("pacing", *pacing_label(state.processing.pacing, state.processing.pacing_pulses))
        text, red = recording_text(rec, can_record)
        lbl["recording"].setText(text)
        lbl["recording"].setStyleSheet("color: #ff5252; font-weight: bold;" if red else "")
        free = rec.free_bytes if rec is not None and rec.free_bytes >= 0 else None
        if free is None:
            try:
                free = shutil.disk_usage(Path(rec.path).parent if rec else Path.home()).free
            except OSError:
                free = None
        lbl["disk"].setText("disk ?" if free is None else f"disk {bytes_text(free)} free")
        lbl["disk"].setToolTip("Free space where recordings are written")
        self._set("listen", f"Listening: {listening}" if listening else "",
                  f"Listening to the free-run EMG of {listening}"
                  + (f" — but {audio_notice}" if audio_notice else "") if listening else "")
        self._set("audio", audio_notice, audio_notice)
        self._set("error", st.error or "", st.error or "")
        self._show_events()

    def _set(self, name: str, text: str, tooltip: str) -> None:
        """``text`` in label ``name``, elided to its :data:`MAX_WIDTH`."""
        label = self.labels[name]
        width = MAX_WIDTH[name] - 16  # the style sheet's padding
        label.setText(label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, width))
        label.setToolTip(tooltip)

    def _show_technical(self, state: StationState) -> None:
        label = self.labels["technical"]
        self._set("technical", " · ".join(a.headline for a in state.technical),
                  "\n".join(f"{a.headline}: {a.reason}" for a in state.technical))
        if not state.technical:
            label.setStyleSheet("")
            return
        first = state.technical[0]
        bg, fg = (theme.tile_colours(first.kind, first.priority)
                  if first.kind in theme.TECHNICAL_STATES else theme.TECHNICAL_BAND)
        label.setStyleSheet(f"background: {bg}; color: {fg}; font-weight: bold;")

    def _show_events(self) -> None:
        new, self._cursor = self._events.since(self._cursor)
        for e in new:
            if e.kind == "command_rejected":
                self.showMessage(f"Not applied: {e.data.get('command')}: {e.data.get('reason')}",
                                 MESSAGE_MS)
            elif e.kind == "worker_restarted":
                self.showMessage(f"{e.data.get('worker')} restarted after a fault", MESSAGE_MS)

