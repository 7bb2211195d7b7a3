"""Monitoring GUI: decimation core, trace view, main window, controls, docks, replay.

Runs headless (offscreen Qt platform). Technical alarms in the window are tested in
``test_gui_technical.py``, the screenshots in ``test_gui_screenshots.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pytestqt  # noqa: E402,F401  (pytest-qt is a test dependency: fail loudly if missing)
from PySide6.QtCore import Qt  # noqa: E402

from ionm_station.alarms import PRIORITIES  # noqa: E402
from ionm_station.analysis import montage_from_labels  # noqa: E402
from ionm_station.gui.app import ensure_app  # noqa: E402
from ionm_station.gui.decimate import ColumnBuffer, bridge_columns, minmax_columns  # noqa: E402
from ionm_station.gui.main_window import MainWindow  # noqa: E402
from ionm_station.gui.settings import N_PRESETS, GuiSettings  # noqa: E402
from ionm_station.gui.setup_panel import tile_thresholds_uv  # noqa: E402
from ionm_station.gui.triggered_view import TriggeredView, response_label  # noqa: E402
from ionm_station.io.edf import write_edf  # noqa: E402
from ionm_station.session import Session  # noqa: E402
from ionm_station.sources.replay import ReplaySource, open_media  # noqa: E402
from support.gui import (  # noqa: E402
    SounderStandIn,
    a_train,
    detect,
    hunt_session,
    live_window,
    make_session,
)

# --- decimation (pure numpy) ----------------------------------------------------------------


def mean_columns(data: np.ndarray, n_columns: int) -> np.ndarray:
    """Mean per pixel column: the decimation that must NOT be used (reference only)."""
    starts = (np.arange(n_columns) * len(data)) // n_columns
    sums = np.add.reduceat(data.astype(np.float64), starts, axis=0)
    return sums / np.diff(np.append(starts, len(data)))[:, None]


def test_single_sample_spike_survives_minmax_but_not_mean() -> None:
    rng = np.random.default_rng(1)
    data = (rng.standard_normal((100_000, 3)) * 3.0).astype(np.float32)
    data[61_234, 1] = 500.0  # one-sample 500 µV spike on channel 1
    x, y = minmax_columns(data, 1600)
    assert x.shape == (3200,) and y.shape == (3200, 3)
    col = int(np.argmax(y[:, 1]))
    assert y[col, 1] == pytest.approx(500.0)
    assert x[col] <= 61_234 < x[col] + 100_000 / 1600  # in the right column
    assert np.abs(y[:, [0, 2]]).max() < 30  # nothing invented on the other channels
    assert mean_columns(data, 1600)[:, 1].max() < 15.0  # mean decimation erased it


def test_nan_columns_stay_nan_and_partial_nan_is_ignored() -> None:
    data = np.ones((1000, 2), dtype=np.float32)
    data[100:200, 0] = np.nan  # exactly columns 10..19 of 100
    data[305, 1] = np.nan  # one NaN inside column 30 of channel 1
    _, y = minmax_columns(data, 100)
    assert np.isnan(y[20:40, 0]).all()
    assert np.isfinite(y[:20, 0]).all() and np.isfinite(y[40:, 0]).all()
    assert np.isfinite(y[:, 1]).all()


def test_column_buffer_incremental_equals_batch() -> None:
    rng = np.random.default_rng(2)
    window, cols = 10_000, 640
    data = rng.standard_normal((3 * window + 77, 2)).astype(np.float32)
    buf = ColumnBuffer(cols, window, 2)
    pos = 0
    while pos < len(data):
        n = int(rng.integers(1, 900))
        buf.push(pos, data[pos:pos + n])
        pos += n
    newest = len(data)
    # rebuild the same columns in one go: column c holds samples i with i*cols//window == c
    first_col = (newest - window) * cols // window + 1
    for c in (first_col, first_col + 17, newest * cols // window - 1):
        a = -(-c * window // cols)
        b = -(-(c + 1) * window // cols)
        slot = c % cols
        assert buf.lo[slot, 0] == pytest.approx(data[a:b, 0].min())
        assert buf.hi[slot, 1] == pytest.approx(data[a:b, 1].max())
    scroll = buf.interleaved(scroll=True)
    assert scroll[-1, 0] == buf.hi[buf.head_slot, 0]  # newest column last in scroll mode


def test_column_buffer_skipped_samples_become_nan() -> None:
    buf = ColumnBuffer(100, 1000, 1)
    buf.push(0, np.ones((300, 1), dtype=np.float32))
    buf.push(600, np.ones((100, 1), dtype=np.float32))  # 300 samples never arrived
    assert np.isnan(buf.lo[31:60, 0]).all()
    assert np.isfinite(buf.lo[:30, 0]).all() and np.isfinite(buf.lo[60:70, 0]).all()


def test_bridge_columns_joins_steps_keeps_gaps() -> None:
    y = np.array([[0.0], [0.1], [5.0], [5.1], [np.nan], [np.nan], [2.0], [2.0]])
    out = bridge_columns(y, min_span=0.01)
    assert out[2, 0] == pytest.approx(0.1) and out[3, 0] == pytest.approx(5.1)  # step bridged
    assert np.isnan(out[4:6, 0]).all()  # gap stays a gap
    assert out[7, 0] - out[6, 0] == pytest.approx(0.01)  # flat line stays visible


# --- Qt ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app():  # noqa: ANN201
    return ensure_app()


@pytest.fixture
def live(app, tmp_path, qtbot):  # noqa: ANN001, ANN201
    with live_window(qtbot, tmp_path) as window:
        yield window


def _settle(app, qtbot, ms: int = 300) -> None:  # noqa: ANN001
    qtbot.wait(ms)
    app.processEvents()


def test_window_opens_and_traces_update(live, qtbot) -> None:  # noqa: ANN001
    w = live
    assert w.isVisible() and len(w.traces.curves) == 16
    qtbot.waitUntil(lambda: w.traces.frames >= 2, timeout=5000)
    first = w.traces.curves[3].getData()[1].copy()
    drawn = w.traces.last_drawn_index
    qtbot.waitUntil(lambda: w.traces.last_drawn_index > drawn + 200, timeout=5000)
    second = w.traces.curves[3].getData()[1]
    assert np.isfinite(second).sum() > np.isfinite(first).sum() or not np.array_equal(
        np.nan_to_num(first), np.nan_to_num(second))
    assert w.status.labels["source"].text() == "simulated · 16 ch · 2000 Hz"
    assert not w.traces.raw_mode and not w.traces.banner.isVisible()
    qtbot.waitUntil(lambda: all(t.state == "quiet" for t in w.alarm_panel.tiles.values()),
                    timeout=3000)
    assert set(w.alarm_panel.tiles) == set(w.session.montage.tile_keys())


def test_a_train_turns_the_right_tile_to_alarm_and_acknowledge_clears_it(live, qtbot) -> None:
    w = live
    detect(w.session, 2.0, [a_train(w.session, "L5-L", 1.0, 0.8)])
    tiles = w.alarm_panel.tiles
    qtbot.waitUntil(lambda: tiles["L5-L"].state == "alarm", timeout=2000)
    assert tiles["L5-L"].flashing
    assert tiles["L5-R"].state == "quiet" and tiles["L4-L"].state == "quiet"
    assert tiles["L5-L"].tile.train_time_s == pytest.approx(0.8)
    headline = [x.text for x in tiles["L5-L"].text_layout().lines if x.role == "headline"]
    assert headline == ["A-TRAIN"]
    qtbot.keyClick(w, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: not tiles["L5-L"].flashing, timeout=2000)
    kinds = [e.kind for e in w.session.events.snapshot()]
    assert "alarm" in kinds and "alarm_ack" in kinds


def test_marker_keys_and_inline_text(live, qtbot) -> None:  # noqa: ANN001
    w = live
    seen: list[tuple[str, int]] = []
    w.marker_added.connect(lambda text, index: seen.append((text, index)))
    qtbot.keyClick(w, Qt.Key.Key_F5)
    qtbot.keyClick(w, Qt.Key.Key_M)
    edit = w.controls.marker_edit
    assert edit.hasFocus() or w.focusWidget() is edit
    qtbot.keyClicks(edit, "Rod in")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    markers = w.session.events.of_kind
    qtbot.waitUntil(lambda: len(markers("marker")) == 2, timeout=2000)
    assert [e.data["text"] for e in markers("marker")] == ["Decompression", "Rod in"]
    assert [(e.data["text"], e.start) for e in markers("marker")] == seen
    assert edit.text() == ""


def test_controls_change_view_and_settings_persist(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    path = tmp_path / "gui.json"
    session = make_session(seconds=2.0, realtime=False)
    w = MainWindow(session, path)
    qtbot.addWidget(w)
    c, setup = w.controls, w.setup
    c.sensitivity_box.setCurrentIndex(c.sensitivity_box.findData(200))
    c.timebase_box.setCurrentIndex(c.timebase_box.findData(5))
    c.mode_box.setCurrentIndex(1)
    setup.channel_box.setCurrentIndex(2)
    setup.channel_gain_box.setCurrentIndex(setup.channel_gain_box.findData(20))
    setup.channel_gain_box.activated.emit(setup.channel_gain_box.currentIndex())
    setup.threshold_boxes["S1-R"].setValue(250)
    assert w.traces.sensitivity_uv == 200 and w.traces.timebase_s == 5 and w.traces.scroll_mode
    assert w.traces.channel_sensitivity(2) == 20 and w.traces.channel_sensitivity(3) == 200
    assert c.record_button.isEnabled()  # a live session can always start a recording
    session.start()  # the threshold was queued: the processing thread applies it
    qtbot.waitUntil(lambda: tile_thresholds_uv(session, session.state())["S1-R"] == 250,
                    timeout=5000)
    session.stop()
    assert [e.data for e in session.events.of_kind("alarm_threshold")][-1]["threshold_uv"] == 250
    w.close()
    doc = json.loads(path.read_text())
    assert doc["sensitivity_uv"] == 200 and doc["timebase_s"] == 5 and doc["scroll_mode"] is True
    again = MainWindow(make_session(seconds=0.1, realtime=False), path)
    qtbot.addWidget(again)
    assert again.traces.sensitivity_uv == 200 and again.traces.channel_sensitivity(2) == 20
    again.close()


def test_a_refused_threshold_is_said_in_the_status_bar(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    w = MainWindow(make_session(seconds=0.1, realtime=False), tmp_path / "gui.json")
    qtbot.addWidget(w)
    assert not w.setup.apply_threshold("L5-L", 2.0)
    assert "Threshold not changed" in w.status.currentMessage()
    assert not w.setup.apply_threshold("Z9-Q", 100.0)
    assert "no alarm tile" in w.status.currentMessage()
    w.close()


def test_the_status_bar_shows_pacing(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    """The window shows the processing snapshot's pacing state (tests/test_pacing.py runs it
    through the live path): nothing before any pulse, PACED while they are taken out, and
    that they no longer are once pacing lapsed; the state's JSON carries it too."""
    from dataclasses import replace

    w = MainWindow(make_session(seconds=0.1, realtime=False), tmp_path / "gui.json")
    qtbot.addWidget(w)
    state = w.session.state()
    label = w.status.labels["pacing"]
    for pacing, pulses, text in (("", 0, ""), ("", 2, ""),  # (taken while learnt: not yet)
                                 ("detected", 12, "PACED · 12 pulses out"),
                                 ("lapsed", 40, "pacing lapsed · 40 out")):
        processing = replace(state.processing, pacing=pacing, pacing_pulses=pulses)
        w.status.show_state(replace(state, processing=processing), None, False, "")
        assert label.text() == text
        assert replace(state, processing=processing).to_dict()["pacing"] == {
            "state": pacing or None, "pulses_taken_out": pulses}  # (run --json, remote views)
        assert ("reach the detector" in label.toolTip()) == (text.startswith("pacing lapsed"))
    w.close()


def test_settings_file_garbage_falls_back_to_defaults(tmp_path) -> None:
    path = tmp_path / "gui.json"
    path.write_text('{"sensitivity_uv": "__import__(\'os\')", "timebase_s": -3, '
                    '"marker_presets": 5}')
    s = GuiSettings.load(path)
    assert s.sensitivity_uv == 50.0 and s.timebase_s == 10.0 and len(s.marker_presets) == N_PRESETS
    path.write_text("not json")
    assert GuiSettings.load(path) == GuiSettings()


def edf_replay(tmp_path: Path, seconds: float = 60.0, rate_hz: float = 2000.0) -> Session:
    """A session replaying an EDF (three lumbar muscles and one foreign channel without a root,
    annotations at 10, 30 and 45 s) as fast as it is read."""
    labels = ["L4-L VastMed", "L5-L TibAnt", "L5-R TibAnt", "EMG aux"]
    rng = np.random.default_rng(3)
    data = (rng.standard_normal((int(seconds * rate_hz), len(labels))) * 8).astype(np.float32)
    path = tmp_path / "case.edf"
    write_edf(path, rate_hz, labels, data, [(10.0, None, "screw L4"), (30.0, None, "screw L5"),
                                            (45.0, None, "closure")], 5000.0)
    media = open_media(path)
    source = ReplaySource(media, speed=None)
    return Session(source, montage_from_labels(list(media.info.labels)),
                   max_samples=source.n_samples)


def test_replay_bar_drives_the_replay_source(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    session = edf_replay(tmp_path)
    replay = session.replay
    assert replay is not None and not session.can_record
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    assert "EMG aux" in w.alarm_panel.tiles  # a foreign channel reaches its own tile
    assert not w.controls.record_button.isEnabled()
    w.refresh_status()
    assert w.status.labels["recording"].text() == "REC n/a"
    rc = w.replay_controls
    assert rc is not None
    bar = rc.bar
    replay.seek_time(12.0)
    w.refresh_tiles()
    assert bar.time_label.text() == "0:00:12 / 0:01:00"
    bar.timeline.resize(412, 34)
    qtbot.mouseClick(bar.timeline, Qt.MouseButton.LeftButton, pos=bar.timeline.rect().center())
    assert replay.position_s == pytest.approx(30.0, abs=0.5)
    replay.seek_time(31.0)
    bar.next_button.click()
    assert replay.position_s == pytest.approx(45.0)
    bar.prev_button.click()
    assert replay.position_s == pytest.approx(30.0)
    bar.play_button.click()
    assert replay.paused
    bar.speed.setCurrentIndex(bar.speed.findData(4.0))
    assert replay.speed == 4.0
    w.close()


def test_paused_replay_scrolls_back_through_the_ring(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    session = edf_replay(tmp_path)
    replay = session.replay
    assert replay is not None
    session.start()
    try:
        fs = session.info.sample_rate_hz
        assert session.wait_until(int(20 * fs), 60)
        replay.pause()
        qtbot.waitUntil(lambda: session.clean.published >= session.raw.published
                        - session.chain_delay, timeout=5000)
        w = MainWindow(session, tmp_path / "gui.json")
        qtbot.addWidget(w)
        w.resize(1200, 800)
        w.show()
        _settle(app, qtbot, 100)
        w.refresh_tiles()
        rc = w.replay_controls
        newest = session.clean.published
        assert rc.review_slider.isEnabled() and w.traces.max_review_s() > 5.0
        rc.review_slider.setValue(50)  # 5.0 s back
        assert w.traces.review_s == pytest.approx(5.0)
        assert w.traces.last_drawn_index == newest - 5 * int(fs)
        assert "−5.0 s" in rc.review_label.text()
        w.traces.set_review(100.0)  # clamped to what the ring holds beyond one window
        assert w.traces.review_s == pytest.approx(w.traces.max_review_s(), abs=1e-3)
        replay.set_speed(1.0)
        replay.play()  # playing again: back to live
        w.refresh_tiles()
        assert w.traces.review_s == 0.0 and not rc.review_slider.isEnabled()
        assert w.traces.last_drawn_index >= newest
        w.close()
    finally:
        session.stop()


def test_alarm_sound_follows_audible_and_volume_persists(app, tmp_path, qtbot,
                                                         monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("ionm_station.gui.main_window.AlarmSounder", SounderStandIn)
    SounderStandIn.instances.clear()
    path = tmp_path / "gui.json"
    session = make_session(scenario="quiet")
    w = MainWindow(session, path)
    qtbot.addWidget(w)
    (sounder,) = SounderStandIn.instances
    session.start()
    try:
        w.show()
        detect(session, 2.0, [a_train(session, "L5-L", 1.0, 0.8)])
        qtbot.waitUntil(lambda: bool(sounder.priorities) and sounder.priorities[-1] == "caution",
                        timeout=2000)
        assert sounder.priorities[-1] in PRIORITIES and session.state().audible == "caution"
        w.silence()  # silenced: audible is None, so the sounder is told to stop
        qtbot.waitUntil(lambda: sounder.priorities[-1] is None, timeout=2000)
        w.refresh_status()  # no device: the notice stays in the status bar (no dialog)
        audio = w.status.labels["audio"]
        assert audio.text().startswith("audio off") and audio.toolTip() == sounder.notice
        w.controls.mute_button.click()
        w.controls.volume_slider.setValue(80)
        assert sounder.muted and sounder.volume == pytest.approx(0.8)
        w.close()
    finally:
        session.stop()
    assert sounder.closed
    doc = json.loads(path.read_text())
    assert doc["alarm_muted"] is True and doc["alarm_volume"] == pytest.approx(0.8)
    again = MainWindow(make_session(seconds=0.1, realtime=False), path)
    qtbot.addWidget(again)
    assert SounderStandIn.instances[-1].muted and again.controls.mute_button.isChecked()
    assert SounderStandIn.instances[-1].volume == pytest.approx(0.8)
    again.close()


def test_filter_band_is_editable_and_persists(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    path = tmp_path / "gui.json"
    session = make_session(seconds=1.0, realtime=False)
    w = MainWindow(session, path)
    qtbot.addWidget(w)
    setup = w.setup
    assert w.status.labels["recording"].text() == "REC off"
    band = session.state().processing.settings
    assert setup.filter_low.value() == band.low_hz
    assert setup.filter_high.value() == min(band.high_hz, setup.filter_high.maximum())
    setup.filter_low.setValue(30.0)
    assert "Filter band 30" in w.status.currentMessage()
    setup.filter_high.setValue(20.0)  # low > high: refused, said in the status bar
    assert "not changed" in w.status.currentMessage()
    setup.filter_high.setValue(800.0)
    w.close()
    doc = json.loads(path.read_text())
    assert (doc["band_low_hz"], doc["band_high_hz"]) == (30.0, 800.0)
    again_session = make_session(seconds=2.0, realtime=False)
    again = MainWindow(again_session, path)  # applied at start-up, through the session
    qtbot.addWidget(again)
    again_session.start()
    settings = lambda: again_session.state().processing.settings  # noqa: E731
    qtbot.waitUntil(lambda: (settings().low_hz, settings().high_hz) == (30.0, 800.0), timeout=5000)
    again_session.stop()
    again.refresh_tiles()
    again.refresh_status()
    assert (again.setup.filter_low.value(), again.setup.filter_high.value()) == (30.0, 800.0)
    again.close()


def test_triggered_dock_shows_hunt_and_confirms_high_current(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    session = hunt_session(15.0)
    trig = session.triggered_data
    (screw,) = trig.screw_log.screws
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    view = w.triggered_view
    assert isinstance(view, TriggeredView)
    view.target_box.setCurrentText("L5-R")
    ours = [r for r in trig.responses if r.target == "L5-R"]
    shown = [lbl.toPlainText() for lbl in view.labels if lbl.toPlainText()]
    assert shown == [response_label(r) for r in ours[::-1][:12]]  # newest on top
    assert "✓" in shown[0] or "✗" in shown[0]
    assert view.screw_table.rowCount() == 1
    assert view.screw_table.item(0, 4).text() == screw.band == "likely breach"
    assert view.screw_table.item(0, 4).background().color().name() == "#b3141c"
    assert view.hunt_button.isEnabled()

    calls: list[tuple] = []
    session.stimulate = lambda *a, **k: calls.append((a, k))  # type: ignore[method-assign]
    view.current_box.setValue(35.0)
    view.stim_button.click()
    assert calls == [] and view.stim_button.text() == "Confirm 35 mA"
    view.stim_button.click()
    assert calls == [((35.0, "L5-R"), {"confirmed": True})]
    assert view.stim_button.text() == "Stimulate"
    view.stim_button.click()  # armed again; changing the current drops the confirmation
    view.current_box.setValue(12.0)
    assert not view.armed and view.stim_button.text() == "Stimulate"
    view.stim_button.click()
    assert calls[-1] == ((12.0, "L5-R"), {"confirmed": False})
    w.close()


def test_triggered_dock_without_stimulator_disables_hunt(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    session = make_session(seconds=0.1, realtime=False)
    session.triggered_data.stimulator = None
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    view = w.triggered_view
    assert not view.hunt_button.isEnabled() and not view.stim_button.isEnabled()
    assert "cannot stimulate" in view.hunt_button.toolTip()
    w.close()


def test_record_button_starts_and_stops_a_recording(live, qtbot, tmp_path) -> None:  # noqa: ANN001
    w = live
    button = w.controls.record_button
    button.click()
    assert button.isChecked() and "Recording to" in w.status.currentMessage()
    rec = w.session.recording_status()
    assert rec is not None and rec.state in ("recording", "low_disk")
    assert rec.path.startswith(str(tmp_path / "rec"))
    w.refresh_status()
    assert w.status.labels["recording"].text().startswith("● REC")
    button.click()
    qtbot.waitUntil(lambda: w.session.recording_status().state == "stopped", timeout=5000)
    w.refresh_status()
    assert not button.isChecked() and w.status.labels["recording"].text() == "REC off"


def test_cautery_going_on_is_tinted_up_to_the_newest_sample(app, qtbot) -> None:  # noqa: ANN001
    """Closed spans reach the event log only when they end; an open one (cautery now) comes
    from the state snapshot and is tinted from its start to the newest sample drawn."""
    from ionm_station.dsp.artifacts import ArtifactSpan
    from ionm_station.events import EventLog
    from ionm_station.gui.traces import TraceView
    from ionm_station.montage import load_montage
    from ionm_station.ring import RingBuffer

    montage = load_montage("lumbar").first(4)
    clean, raw = RingBuffer(20_000, 4), RingBuffer(20_000, 4)
    view = TraceView(clean, raw, montage, 1000.0, EventLog())
    qtbot.addWidget(view)
    view.resize(800, 400)
    view.show()
    view.start()
    clean.write(np.zeros((4000, 4), np.float32))
    view.update_frame()
    rects = lambda: [r.rect() for r in view._overlays._rects if r.isVisible()]  # noqa: E731
    assert not rects()
    view.set_open_artifacts([ArtifactSpan("cautery", 3000, None, (0, 1, 2, 3))])
    view.update_frame()
    tinted = rects()
    assert len(tinted) == 4 and all(r.right() == pytest.approx(4.0) for r in tinted)  # to now
    assert all(r.left() == pytest.approx(3.0) for r in tinted)
    view.set_open_artifacts([])
    view.update_frame()
    assert not rects()
    view.stop()
