"""Never silent, on screen: faults injected through the real paths show their technical alarm
on every tile of the window within 0.5 s, the traces keep moving (raw fallback under a banner)
and recover; tile text fits its tile at docked and full-screen size, however long the reason."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtGui import QFontMetricsF  # noqa: E402

from ionm_station.alarms import TileState  # noqa: E402
from ionm_station.gui import theme  # noqa: E402
from ionm_station.gui.alarm_panel import AlarmPanel, AlarmWindow  # noqa: E402
from ionm_station.gui.app import ensure_app  # noqa: E402
from ionm_station.gui.main_window import MainWindow  # noqa: E402
from ionm_station.gui.tile_layout import MIN_PX, TileLayout, wrap  # noqa: E402
from ionm_station.gui.trace_feed import TraceFeed, raw_band_hz  # noqa: E402
from ionm_station.montage import load_montage  # noqa: E402
from ionm_station.ring import RingBuffer  # noqa: E402
from support.gui import Fault, live_window, make_session  # noqa: E402

#: A reason as long as real ones get (a worker fault with its exception text).
LONG_REASON = ("processing failed repeatedly, stopped retrying (IndexError: rows -6..1574 "
               "outside 0..30000 in the ECG canceller's template subtraction at sample 27431)")
LONG_TECHNICAL = ("RECORDING STOPPED: disk full (OSError: [Errno 28] No space left on device) · "
                  "LOW SAMPLE RATE: 250 Hz: band 10–112 Hz, ECG removal off")


@pytest.fixture(scope="module")
def app():  # noqa: ANN201
    return ensure_app()


@pytest.fixture
def window(app, tmp_path, qtbot):  # noqa: ANN001, ANN201
    with live_window(qtbot, tmp_path) as w:
        yield w


def said(layout: TileLayout, role: str) -> str:
    """What the tile painted in lines of ``role`` (headline, reason, technical …)."""
    return " ".join(line.text for line in layout.lines if line.role == role)


def tiles_all(w: MainWindow, state: str) -> bool:
    return all(t.state == state for t in w.alarm_panel.tiles.values())


def test_processing_fault_shows_not_monitoring_raw_traces_and_recovers(window, qtbot) -> None:  # noqa: ANN001
    w = window
    session = w.session
    fault = Fault(session.processing.chain, "process", at=5)
    qtbot.waitUntil(lambda: fault.fired_at is not None, timeout=3000)
    qtbot.waitUntil(lambda: tiles_all(w, "not_monitoring"), timeout=2000)
    assert time.monotonic() - fault.fired_at <= 0.5
    shown = next(iter(w.alarm_panel.tiles.values()))
    assert said(shown.text_layout(), "headline") == "NOT MONITORING"
    assert "RuntimeError: injected fault" in shown.tile.reason
    assert w.traces.raw_mode and w.traces.banner.isVisible()
    assert w.traces.banner.text().startswith(
        "NOT MONITORING — raw signal, no artifact removal or detection: processing")
    drawn = w.traces.last_drawn_index
    qtbot.waitUntil(lambda: w.traces.last_drawn_index > drawn + 400, timeout=2000)
    assert w.traces.raw_mode  # the traces kept moving on the raw signal
    y = np.concatenate([c.getData()[1] for c in w.traces.curves])
    assert np.isfinite(y).any()
    assert w.sounder.priorities[-1] == "warning"  # technical alarms sound
    qtbot.waitUntil(lambda: tiles_all(w, "quiet"), timeout=6000)  # supervisor restarted it
    qtbot.waitUntil(lambda: w.sounder.priorities[-1] is None, timeout=1000)
    qtbot.waitUntil(lambda: not w.traces.raw_mode and not w.traces.banner.isVisible(),
                    timeout=1000)
    back = w.traces.last_drawn_index
    qtbot.waitUntil(lambda: w.traces.last_drawn_index > back + 200, timeout=2000)
    assert session.events.of_kind("worker_restarted")


def test_source_fault_shows_signal_lost_and_recovers(window, qtbot) -> None:  # noqa: ANN001
    w = window
    session = w.session
    fault = Fault(session.source, "read", times=10**9, error=OSError("amplifier unplugged"))
    qtbot.waitUntil(lambda: fault.fired_at is not None, timeout=3000)
    qtbot.waitUntil(lambda: tiles_all(w, "signal_lost"), timeout=2000)
    assert time.monotonic() - fault.fired_at <= 0.5
    tile = w.alarm_panel.tiles["L5-L"]
    assert said(tile.text_layout(), "headline") == "SIGNAL LOST"
    assert "amplifier unplugged" in tile.tile.reason
    assert w.traces.banner.isVisible() and w.traces.banner.text().startswith("SIGNAL LOST — ")
    assert not w.traces.raw_mode  # processing is fine: nothing new to show, no fallback
    assert w.sounder.priorities[-1] == "warning"  # technical alarms sound
    fault.heal()
    qtbot.waitUntil(lambda: tiles_all(w, "quiet"), timeout=8000)
    qtbot.waitUntil(lambda: w.sounder.priorities[-1] is None, timeout=1000)
    qtbot.waitUntil(lambda: not w.traces.banner.isVisible(), timeout=1000)


def test_a_state_the_window_cannot_read_shows_not_monitoring(window, qtbot) -> None:  # noqa: ANN001
    w = window
    fault = Fault(w.session, "state", times=10**9, error=RuntimeError("state unreadable"))
    qtbot.waitUntil(lambda: fault.fired_at is not None, timeout=1000)
    qtbot.waitUntil(lambda: tiles_all(w, "not_monitoring"), timeout=1000)
    assert time.monotonic() - fault.fired_at <= 0.5
    assert "cannot read the station's state" in w.alarm_panel.tiles["L5-L"].tile.reason
    assert w.state.audible == "warning" and w.traces.banner.isVisible()
    fault.heal()
    qtbot.waitUntil(lambda: tiles_all(w, "quiet"), timeout=2000)


def test_a_non_blinding_technical_alarm_is_a_band_under_the_clinical_state(app, qtbot) -> None:  # noqa: ANN001
    montage = load_montage("lumbar")
    panel = AlarmPanel(montage)
    qtbot.addWidget(panel)
    panel.resize(300, 900)
    panel.show()
    alarm = TileState("L5-L", "L5", "L", "alarm", "caution", "A-train L5-L TibAnt 180 µV",
                      0.8, latched=True, technical="RECORDING STOPPED: disk full")
    panel.update_tiles([alarm])
    tile = panel.tiles["L5-L"]
    layout = tile.text_layout()
    assert tile.state == "alarm" and said(layout, "headline") == "A-TRAIN"
    assert layout.band is not None and said(layout, "technical") == "RECORDING STOPPED: disk full"
    assert layout.band.bottom() <= tile.text_rect().bottom() + 0.5


def test_technical_colours_are_their_own() -> None:
    clinical = {theme.TILE_COLOURS[s][0] for s in ("quiet", "activity", "alarm", "blanked",
                                                   "no_signal")}
    technical = [theme.TILE_COLOURS[s][0] for s in theme.TECHNICAL_STATES]
    assert len(set(technical)) == 2 and not clinical.intersection(technical)
    assert theme.TECHNICAL_BAND[0] not in clinical | set(technical)
    assert theme.tile_colours("not_monitoring", None) == theme.ENDED  # ended on purpose
    assert theme.tile_colours("not_monitoring", "warning")[0] == technical[0]


def assert_fits(layout: TileLayout, rect, reason: str, may_cut: tuple[str, ...] = ()) -> None:  # noqa: ANN001
    """Every painted line fits its rectangle inside the tile, in a readable size; nothing but
    ``may_cut`` was cut; the reason lines put together are the whole reason."""
    assert set(layout.elided) <= set(may_cut), layout.elided
    for line in layout.lines:
        width = QFontMetricsF(line.font).horizontalAdvance(line.text)
        assert width <= line.rect.width() + 0.5, (line.role, line.text, width, line.rect)
        assert rect.contains(line.rect.adjusted(0.5, 0.5, -0.5, -0.5)), (line.role, line.rect, rect)
        assert line.font.pixelSize() >= MIN_PX
    assert said(layout, "reason").split() == reason.split()


def check_panel(panel: AlarmPanel, tile_keys: list[str],
                may_cut: tuple[str, ...] = ()) -> list[TileLayout]:
    """Show NOT MONITORING with a long reason and a long technical band on every tile and
    check that each fits (``may_cut``: what may give way); returns the layouts."""
    panel.update_tiles([TileState(k, "", "", "not_monitoring", "warning", LONG_REASON, 12.3,
                                  technical=LONG_TECHNICAL) for k in tile_keys])
    layouts = []
    for tile in panel.tiles.values():
        layout = tile.text_layout()
        assert_fits(layout, tile.text_rect(), LONG_REASON, may_cut)
        assert said(layout, "headline") == "NOT MONITORING"
        band = said(layout, "technical")
        assert band.startswith("RECORDING STOPPED")
        assert "technical" in layout.elided or band.split() == LONG_TECHNICAL.split()
        assert LONG_TECHNICAL in tile.toolTip() and LONG_REASON in tile.toolTip()
        assert not tile.grab().isNull()
        layouts.append(layout)
    return layouts


def test_long_reasons_fit_the_docked_tiles(app, tmp_path, qtbot) -> None:  # noqa: ANN001
    """The docked panel of a 1600×1000 window (lumbar, 12 tiles)."""
    w = MainWindow(make_session(seconds=0.1, realtime=False), tmp_path / "gui.json")
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.wait(50)
    some = next(iter(w.alarm_panel.tiles.values()))
    assert some.width() < 250 and some.height() < 200  # really the small, docked size
    # the headline and the reason always fit; the technical band may give way to one line
    # (whole in the tooltip, the status bar and on the surgeon's display)
    check_panel(w.alarm_panel, w.montage.tile_keys(), may_cut=("details", "technical"))
    w.close()


@pytest.mark.parametrize("montage_name", ["lumbar", "combined32"])
def test_long_reasons_fit_the_full_screen_tiles(app, qtbot, montage_name: str) -> None:  # noqa: ANN001
    montage = load_montage(montage_name)
    surgeon = AlarmWindow(montage, montage.name)
    qtbot.addWidget(surgeon)
    surgeon.resize(1920, 1080)
    surgeon.show()
    qtbot.wait(50)
    layouts = check_panel(surgeon.panel, montage.tile_keys())
    if montage_name == "lumbar":  # room to spare: larger text
        assert min(layout.small_px for layout in layouts) > MIN_PX
    surgeon.close()


def test_a_tile_too_small_for_its_text_elides_at_the_smallest_size(app, qtbot) -> None:  # noqa: ANN001
    panel = AlarmPanel(load_montage("lumbar"))
    qtbot.addWidget(panel)
    panel.resize(300, 600)
    panel.show()
    qtbot.wait(50)
    panel.update_tiles([TileState("L5-L", "L5", "L", "not_monitoring", "warning",
                                  LONG_REASON * 3)])
    tile = panel.tiles["L5-L"]
    layout = tile.text_layout()
    assert "reason" in layout.elided and layout.small_px == MIN_PX
    assert [line for line in layout.lines if line.role == "reason"][-1].text.endswith("…")
    assert LONG_REASON in tile.toolTip()  # the whole text is still there


def test_wrap_breaks_words_longer_than_a_line(app) -> None:  # noqa: ANN001
    metrics = QFontMetricsF(app.font())
    lines = wrap("a " + "x" * 200 + " b", metrics, 80)
    assert all(metrics.horizontalAdvance(line) <= 80 for line in lines)
    assert "".join(lines).replace(" ", "") == "a" + "x" * 200 + "b"


def test_trace_feed_band_passes_the_raw_ring_and_switches_at_the_index_reached() -> None:
    fs = 2000.0
    clean, raw = RingBuffer(20000, 2), RingBuffer(20000, 2)
    t = np.arange(8000) / fs
    signal = 300.0 + 50 * np.sin(2 * np.pi * 120 * t)  # DC offset + 120 Hz
    raw.write(np.column_stack([signal, signal]).astype(np.float32))
    clean.write(np.zeros((3000, 2), np.float32))
    feed = TraceFeed(clean, raw, fs)
    assert feed.read().n_samples == 0  # a new feed reads only new clean samples
    feed.set_raw(True, 3000)
    got = feed.read()
    assert got.start == 3000 and got.stop == 8000
    assert abs(got.data[2000:, 0].mean()) < 5 and np.ptp(got.data[2000:, 0]) > 80  # DC gone
    assert raw_band_hz(fs) == (10.0, 900.0) and raw_band_hz(20000.0) == (10.0, 3000.0)
    feed.set_raw(False, 8000)
    assert feed.read().n_samples == 0
    clean.write(np.ones((6000, 2), np.float32))  # the clean ring reaches 9000
    got = feed.read()
    assert (got.start, got.stop) == (8000, 9000)


def test_window_over_a_finished_run_says_not_monitoring_without_raw_fallback(app, tmp_path,
                                                                               qtbot) -> None:  # noqa: ANN001
    session = make_session(seconds=1.0, realtime=False)
    session.start()
    assert session.wait_until(2000, 30)
    qtbot.waitUntil(lambda: session.finished, timeout=5000)
    w = MainWindow(session, tmp_path / "gui.json")
    qtbot.addWidget(w)
    w.refresh_tiles()
    assert tiles_all(w, "not_monitoring") and "run ended" in w.traces.banner.text()
    assert not w.traces.raw_mode  # the clean ring holds the whole run
    assert w.state.audible is None
    w.close()
    session.stop()
