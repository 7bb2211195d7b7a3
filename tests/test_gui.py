"""Monitoring GUI: decimation core, trace view, alarm panel, main window, screenshots.

Runs headless (offscreen Qt platform). The screenshot test writes PNGs to $IONM_SCREENSHOT_DIR (default: a temp folder).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import ClassVar  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import pytestqt  # noqa: E402,F401  (pytest-qt is a test dependency: fail loudly if missing)

from PySide6.QtCore import Qt  # noqa: E402

from ionm_station.alarms import AlarmEngine  # noqa: E402
from ionm_station.events import Event  # noqa: E402
from ionm_station.gui.alarm_panel import AlarmWindow  # noqa: E402
from ionm_station.gui.app import ensure_app  # noqa: E402
from ionm_station.gui.decimate import ColumnBuffer, bridge_columns, minmax_columns  # noqa: E402
from ionm_station.gui.main_window import MainWindow  # noqa: E402
from ionm_station.gui.replay_bar import ReplayBar  # noqa: E402
from ionm_station.gui.settings import GuiSettings  # noqa: E402
from ionm_station.gui.triggered_view import TriggeredView, response_label  # noqa: E402
from ionm_station.profiles import load_profile  # noqa: E402
from ionm_station.session import Session, build_source, montage_for  # noqa: E402

#: Where the screenshot test saves PNGs; IONM_SCREENSHOT_DIR=docs/screenshots refreshes the docs.
SCREENSHOTS = Path(os.environ.get("IONM_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "ionm-screenshots"))


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


def make_session(seconds: float | None = None, rate_hz: float = 2000.0,
                 realtime: bool = True) -> Session:
    profile = dataclasses.replace(load_profile("simulated"), sample_rate_hz=rate_hz)
    montage = montage_for(profile)
    source = build_source(profile, montage, realtime=realtime)
    limit = None if seconds is None else source.info.seconds_to_samples(seconds)
    return Session(source, montage, max_samples=limit)


def attach_alarms(session: Session) -> AlarmEngine:
    engine = AlarmEngine(session.montage, session.info.sample_rate_hz,
                         sink=session.events.append)
    session.alarms = engine  # type: ignore[attr-defined]
    return engine


def a_train(session: Session, key: str, at_s: float, seconds: float) -> SimpleNamespace:
    """A detected A-train on the first channel of root-side ``key``."""
    root, side = key.split("-")
    ch = session.montage.channels_of(root, side)[0]
    fs = session.info.sample_rate_hz
    return SimpleNamespace(channel=ch, kind="train", train_type="A", onset=int(at_s * fs),
                           offset=int((at_s + seconds) * fs), peak_uv=180.0)


@pytest.fixture
def live(app, tmp_path, qtbot):  # noqa: ANN001, ANN201
    session = make_session()
    engine = attach_alarms(session)
    window = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    session.start()
    window.show()
    yield SimpleNamespace(session=session, window=window, engine=engine)
    window.close()
    session.stop()


def test_window_opens_and_traces_update(live, qtbot) -> None:  # noqa: ANN001
    w = live.window
    assert w.isVisible() and len(w.traces.curves) == 16
    qtbot.waitUntil(lambda: w.traces.frames >= 2, timeout=5000)
    first = w.traces.curves[3].getData()[1].copy()
    drawn = w.traces.last_drawn_index
    qtbot.waitUntil(lambda: w.traces.last_drawn_index > drawn + 200, timeout=5000)
    second = w.traces.curves[3].getData()[1]
    assert np.isfinite(second).sum() > np.isfinite(first).sum() or not np.array_equal(
        np.nan_to_num(first), np.nan_to_num(second))
    assert w.status_labels["rate"].text() == "2000 Hz"
    assert w.traces._reader.overrun_samples == 0


def test_a_train_turns_the_right_tile_to_alarm_and_acknowledge_clears_it(live, qtbot) -> None:  # noqa: ANN001
    w, engine = live.window, live.engine
    engine.update(now=4000, events=[a_train(live.session, "L5-L", 1.0, 0.8)])
    qtbot.waitUntil(lambda: w.alarm_panel.tiles["L5-L"].state == "alarm", timeout=2000)
    assert w.alarm_panel.tiles["L5-L"].flashing
    assert w.alarm_panel.tiles["L5-R"].state == "quiet"
    assert w.alarm_panel.tiles["L4-L"].state == "quiet"
    assert w.alarm_panel.tiles["L5-L"].tile.train_time_s == pytest.approx(0.8)
    qtbot.keyClick(w, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: w.alarm_panel.tiles["L5-L"].state != "alarm", timeout=2000)
    kinds = [e.kind for e in live.session.events.snapshot()]
    assert "alarm" in kinds and "alarm_ack" in kinds


def test_marker_keys_and_inline_text(live, qtbot) -> None:  # noqa: ANN001
    w = live.window
    seen: list[tuple[str, int]] = []
    w.marker_added.connect(lambda text, index: seen.append((text, index)))
    qtbot.keyClick(w, Qt.Key.Key_F5)
    qtbot.keyClick(w, Qt.Key.Key_M)
    assert w.marker_edit.hasFocus() or w.focusWidget() is w.marker_edit
    qtbot.keyClicks(w.marker_edit, "Rod in")
    qtbot.keyClick(w.marker_edit, Qt.Key.Key_Return)
    texts = [e.data["text"] for e in live.session.events.of_kind("marker")]
    assert texts == ["Decompression", "Rod in"] and [t for t, _ in seen] == texts
    assert w.marker_edit.text() == ""


def test_controls_change_view_and_settings_persist(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    path = tmp_path / "gui.json"
    session = make_session(seconds=1.0, realtime=False)
    w = MainWindow(session, path)
    qtbot.addWidget(w)
    thresholds: list[tuple[str, float]] = []
    w.threshold_changed.connect(lambda k, v: thresholds.append((k, v)))
    w.sensitivity_box.setCurrentIndex(w.sensitivity_box.findData(200))
    w.timebase_box.setCurrentIndex(w.timebase_box.findData(5))
    w.mode_box.setCurrentIndex(1)
    w.channel_box.setCurrentIndex(2)
    w.channel_gain_box.setCurrentIndex(w.channel_gain_box.findData(20))
    w.channel_gain_box.activated.emit(w.channel_gain_box.currentIndex())
    w.threshold_boxes["S1-R"].setValue(250)
    assert w.traces.sensitivity_uv == 200 and w.traces.timebase_s == 5 and w.traces.scroll_mode
    assert w.traces.channel_sensitivity(2) == 20 and w.traces.channel_sensitivity(3) == 200
    assert thresholds == [("S1-R", 250.0)]
    assert w.record_button.isEnabled()  # a live session can always start a recording
    w.close()
    doc = json.loads(path.read_text())
    assert doc["sensitivity_uv"] == 200 and doc["timebase_s"] == 5 and doc["scroll_mode"] is True
    again = MainWindow(session, path)
    qtbot.addWidget(again)
    assert again.traces.sensitivity_uv == 200 and again.traces.channel_sensitivity(2) == 20
    again.close()


def test_settings_file_garbage_falls_back_to_defaults(tmp_path) -> None:
    path = tmp_path / "gui.json"
    path.write_text('{"sensitivity_uv": "__import__(\'os\')", "timebase_s": -3, "marker_presets": 5}')
    s = GuiSettings.load(path)
    assert s.sensitivity_uv == 50.0 and s.timebase_s == 10.0 and len(s.marker_presets) == 8
    path.write_text("not json")
    assert GuiSettings.load(path) == GuiSettings()


def test_replay_bar_drives_a_replay_source(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    session = make_session(seconds=2.0, realtime=False)
    calls: list[tuple] = []

    class ReplayStandIn:
        """The controls of sources.replay.ReplaySource, recording every call."""

        info, counters, position_s, n_samples, paused = (session.source.info,
                                                         session.source.counters, 12.0,
                                                         120_000, False)

        def __getattr__(self, name: str):  # noqa: ANN204
            if name in ("play", "pause", "set_speed", "seek", "seek_time", "next_event",
                        "previous_event"):
                return lambda *a: calls.append((name, *a))
            raise AttributeError(name)

    session.source = ReplayStandIn()  # type: ignore[assignment]
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    bar = w.replay_bar
    assert isinstance(bar, ReplayBar)
    w.refresh_replay()
    assert bar.time_label.text() == "0:00:12 / 0:01:00"
    bar.timeline.resize(412, 34)
    qtbot.mouseClick(bar.timeline, Qt.MouseButton.LeftButton, pos=bar.timeline.rect().center())
    bar.next_button.click()
    bar.prev_button.click()
    bar.play_button.click()
    bar.speed.setCurrentIndex(bar.speed.findData(4.0))
    names = [c[0] for c in calls]
    assert names == ["seek_time", "next_event", "previous_event", "pause", "set_speed"]
    assert calls[0][1] == pytest.approx(30.0, abs=0.5) and calls[-1][1] == 4.0
    w.close()


class SounderStandIn:
    """The AlarmSounder interface, recording every priority it is handed."""

    instances: ClassVar[list[SounderStandIn]] = []

    def __init__(self, volume: float = 0.5, muted: bool = False) -> None:
        self.volume, self.muted = volume, muted
        self.available, self.notice = False, "audio off: no output device (test)"
        self.priorities: list[str | None] = []
        self.closed = False
        SounderStandIn.instances.append(self)

    def set_priority(self, priority: str | None) -> None:
        self.priorities.append(priority)

    def close(self) -> None:
        self.closed = True


def test_alarm_sound_follows_audible_and_volume_persists(app, tmp_path, qtbot,
                                                         monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("ionm_station.gui.main_window.AlarmSounder", SounderStandIn)
    SounderStandIn.instances.clear()
    path = tmp_path / "gui.json"
    session = make_session()
    engine = attach_alarms(session)
    w = MainWindow(session, path)
    qtbot.addWidget(w)
    (sounder,) = SounderStandIn.instances
    session.start()
    try:
        w.show()
        engine.update(now=4000, events=[a_train(session, "L5-L", 1.0, 0.8)])
        qtbot.waitUntil(lambda: bool(sounder.priorities) and sounder.priorities[-1] is not None,
                        timeout=2000)
        assert sounder.priorities == [engine.audible] and engine.audible in (
            "advisory", "caution", "warning")
        w.silence()  # silenced: audible is None, so the sounder is told to stop
        qtbot.waitUntil(lambda: sounder.priorities[-1] is None, timeout=2000)
        w.refresh_status()  # no device: the notice stays in the status bar (no dialog)
        assert w.status_labels["audio"].text() == "audio off: no output device (test)"
        w.mute_button.click()
        w.volume_slider.setValue(80)
        assert sounder.muted and sounder.volume == pytest.approx(0.8)
        w.close()
    finally:
        session.stop()
    assert sounder.closed
    doc = json.loads(path.read_text())
    assert doc["alarm_muted"] is True and doc["alarm_volume"] == pytest.approx(0.8)
    again = MainWindow(make_session(seconds=0.1, realtime=False), path)
    qtbot.addWidget(again)
    assert SounderStandIn.instances[-1].muted and again.mute_button.isChecked()
    assert SounderStandIn.instances[-1].volume == pytest.approx(0.8)
    again.close()


def test_filter_band_is_editable_and_persists(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    path = tmp_path / "gui.json"
    session = make_session(seconds=1.0, realtime=False)
    w = MainWindow(session, path)
    qtbot.addWidget(w)
    assert w.status_labels["recording"].text() == "REC off"
    applied: list[tuple[float, float]] = []
    real = session.set_band
    session.set_band = lambda lo, hi: (real(lo, hi), applied.append((lo, hi)))  # type: ignore[method-assign]
    w.filter_low.setValue(30.0)
    assert applied[-1] == (30.0, w.filter_high.value())
    w.filter_high.setValue(20.0)  # low > high: refused, said in the status bar
    assert applied[-1][1] != 20.0 and "not changed" in w.statusBar().currentMessage()
    w.filter_high.setValue(800.0)
    w.close()
    doc = json.loads(path.read_text())
    assert (doc["band_low_hz"], doc["band_high_hz"]) == (30.0, 800.0)
    again_session = make_session(seconds=1.0, realtime=False)
    again = MainWindow(again_session, path)
    qtbot.addWidget(again)
    assert again_session.dsp._new_band == (30.0, 800.0)  # applied at start-up
    again.close()


def hunt_session(seconds: float, rate_hz: float = 2000.0, hunts=("L5-R",)) -> Session:
    """The pedicle-screw scenario run (not real time) for at least ``seconds`` and until the
    queued hunts are done (how much signal a hunt takes depends on thread timing)."""
    profile = dataclasses.replace(load_profile("simulated"), sample_rate_hz=rate_hz)
    montage = montage_for(profile)
    source = build_source(profile, montage, scenario="pedicle_screws", realtime=False)
    session = Session(source, montage, max_samples=source.info.seconds_to_samples(seconds + 60))
    for key in hunts:
        session.triggered.hunt(*key.split("-"))
    session.start()
    assert session.wait_until(source.info.seconds_to_samples(seconds), 120)
    deadline = time.monotonic() + 60
    while len(session.triggered.screw_log.screws) < len(hunts) and time.monotonic() < deadline:
        time.sleep(0.01)
    session.stop()
    assert len(session.triggered.screw_log.screws) == len(hunts)
    return session


def test_triggered_dock_shows_hunt_and_confirms_high_current(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    session = hunt_session(15.0)
    trig = session.triggered
    (screw,) = trig.screw_log.screws
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    view = w.triggered_view
    assert isinstance(view, TriggeredView) and w.triggered_dock is not None
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
    trig.stimulate = lambda *a, **k: calls.append((a, k)) or 0  # type: ignore[method-assign]
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
    session.triggered.stimulator = None
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    view = w.triggered_view
    assert not view.hunt_button.isEnabled() and not view.stim_button.isEnabled()
    assert "cannot stimulate" in view.hunt_button.toolTip()
    w.close()


def test_paused_replay_scrolls_back_through_the_ring(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    session = make_session(seconds=20.0, realtime=False)
    session.start()
    assert session.wait_until(session.info.seconds_to_samples(20.0), 60)
    session.stop()

    class PausedReplay:
        info, counters, position_s, n_samples, paused = (session.source.info,
                                                         session.source.counters, 20.0,
                                                         40_000, True)

        def __getattr__(self, name: str):  # noqa: ANN204
            return lambda *a: None

    session.source = PausedReplay()  # type: ignore[assignment]
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    _settle(app, qtbot, 100)
    w.refresh_replay()
    newest = session.filtered.published
    assert w.review_slider.isEnabled() and w.traces.max_review_s() > 5.0
    w.review_slider.setValue(50)  # 5.0 s back
    assert w.traces.review_s == pytest.approx(5.0)
    assert w.traces.last_drawn_index == newest - 5 * 2000
    assert "−5.0 s" in w.review_label.text()
    w.traces.set_review(100.0)  # clamped to what the ring holds beyond one window
    assert w.traces.review_s == pytest.approx(w.traces.max_review_s(), abs=1e-3)
    session.source.paused = False  # playing again: back to live
    w.refresh_replay()
    assert w.traces.review_s == 0.0 and not w.review_slider.isEnabled()
    assert w.traces.last_drawn_index == newest
    w.close()


# --- screenshots ----------------------------------------------------------------------------


def _case_at(seconds: float) -> Session:
    """The lumbar demo acquired (not real time) up to ``seconds``, with the events the
    detector and artifact blanker will produce, taken from the simulator's ground truth."""
    session = make_session(seconds=seconds, rate_hz=10000.0, realtime=False)
    session.start()
    assert session.wait_until(session.source.info.seconds_to_samples(seconds), 60)
    session.stop()
    truth = session.source.truth
    for a in truth.artifacts:
        channels = () if a.kind == "cautery" else a.channels
        session.events.append(Event("artifact", a.onset, a.offset + 1, channels,
                                    {"kind": a.kind}))
    for e in truth.events:
        kind = {"a_train": "train", "b_train": "train"}.get(e.kind, e.kind)
        for ch, gain in zip(e.channels, e.gains):
            session.events.append(Event("emg_event", e.onset, e.offset + 1, (ch,), {
                "kind": kind, "train_type": e.train_type, "peak_uv": e.peak_uv * gain,
                "above_threshold": e.peak_uv * gain >= session.montage.channels[ch].threshold_uv}))
    fs = session.info.sample_rate_hz
    session.events.append(Event("marker", int(36.5 * fs), int(36.5 * fs), (),
                                {"text": "Screw L5 left"}))
    return session


def _settle(app, qtbot, ms: int = 300) -> None:  # noqa: ANN001
    qtbot.wait(ms)
    app.processEvents()


def test_screenshots(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    session = _case_at(43.0)
    engine = attach_alarms(session)
    fs = session.info.sample_rate_hz
    engine.update(now=int(43 * fs), events=[a_train(session, "L5-L", 40.0, 3.0)])
    burst = SimpleNamespace(channel=session.montage.channels_of("L3", "L")[0], kind="burst",
                            train_type=None, onset=int(39 * fs), offset=int(39.2 * fs),
                            peak_uv=400.0)
    engine.update(now=int(43 * fs), events=[burst])
    engine.set_source_lost(False, int(43 * fs))
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    _settle(app, qtbot)
    w.traces.update_frame()
    _settle(app, qtbot)
    live = w.grab()
    assert live.width() == 1600 and live.save(str(SCREENSHOTS / "live_view.png"))
    tile = w.alarm_panel.tiles["L5-L"]
    assert tile.state == "alarm"

    surgeon = AlarmWindow(session.montage.root_sides(), "lumbar · 12 roots")
    qtbot.addWidget(surgeon)
    surgeon.resize(1280, 800)
    surgeon.panel.update_tiles(engine.tiles())
    no_signal = dataclasses.replace(engine.tile("L4-R"), state="no_signal",
                                    reason="lead-off / saturated")
    blanked = dataclasses.replace(engine.tile("S2-L"), state="blanked",
                                  reason="cautery: detection blanked")
    surgeon.panel.update_tiles([no_signal, blanked])
    surgeon.show()
    _settle(app, qtbot)
    assert surgeon.grab().save(str(SCREENSHOTS / "alarm_panel.png"))
    assert {t.state for t in (surgeon.panel.tiles[k] for k in surgeon.panel.tiles)} == {
        "alarm", "activity", "quiet", "no_signal", "blanked"}
    surgeon.close()

    cautery = _case_at(24.5)
    c = MainWindow(cautery, tmp_path / "gui2.json")
    qtbot.addWidget(c)
    c.resize(1600, 1000)
    c.mode_box.setCurrentIndex(1)  # scroll mode
    c.show()
    _settle(app, qtbot)
    c.traces.update_frame()
    _settle(app, qtbot)
    assert c.grab().save(str(SCREENSHOTS / "live_cautery_scroll.png"))
    c.close()

    bar = ReplayBar()
    qtbot.addWidget(bar)
    bar.resize(1600, 46)
    bar.set_position(2592.0, 7260.0)
    bar.set_events([(t, k) for t, k in ((380, "artifact"), (900, "emg_event"), (1510, "alarm"),
                                        (2200, "marker"), (2590, "emg_event"), (3100, "alarm"),
                                        (4400, "artifact"), (5100, "marker"))])
    bar.set_playing(False)
    bar.show()
    _settle(app, qtbot, 100)
    assert bar.grab().save(str(SCREENSHOTS / "replay_bar.png"))
    w.close()
    for name in ("live_view.png", "live_cautery_scroll.png", "alarm_panel.png", "replay_bar.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000 or name == "replay_bar.png"


def test_screenshot_triggered(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    """The Triggered EMG dock after two threshold hunts and two trains-of-four."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    session = hunt_session(75.0, rate_hz=10000.0, hunts=("L5-R", "S1-L"))
    assert len(session.triggered.screw_log.screws) == 2 and session.triggered.tof_results
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.triggered_view.target_box.setCurrentText("L5-R")
    w.show()
    w.triggered_dock.raise_()
    w.resizeDocks([w.triggered_dock], [560], Qt.Orientation.Horizontal)
    _settle(app, qtbot)
    w.traces.update_frame()
    _settle(app, qtbot)
    assert w.triggered_dock.grab().save(str(SCREENSHOTS / "triggered_dock.png"))
    assert w.grab().save(str(SCREENSHOTS / "triggered_window.png"))
    w.close()
    assert (SCREENSHOTS / "triggered_dock.png").stat().st_size > 10_000
