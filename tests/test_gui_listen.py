"""Free-run EMG audio in the main window (offscreen Qt, null audio output): the Listen selector
plays the chosen channel's clean signal — the rendered audio matches that channel and not
another —, switching changes the channel, Off silences the EMG while alarm tones still sound,
the choice and the EMG volume persist, and ``run --listen LABEL`` starts with that channel."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import ClassVar  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import signal  # noqa: E402

from ionm_station.cli import main  # noqa: E402
from ionm_station.gui.main_window import MainWindow  # noqa: E402
from support.gui import NullSounder, a_train, detect, make_session, run_opens  # noqa: E402

pytest.importorskip("pytestqt")

FS = 2000.0


def match(audio: np.ndarray, clean_uv: np.ndarray, fs: float = FS,
          rate_hz: int = 44_100) -> float:
    """How well ``audio`` matches a stretch of ``clean_uv`` (µV at ``fs``) played at
    ``rate_hz``: the largest normalised cross-correlation over every lag (1.0: the same)."""
    x = np.interp(np.arange(0, len(clean_uv) - 1, fs / rate_hz), np.arange(len(clean_uv)),
                  clean_uv)
    a = np.asarray(audio, np.float64)
    num = signal.correlate(x, a, "valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    den = np.sqrt(energy[len(a):] - energy[:-len(a)]) * np.linalg.norm(a)
    return float(np.max(num / np.maximum(den, 1e-12)))


def stretch(audio: np.ndarray, longest_s: float = 0.5, rate_hz: int = 44_100) -> np.ndarray:
    """The newest unbroken stretch of EMG audio (at most ``longest_s``) in ``audio``: an
    underrun plays silence and primes the buffer again, so the audio on either side of it lags
    the ring by different amounts and cannot be matched with one lag."""
    silent = np.flatnonzero(audio == 0)  # interpolated EMG is never exactly 0; gaps are
    starts = np.concatenate([[0], silent + 1])
    stops = np.concatenate([silent, [len(audio)]])
    runs = [(b - a, a, b) for a, b in zip(starts, stops) if b > a]
    assert runs, "no EMG audio rendered"
    _, a, b = max(runs)
    assert b - a > 0.2 * rate_hz, f"EMG audio broken up: longest stretch {(b - a) / rate_hz} s"
    return audio[max(a, b - round(longest_s * rate_hz)):b]


def heard(window: MainWindow, clean_s: float = 4.0, piece_s: float = 0.25,
          rate_hz: int = 44_100) -> list[list[float]]:
    """How well each piece (``piece_s``) of the newest unbroken stretch of rendered EMG audio
    matches each channel (pieces × channels): on a loaded machine the output may drop a few ms
    of excess audio inside a stretch, which no single lag matches across."""
    fs = window.session.info.sample_rate_hz
    audio = stretch(window.sounder.output.rendered(1.5))
    clean = window.session.clean.latest(int(clean_s * fs)).data
    n = round(piece_s * rate_hz)
    pieces = [audio[i:i + n] for i in range(len(audio) - n, -1, -n)] or [audio]
    return [[match(p, clean[:, c], fs, rate_hz) for c in range(clean.shape[1])] for p in pieces]


def assert_plays(window: MainWindow, label: str, scores: list[list[float]]) -> None:
    """The audio is ``label``'s clean signal (correlation ~1), not any other channel's: on the
    piece where ``label`` stands out most, every other channel matches clearly worse (a piece
    holding a QRS the canceller has not learnt yet in the first seconds, the same shape on
    every channel, matches several)."""
    ch = window.montage.labels.index(label)

    def margin(row: list[float]) -> float:
        return row[ch] - max(s for c, s in enumerate(row) if c != ch)

    best = max(scores, key=margin)
    others = [s for c, s in enumerate(best) if c != ch]
    assert best[ch] > 0.95 and max(others) < 0.9, (label, [round(s, 3) for s in best])


def wait_plays(qtbot, window: MainWindow, label: str, timeout_s: float = 8.0) -> None:  # noqa: ANN001
    """Wait until the audio is ``label``'s (:func:`assert_plays`), looking again every 0.3 s
    after a first 1.2 s: on a loaded machine the audio thread may be seconds late, or break up
    (an underrun). A wrong channel, or no EMG audio, still fails after ``timeout_s``."""
    qtbot.wait(1200)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            assert_plays(window, label, heard(window))
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            qtbot.wait(300)


def wait_silent(qtbot, out, timeout_s: float = 5.0) -> None:  # noqa: ANN001
    """Wait until the newest 0.3 s of rendered audio is all zero (EMG stopped, no alarm)."""
    qtbot.waitUntil(lambda: np.abs(out.rendered(0.3)).max() == 0.0, timeout=round(timeout_s * 1000))


def test_listen_plays_the_chosen_channel_switches_and_stops(tmp_path: Path,
                                                            qtbot) -> None:  # noqa: ANN001
    session = make_session(scenario="quiet", rate_hz=FS)
    path = tmp_path / "gui.json"
    window = MainWindow(session, path, sounder=NullSounder(), recordings_dir=tmp_path / "rec")
    qtbot.addWidget(window)
    box, out = window.controls.listen_box, window.sounder.output
    assert [box.itemText(i) for i in range(box.count())] == ["Off", *session.montage.labels]
    assert box.currentText() == "Off" and window.sounder.listening is None
    session.start()
    window.show()
    try:
        qtbot.waitUntil(lambda: window.state.monitoring, timeout=5000)
        box.setCurrentText("L5-L TibAnt")  # as the user picks it
        wait_plays(qtbot, window, "L5-L TibAnt")
        assert window.status.labels["listen"].text() == "Listening: L5-L TibAnt"
        window.controls.emg_volume_slider.setValue(100)
        assert out.emg_volume == pytest.approx(1.0)
        box.setCurrentText("S1-R Gastroc")  # switched: same session, same output stream
        wait_plays(qtbot, window, "S1-R Gastroc")
        assert window.status.labels["listen"].text() == "Listening: S1-R Gastroc"
        assert session.state().monitoring and window.sounder.restarts == 0
        box.setCurrentText("Off")
        wait_silent(qtbot, out)  # no EMG, no alarm: silence
        assert window.sounder.listening is None and out.feed is None
        assert window.status.labels["listen"].text() == ""
        detect(session, session.clean.published / FS, [a_train(session, "L5-L", 1.0, 0.8)])
        qtbot.waitUntil(lambda: "caution" in window.sounder.played, timeout=3000)
        # the caution burst (3 pulses of 0.15 s within 0.55 s): alarm tones still sound
        qtbot.waitUntil(lambda: np.abs(out.rendered(1.0)).max() > 0.3, timeout=3000)
        assert out.feed is None
        box.setCurrentText("L4-R VastMed")
        window.controls.emg_volume_slider.setValue(35)
        window.close()
    finally:
        session.stop()
    doc = json.loads(path.read_text())
    assert doc["listen_label"] == "L4-R VastMed" and doc["emg_volume"] == pytest.approx(0.35)
    again = MainWindow(make_session(seconds=0.1, realtime=False), path, sounder=NullSounder())
    qtbot.addWidget(again)
    try:
        assert again.controls.listen_box.currentText() == "L4-R VastMed"
        assert again.sounder.listening == again.montage.labels.index("L4-R VastMed")
        assert again.sounder.output.emg_volume == pytest.approx(0.35)
    finally:
        again.close()


class _Heard(MainWindow):
    """The window ``run`` opens; what it rendered and the clean ring, kept as it closes."""

    last: _Heard | None = None
    scores: ClassVar[list[list[float]]] = []
    shown: tuple[str, str] = ("", "")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        _Heard.last = self

    def closeEvent(self, event) -> None:  # noqa: ANN001, N802
        self.scores = heard(self)
        self.shown = (self.controls.listen_box.currentText(),
                      self.status.labels["listen"].text())
        super().closeEvent(event)


@pytest.fixture
def window_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qapp) -> Path:  # noqa: ANN001
    """``run`` opens :class:`_Heard` on a null audio output; GUI settings in ``tmp_path``."""
    return run_opens(monkeypatch, tmp_path, _Heard, NullSounder)


def test_run_listen_plays_that_channel_in_the_window(window_run: Path) -> None:
    assert main(["run", "--seconds", "4", "--scenario", "quiet", "--listen", "S1-L Gastroc"]) == 0
    window = _Heard.last
    assert window is not None
    assert_plays(window, "S1-L Gastroc", window.scores)
    assert window.shown == ("S1-L Gastroc", "Listening: S1-L Gastroc")


def test_run_listen_refuses_an_unknown_label_and_headless(
        window_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--seconds", "1", "--listen", "L9-L Nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "ionm-station: error: --listen L9-L Nowhere: montage 'lumbar' has no such channel")
    assert "L5-L TibAnt" in err[0] and "S2-R ExtAnal" in err[0]  # the valid labels, named
    assert _Heard.last is None  # refused before any window opened
    assert main(["run", "--headless", "--seconds", "1", "--listen", "L5-L TibAnt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ionm-station: error: --listen needs the window: headless runs make no sound"]
