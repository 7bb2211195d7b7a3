"""The injection window (offscreen Qt): a thin shell over the guide — indicator, stimulation
steps and search, site log, EMG audio through the null device; screenshot at 1600×1000."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from ionm_station.audio_out import AudioOutput  # noqa: E402
from ionm_station.commands.inject_command import build  # noqa: E402

#: The docs' screenshot is refreshed only with IONM_SCREENSHOT_DIR=docs/screenshots (a test run
#: must not change the working tree); otherwise it goes to the temporary folder.
SCREENSHOT = Path(os.environ.get("IONM_SCREENSHOT_DIR",
                                 Path(tempfile.gettempdir()) / "ionm-screenshots"))
SCREENSHOT /= "injection.png"


def _advance(guide, session, until_s: float, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while guide.position < until_s * guide.fs:
        assert time.monotonic() < deadline, "the paced session did not advance"
        guide.poll()
        time.sleep(0.002)


def test_injection_window(qtbot) -> None:  # noqa: ANN001
    from ionm_station.gui.injection_window import InjectionWindow

    args = argparse.Namespace(scenario="injection_gastroc", channel=None, rate=5000.0, seconds=60)
    session, guide, _ = build(args, realtime=False)
    out = AudioOutput("null")
    w = InjectionWindow(session, guide, output=out)
    qtbot.addWidget(w)
    session.start()
    try:
        w.start_audio()
        w.resize(1600, 1000)
        w.show()
        for delta in (1.0, 1.0, -0.1, 0.1, 0.1, -1.0):  # 1.0 → 2.1 mA
            w.step_buttons[delta].click()
        assert w.current_label.text() == "2.1 mA"
        _advance(guide, session, 3.0)
        w.stim_button.click()  # one manual stimulus at 2.1 mA, at rest
        _advance(guide, session, 9.0)  # insertion burst, then the first contraction
        w.dose_spin.setValue(40)
        w.log_button.click()
        _advance(guide, session, 13.5)  # after the 12.5 s insertion burst: rest
        w.search_button.click()
        _advance(guide, session, 23.5)  # the second contraction
        w.refresh()
        assert w.indicator.text() == "ACTIVE"
        assert w.sites.count() == 1 and "40 U" in w.sites.item(0).text()
        assert guide.curve[0][0] == pytest.approx(2.1) and len(guide.curve) >= 5
        assert w.motor_point.text().startswith("motor point: 2.")
        w.volume_slider.setValue(80)
        w.mute_button.click()
        assert out.emg_volume == pytest.approx(0.8) and out.emg_muted
        w.mute_button.click()
        assert out.stats.callbacks > 10 and w.sounder.health().state == "running"
        assert np.abs(out.rendered()).max() > 0  # the channel was heard
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        w.grab().save(str(SCREENSHOT))
        w.close()
        assert w.sounder.health().state == "stopped"
    finally:
        session.stop()
