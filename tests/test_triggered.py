"""Triggered EMG: CMAP measurement, threshold hunt, screw bands, train-of-four, closed loop."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from ionm_station.events import EventLog
from ionm_station.montage import load_montage
from ionm_station.profiles import SerialSettings
from ionm_station.ring import RingBuffer
from ionm_station.sim.amplifier import SimulatedAmplifier
from ionm_station.sim.emulator import DeviceEmulator, EmulatorSettings
from ionm_station.sim.scenario import ScriptEvent, load_scenario
from ionm_station.sources.serial_source import SerialSource
from ionm_station.triggered.controller import WAVEFORMS_KEPT, HighCurrentNotConfirmed, TriggeredEmg
from ionm_station.triggered.hunt import ThresholdHunt
from ionm_station.triggered.screws import REGIONS, ScrewLog
from support.offline import run_until_idle

FS = 10_000.0


def run_hunt(threshold_ma: float, flip=lambda c: False) -> ThresholdHunt:
    h = ThresholdHunt()
    while (c := h.next_current()) is not None:
        h.record(c, (c >= threshold_ma) != flip(c))
    return h


@pytest.mark.parametrize("true_ma", [0.5, 0.7, 1.3, 2.9, 3.2, 4.0, 6.0, 7.99, 8.0, 11.1, 14.0, 19.6])
def test_hunt_brackets_then_bisects(true_ma: float) -> None:
    h = run_hunt(true_ma)
    assert h.threshold_ma is not None
    assert 0 <= h.threshold_ma - true_ma <= h.resolution_ma + 1e-9
    assert h.stimuli <= 11


def test_hunt_reports_no_response_up_to_max() -> None:
    h = run_hunt(50.0)
    assert h.threshold_ma is None and h.done and h.trials[-1][0] == 20.0


def test_hunt_survives_a_false_response() -> None:
    # one spurious response at a low current must not end the hunt there
    h = run_hunt(6.0, flip=lambda c: abs(c - 4.0) < 1e-9)
    assert h.threshold_ma is not None and abs(h.threshold_ma - 6.0) <= 2.0


def test_screw_bands_lumbar_and_thoracic() -> None:
    log = ScrewLog()
    assert [log.classify(x) for x in (2.0, 3.99, 4.0, 7.9, 8.0, None)] == [
        "likely breach", "likely breach", "possible breach", "possible breach", "no breach", "no breach"]
    th = ScrewLog(region=REGIONS["thoracic"])
    for ma in (18.0, 20.0, 16.0):
        th.add("T8", "L", ma, 7)
    r = th.add("T9", "L", 6.5, 7)  # ≥ 6 mA but 65 % below the others' mean
    assert r.band == "possible breach" and "below the mean" in r.note
    neg = ScrewLog().add("L4", "R", None, 9, reliable=False)
    assert "unreliable" in neg.note


def closed_loop(scenario, targets: list[str], seconds: float, seed: int = 3,
                min_seconds: float = 1.0):
    """Run the controller on the simulated amplifier (its stimulator) with hunts on
    ``targets``, for at least ``min_seconds`` and at most ``seconds``."""
    montage = load_montage("lumbar")
    amp = SimulatedAmplifier(montage, scenario, FS, seed=seed, realtime=False)
    amp.open()
    ring = RingBuffer(int(10 * FS), 16)
    log = EventLog()
    ctl = TriggeredEmg(montage, FS, ring, log.append, stimulator=amp)
    for t in targets:
        ctl.hunt(*t.split("-"))
    run_until_idle(amp, ring, ctl, int(seconds * FS), min_samples=int(min_seconds * FS))
    return ctl, log, amp


def test_closed_loop_hunts_find_the_scenarios_thresholds() -> None:
    sc = dataclasses.replace(load_scenario("pedicle_screws"), events=(), loop=False)
    ctl, log, amp = closed_loop(sc, ["L5-R", "S1-L", "L4-L"], 90)
    found = {f"{s.level}-{s.side}": s for s in ctl.screw_log.screws}
    for key, true_ma in sc.thresholds_ma.items():
        assert abs(found[key].threshold_ma - true_ma) <= 0.5, (key, found[key])
        assert found[key].stimuli <= 12
    assert found["L5-R"].band == "likely breach"
    assert found["S1-L"].band == "possible breach"
    assert found["L4-L"].band == "no breach"
    assert len(log.of_kind("screw_result")) == 3
    delivered = [s for s in amp.truth.stimuli]
    assert len(log.of_kind("cmap")) == len(delivered)


@pytest.mark.parametrize("level", [0, 1, 2, 3, 4])
def test_train_of_four_count(level: int) -> None:
    train = ScriptEvent(kind="tof", at_s=1.0, target="L5-L", block_level=level, current_ma=40.0)
    sc = dataclasses.replace(load_scenario("quiet"), events=(train,), loop=False)
    ctl, log, _ = closed_loop(sc, [], 4, seed=5, min_seconds=4)
    (result,) = ctl.tof_results
    assert result.count == level
    reason = log.of_kind("tof")[0].data["blockade"]
    if level < 4:
        assert f"TOF {level}/4" in reason
    else:
        assert result.ratio == pytest.approx(0.98**3, abs=0.05) and reason == ""  # recovered


def test_high_current_needs_confirmation() -> None:
    montage = load_montage("lumbar")
    amp = SimulatedAmplifier(montage, load_scenario("quiet"), FS, realtime=False)
    amp.open()
    ctl = TriggeredEmg(montage, FS, RingBuffer(1000, 16), EventLog().append, stimulator=amp)
    with pytest.raises(HighCurrentNotConfirmed):
        ctl.stimulate(35.0, "L5-L")
    assert ctl.stimulate(35.0, "L5-L", confirmed=True) > 0
    assert ctl.stimulate(10.0, "L5-L") > 0
    with pytest.raises(ValueError, match="no T9-L"):
        ctl.hunt("T9", "L")


def test_no_response_without_cmap_even_with_large_stimulus_artifact() -> None:
    sc = dataclasses.replace(load_scenario("quiet"), thresholds_ma={"L5-L": 50.0})
    ctl, _, _ = closed_loop(sc, ["L5-L"], 30)
    (s,) = ctl.screw_log.screws
    assert s.threshold_ma is None and s.band == "no breach"
    assert all(not r.any for r in ctl.responses)
    assert np.max([r.max_uv for r in ctl.responses]) < 50.0


def test_a_response_window_holding_another_stimulus_is_not_measured() -> None:
    """Two stimuli 30 ms apart: neither window is clean, so neither is scored; a hunt waiting
    on one of them stimulates again instead of taking a confounded 'no response'."""
    sc = dataclasses.replace(load_scenario("quiet"), events=(
        ScriptEvent(kind="stimulus", at_s=1.0, target="L5-R", current_ma=10.0),
        ScriptEvent(kind="stimulus", at_s=1.03, target="L4-L", current_ma=10.0)), loop=False)
    ctl, log, _ = closed_loop(sc, [], 2, seed=2, min_seconds=2)
    assert ctl.responses == []
    missed = log.of_kind("cmap_missed")
    assert len(missed) == 2 and all("another stimulus" in e.data["reason"] for e in missed)


def test_only_the_newest_responses_keep_their_waveforms() -> None:
    """Over a long case the controller keeps every response's measures but the waveform only of
    each target's newest WAVEFORMS_KEPT (what the stacked display draws): memory stays bounded."""
    n = WAVEFORMS_KEPT + 14
    sc = dataclasses.replace(load_scenario("quiet"), loop=False, events=tuple(
        ScriptEvent(kind="stimulus", at_s=0.5 + 0.25 * i, target=("L5-R", "L4-L")[i % 2],
                    current_ma=10.0) for i in range(2 * n)))
    ctl, _, _ = closed_loop(sc, [], 0.5 + 0.25 * 2 * n + 0.5, min_seconds=0.5 + 0.25 * 2 * n + 0.5)
    assert len(ctl.responses) == 2 * n
    for target in ("L5-R", "L4-L"):
        mine = [r for r in ctl.responses if r.target == target]
        assert [r.waveform_uv is not None for r in mine] == [False] * (n - WAVEFORMS_KEPT) + [True] * WAVEFORMS_KEPT
        assert all(len(r.peak_uv) == len(r.channels) > 0 for r in mine)  # the measures stay


SERIAL_STIMULI = """
name = "serial-stimuli"
duration_s = 10
loop = false
seed = 4
montage = "lumbar"
[thresholds_ma]
"L5-R" = 3.0
[[events]]
kind = "stimulus"
target = "L5-R"
at_s = 0.5
current_ma = 10.0
[[events]]
kind = "stimulus"
target = "L4-L"
at_s = 1.2
current_ma = 2.5
"""


def test_serial_stimuli_without_target_are_measured_on_every_channel(tmp_path) -> None:
    """The serial protocol names no target: its stimuli still get CMAPs, on every channel,
    logged with target None and assigned to no screw."""
    scenario = tmp_path / "stimuli.toml"
    scenario.write_text(SERIAL_STIMULI)
    settings = EmulatorSettings(link=tmp_path / "amp", rate_hz=FS, scenario=str(scenario),
                                seconds=2.0, speed=4.0)
    montage = load_montage("lumbar")
    ring = RingBuffer(int(10 * FS), 16)
    log = EventLog()
    ctl = TriggeredEmg(montage, FS, ring, log.append)
    with DeviceEmulator(settings) as emulator:
        source = SerialSource(SerialSettings(str(settings.link)), montage.labels, FS)
        source.open()
        runner = threading.Thread(target=emulator.run)
        runner.start()
        deadline = time.monotonic() + 10.0
        try:
            while ring.published < 2 * FS and time.monotonic() < deadline:
                chunk = source.read()
                if chunk is not None:
                    ring.write_nan(chunk.start - ring.published)  # a gap stays a gap
                    ring.write(chunk.data)
                    ctl.on_events(chunk.events)
                    ctl.poll()
        finally:
            source.close()
            runner.join()
    assert ring.published == 2 * FS and not ctl.busy
    first, second = log.of_kind("cmap")
    assert (first.start, second.start) == (5000, 12000)
    for e, current in ((first, 10.0), (second, 2.5)):
        assert e.channels == tuple(range(16))
        assert e.data["target"] is None and e.data["current_ma"] == current
    target = montage.channels_of("L5", "R")
    hit = ctl.responses[0]
    assert [c for c in range(16) if hit.responded[c]] == target
    assert min(hit.peak_uv[c] for c in target) > 200
    assert not ctl.responses[1].any  # 2.5 mA, far below L4-L's threshold
    assert ctl.screw_log.screws == [] and log.of_kind("screw_result") == []
