"""One Source interface for every source: state, live, stimulator, workers, recover, and one
definition of lead-off intervals and stimulus data."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from ionm_station.clock import ManualClock
from ionm_station.events import Event
from ionm_station.montage import load_montage
from ionm_station.profiles import SerialSettings
from ionm_station.sim.amplifier import SimulatedAmplifier
from ionm_station.sim.emulator import DeviceEmulator, EmulatorSettings
from ionm_station.sim.scenario import load_scenario
from ionm_station.sources.base import STATES, Source, lost_in_interruption
from ionm_station.sources.replay import EdfMedia, ReplaySource, as_source_events
from ionm_station.sources.serial_source import SerialReader, SerialSource
from ionm_station.stream import StreamInfo

FS = 2000.0
MONTAGE = load_montage("lumbar").first(4)


def media(events: list[Event], seconds: float = 1.0) -> EdfMedia:
    n = int(seconds * FS)
    return EdfMedia(Path("case.edf"), StreamInfo(FS, MONTAGE.labels),
                    np.zeros((n, 4), np.float32), events)


def check_interface(source: Source) -> None:
    """What every source offers, before and after open."""
    assert source.state == "closed"
    source.open()
    try:
        assert source.state == "streaming"
        source.recover()  # nothing to re-establish: a no-op
        assert source.state == "streaming"
        assert any(source.read() is not None for _ in range(40))  # a live device: soon
    finally:
        source.close()
    assert source.state == "closed" and source.state in STATES


@pytest.mark.parametrize("realtime", [True, False])
def test_simulator(realtime: bool) -> None:
    amp = SimulatedAmplifier(MONTAGE, load_scenario("quiet"), 10000.0, realtime=realtime,
                             clock=ManualClock())
    check_interface(amp)
    assert amp.live is realtime and amp.stimulator is amp and amp.workers() == []


@pytest.mark.parametrize("speed", [1.0, None])
def test_replay(speed: float | None) -> None:
    replay = ReplaySource(media([]), speed=speed, clock=ManualClock())
    check_interface(replay)
    assert replay.live is (speed is not None) and replay.stimulator is None
    assert replay.workers() == []
    replay.set_speed(None)
    assert not replay.live  # follows the speed


def test_replay_ends() -> None:
    replay = ReplaySource(media([], seconds=0.1), speed=None)
    replay.open()
    while replay.read() is not None:
        assert replay.state == "streaming" or replay.at_end
    assert replay.state == "ended"


def test_serial(tmp_path: Path) -> None:
    with DeviceEmulator(EmulatorSettings(link=tmp_path / "amp", channels=4)) as emulator:
        stop = threading.Event()
        runner = threading.Thread(target=emulator.run, args=(stop,))
        runner.start()
        try:
            source = SerialSource(SerialSettings(str(emulator.settings.link)),
                                  emulator.montage.labels, 10000.0)
            check_interface(source)
        finally:
            stop.set()
            runner.join()
    (reader,) = source.workers()
    assert isinstance(reader, SerialReader) and reader.health().state == "stopped"
    assert source.live and source.stimulator is None


# --- one definition of lead-off and stimulus data ---------------------------------------------


def test_replay_plays_recorded_lead_off_as_intervals() -> None:
    recorded = [
        Event("lead_off", 100, None, (1,)),  # opened and closed by this station's sources
        Event("lead_off", 100, 300, (1,)),
        Event("lead_off", 400, None, (2,)),  # an older recording: edge pairs
        Event("lead_restored", 500, None, (2,)),
        Event("stimulus", 600, data={"current_ma": 5.0}),
        Event("lead_off", 700, None, (0,)),  # still off when the recording ended
        Event("emg_event", 800, 900, (1,)),  # concluded by the station: concluded afresh
        Event("alarm", 900, data={"tile": "L5-L"}),
    ]
    assert as_source_events(recorded) == [
        Event("lead_off", 100, 300, (1,)),
        Event("lead_off", 400, 500, (2,)),
        Event("stimulus", 600, data={"current_ma": 5.0, "target": None}),
        Event("lead_off", 700, None, (0,)),
    ]
    replay = ReplaySource(media(recorded), speed=None)
    replay.open()
    played = []
    while (chunk := replay.read()) is not None:
        played += [(e.kind, e.start, e.stop) for e in chunk.events]
    assert played == [("lead_off", 100, 300), ("lead_off", 400, 500), ("stimulus", 600, None),
                      ("lead_off", 700, None)]


def test_simulator_emits_closed_lead_off_and_stimuli_with_current_and_target() -> None:
    amp = SimulatedAmplifier(load_montage("lumbar"), load_scenario("lumbar_demo"), 10000.0,
                             realtime=False)
    events = amp.events_between(0, amp._period)
    lead_off = [e for e in events if e.kind == "lead_off"]
    stimuli = [e for e in events if e.kind == "stimulus"]
    assert lead_off and all(e.stop is not None and e.stop > e.start for e in lead_off)
    assert stimuli and all({"current_ma", "target"} <= e.data.keys() for e in stimuli)


@pytest.mark.parametrize(("wall", "counted", "wrap", "lost"), [
    (1234, None, 256, 1234),  # no counter reference: wall time
    (-3, None, 256, 0),  # never negative
    (150, 140, 256, 140),  # the counter is exact; wall time tells its wraps apart
    (400, 140, 256, 396),
    (10, 255, 256, 0),  # a repeat just after the interruption: nothing lost
])
def test_lost_in_interruption(wall: int, counted: int | None, wrap: int, lost: int) -> None:
    assert lost_in_interruption(wall, counted, wrap) == lost
