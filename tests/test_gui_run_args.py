"""The window honours every ``run`` argument (issue 12): ``ionm-station run`` without
``--headless`` records from the first sample, stops after ``--seconds``, writes ``--json``,
hunts the screws, stores the case metadata, runs the adaptive threshold and the mains frequency
asked for — through the real command, in the offscreen window."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from ionm_station.cli import main  # noqa: E402
from ionm_station.gui import app as gui_app  # noqa: E402
from ionm_station.gui.main_window import MainWindow  # noqa: E402
from ionm_station.recording import CaseMetadata, open_recording  # noqa: E402
from support.gui import SounderStandIn, make_session, run_opens  # noqa: E402


class _Seen(MainWindow):
    """The window ``run`` opens, remembering what it showed."""

    last: _Seen | None = None
    rec_shown = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        _Seen.last = self

    def refresh_status(self) -> None:
        super().refresh_status()
        self.rec_shown |= self.controls.record_button.isChecked()


@pytest.fixture
def window_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qapp) -> Path:  # noqa: ANN001
    """``run`` opens :class:`_Seen` with a silent sounder; GUI settings in ``tmp_path``."""
    return run_opens(monkeypatch, tmp_path, _Seen, SounderStandIn)


def test_the_window_honours_every_run_argument(window_run: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    record, report = window_run / "gui.h5", window_run / "gui.json"
    t0 = time.monotonic()
    assert main(["run", "--fast", "--seconds", "12", "--record", str(record), "--json",
                 str(report), "--patient-id", "P-7", "--procedure", "L4-S1 PLIF", "--operator",
                 "A. Tech", "--scenario", "pedicle_screws", "--hunt", "L5-R",
                 "--adaptive-threshold", "--mains-hz", "60"]) == 0
    assert time.monotonic() - t0 < 60  # --seconds ended the run and closed the window
    assert "done: 120000 samples per channel" in capsys.readouterr().out
    window = _Seen.last
    assert window is not None and window.rec_shown  # the window showed REC on
    session = window.session
    assert session.processing.alarms.config.adaptive
    with open_recording(record) as rec:  # recorded from the first sample, closed cleanly
        assert rec.clean_close and rec.n_samples == 120_000
        assert (rec.case.patient_id, rec.case.procedure, rec.case.operator) == (
            "P-7", "L4-S1 PLIF", "A. Tech")
        assert rec.case.start_time and rec.profile["name"]
        assert any(e.kind == "stimulus" and e.data.get("target") == "L5-R" for e in rec.events)
    doc = json.loads(report.read_text())
    assert doc["state"]["status"]["samples"] == 120_000
    assert doc["state"]["settings"]["mains_hz"] == 60.0
    assert doc["events"]["stimulus"] >= 3  # the hunt ran


def test_the_window_refuses_what_it_cannot_honour(window_run: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--fast", "--seconds", "1", "--hunt", "L9-R"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ionm-station: error: --hunt L9-R: montage 'lumbar' has no L9-R muscle"]
    existing = window_run / "old.h5"
    existing.write_text("an earlier case")
    assert main(["run", "--fast", "--seconds", "1", "--record", str(existing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a recording is never replaced" in err[0]
    assert existing.read_text() == "an earlier case"
    assert _Seen.last is None  # refused before any window opened


def test_the_record_button_stores_the_case_metadata(tmp_path: Path, qtbot) -> None:  # noqa: ANN001
    session = make_session(scenario="quiet")
    window = MainWindow(session, tmp_path / "gui.json", sounder=SounderStandIn(),
                        recordings_dir=tmp_path / "rec",
                        case=CaseMetadata("P-8", "C5-C6 ACDF", "B. Tech"),
                        profile_doc={"name": "simulated"})
    qtbot.addWidget(window)
    session.start()
    try:
        window.controls.record_button.click()
        qtbot.waitUntil(lambda: session.recording_status() is not None
                        and session.recording_status().samples_written > 0, timeout=5000)
        window.controls.record_button.click()
        path = Path(session.recording_status().path)
    finally:
        window.close()
        session.stop()
    with open_recording(path) as rec:
        assert (rec.case.patient_id, rec.case.procedure, rec.case.operator) == (
            "P-8", "C5-C6 ACDF", "B. Tech")
        assert rec.case.start_time and rec.profile == {"name": "simulated"}


def test_the_window_publishes_over_sdc(window_run: Path) -> None:
    """``run --publish-sdc`` without ``--headless``: a supervisor follows the window's station
    (room name, traces) while it runs, through the real command."""
    from tests.support.remote_procs import free_port

    from ionm_station.remote.follow import Follower
    from ionm_station.remote.wall import Wall

    port = free_port()
    wall = Wall()
    follower = Follower(wall, None, [("127.0.0.1", port)])
    follower.start()  # before the station exists: it keeps trying
    seen: dict[str, object] = {}

    class _Watched(_Seen):
        def refresh_status(self) -> None:
            super().refresh_status()
            room = wall.rooms[0]
            seen.update(location=room.location, received=room.stats.received)

    gui_app.MainWindow = _Watched  # restored by window_run's monkeypatch
    try:
        assert main(["run", "--seconds", "8", "--publish-sdc", "--insecure", "--sdc-port",
                     str(port), "--room", "OR 9"]) == 0
    finally:
        follower.stop()
    assert "OR 9" in str(seen.get("location"))
    assert int(seen.get("received", 0)) > 1000  # samples arrived while the window ran
