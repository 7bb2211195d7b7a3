"""Biofeedback windows offscreen: the patient display and the clinician view over a real
session (simulated patient, whole pipeline). Screenshots go to $IONM_SCREENSHOT_DIR (default:
a temp folder); ``IONM_SCREENSHOT_DIR=docs/screenshots`` refreshes the docs' two."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from PySide6.QtGui import QColor  # noqa: E402

from ionm_station.gui.app import ensure_app  # noqa: E402
from ionm_station.gui.biofeedback_window import REWARD, BiofeedbackWindow  # noqa: E402
from ionm_station.sim.scenario import load_scenario  # noqa: E402
from ionm_station.therapy.biofeedback import BiofeedbackCore  # noqa: E402
from ionm_station.therapy.live import BiofeedbackLive, protocol_for, simulated_session  # noqa: E402
from ionm_station.therapy.reward import RewardTone  # noqa: E402

SCREENSHOTS = Path(os.environ.get("IONM_SCREENSHOT_DIR",
                                  Path(tempfile.gettempdir()) / "ionm-screenshots"))


class _Tones:
    rate_hz = 8000

    def __init__(self) -> None:
        self.n = 0

    def play_tone(self, samples, rate_hz=8000) -> None:  # noqa: ANN001
        self.n += 1


def test_windows_show_the_cue_band_and_scores(qtbot):
    ensure_app()
    threads_before = set(threading.enumerate())
    scenario = load_scenario("bf_activation")
    session = simulated_session(scenario, 41.6, seed=1)  # ends inside the work phase of trial 3
    core = BiofeedbackCore(session.info.sample_rate_hz, protocol_for(scenario), 250.0)
    tones = _Tones()
    window = BiofeedbackWindow(BiofeedbackLive(session, 0, core), RewardTone(tones),
                               patient_screen=-1)
    qtbot.addWidget(window)
    qtbot.addWidget(window.patient)
    window.resize(1100, 800)
    window.start()
    window.patient.resize(1280, 720)
    deadline = time.monotonic() + 60
    while not session.finished and time.monotonic() < deadline:
        window.tick()
        qtbot.wait(10)
    window.stop()
    assert session.finished
    patient = window.patient
    assert patient.cue == "WORK" and patient.trial_text == "trial 3 / 6"
    assert patient.band_uv is not None and core.band_uv == patient.band_uv
    assert window.view.table.rowCount() == 4  # 2 maximal efforts, trials 1 and 2
    assert window.view.table.item(2, 0).text() == "1"
    assert "time in target" in window.view.scores.text()
    assert tones.n > 0  # the reward chimed during the work phases
    shot = patient.grab()
    image = shot.toImage()
    # the bar is drawn: in the band at the end (reward colour) or outside (amber)
    bar_x = int(patient.width() * 0.23)
    colours = {image.pixelColor(bar_x, y).name() for y in range(patient.height() // 2,
                                                                    patient.height() - 50)}
    assert QColor(REWARD).name() in colours or "#ffb347" in colours
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert shot.save(str(SCREENSHOTS / "biofeedback_patient.png"))
    assert window.grab().save(str(SCREENSHOTS / "biofeedback_clinician.png"))
    window.close()
    # every session thread is joined
    left = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert not left, [t.name for t in left]
