"""Replay: pacing, speed, pause, seek, event navigation, EDF input, read-only files."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from ionm_station.clock import ManualClock, MonotonicClock
from ionm_station.events import Event
from ionm_station.io.edf import write_edf
from ionm_station.montage import load_montage
from ionm_station.recording import CaseMetadata, RecordingWriter, open_recording
from ionm_station.recording.export import info
from ionm_station.session import Session
from ionm_station.sources.replay import ReplaySource, open_media
from ionm_station.stream import StreamInfo

FS = 2000.0
MONTAGE = load_montage("lumbar").first(4)
EVENTS = [Event("stimulus", 3000, 3010, (1,), {"current_ma": 5.0, "target": "L4-R"}),
          Event("marker", 9000, data={"text": "L5 screw"}),
          Event("alarm", 15000, 16000, (2,), {"peak_uv": 300.0})]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """10 s, 4 ch at 2 kHz; channel 0 holds the sample index (continuity is exact)."""
    path = tmp_path / "case.h5"
    n = int(10 * FS)
    data = np.random.default_rng(3).standard_normal((n, 4)).astype(np.float32)
    data[:, 0] = np.arange(n)
    w = RecordingWriter(path, StreamInfo(FS, MONTAGE.labels), MONTAGE, None, {}, CaseMetadata("P"))
    w.append(data)
    w.add_events(EVENTS)
    w.close()
    return path


def _play(source: ReplaySource, clock: ManualClock, until_s: float) -> list:
    chunks = []
    while clock.now() < until_s - 1e-9:
        chunk = source.read()
        if chunk is not None:
            chunks.append(chunk)
    return chunks


@pytest.mark.parametrize("speed", [1.0, 0.25, 4.0, 16.0])
def test_paced_exactly_with_manual_clock(recording: Path, speed: float) -> None:
    clock = ManualClock(100.0)
    with open_recording(recording) as rec:
        src = ReplaySource(rec, speed=speed, clock=clock)
        src.open()
        chunks, played = [], 0
        while clock.now() < 100.5:
            chunk = src.read()
            chunks.append(chunk)
            played += chunk.n_samples  # every chunk arrives exactly when it is due
            assert played == int((clock.now() - 100.0) * FS * speed + 1e-6)
        assert 100.5 <= clock.now() < 100.5 + 0.01 / speed + 1e-9
        data = np.concatenate([c.data for c in chunks])
        assert np.array_equal(data[:, 0], np.arange(played, dtype=np.float32))
        assert [c.start for c in chunks] == list(np.cumsum([0] + [c.n_samples for c in chunks])[:-1])


def test_paced_within_one_percent_of_wall_time(recording: Path) -> None:
    """Played at 1 × for 2 s of wall time: what has been played when the last read returns is
    never ahead of the clock and behind it by at most one 10 ms block plus 1 %. (Timed from
    after the loop instead, a core taken by another process for 35 ms between two reads read
    as a 2.2 % lag.)"""
    with open_recording(recording) as rec:
        src = ReplaySource(rec, clock=MonotonicClock())
        src.open()
        t0 = time.monotonic()
        played, at = 0, 0.0
        while at < 2.0:
            chunk = src.read()
            at = time.monotonic() - t0  # (s) when this read returned
            played += 0 if chunk is None else chunk.n_samples
    behind = at - played / FS
    assert -0.001 <= behind <= 0.01 + 0.01 * at, (played, at)


def test_seek_pause_speed_and_event_navigation(recording: Path) -> None:
    clock = ManualClock()
    with open_recording(recording) as rec:
        src = ReplaySource(rec, clock=clock)
        src.open()
        _play(src, clock, 1.0)
        assert src.position == 2000
        assert src.seek_time(7.25) == 14_500
        chunk = src.read()
        assert chunk.start == 2000 and chunk.data[0, 0] == 14_500  # played clock never jumps
        assert chunk.events[0].kind == "replay_seek" and src.seek_generation == 1
        assert chunk.events[0].data == {"from_sample": 2000, "to_sample": 14_500, "generation": 1}
        assert src.recording_index(chunk.start + 5) == 14_505
        assert src.recording_index(1999) == 1999
        assert src.previous_event() == EVENTS[1] and src.position == 9000
        assert src.previous_event(kinds=("stimulus",)) == EVENTS[0] and src.position == 3000
        assert src.next_event() == EVENTS[1] and src.next_event() == EVENTS[2]
        assert src.next_event() is None and src.position == 15_000
        chunk = src.read()
        assert chunk.data[0, 0] == 15_000
        # a recorded alarm is a place to jump to, not a source event: the pipeline concludes afresh
        assert not [e for e in chunk.events if e.kind == "alarm"]
        src.pause()
        before, t = src.position, clock.now()
        assert src.read() is None and src.read() is None
        assert src.position == before and clock.now() > t
        src.play()
        src.set_speed(4.0)
        t = clock.now()
        played = sum(c.n_samples for c in _play(src, clock, t + 0.5))
        assert played == 4000 and src.position == before + 4000
        with pytest.raises(ValueError, match="0.25–16"):
            src.set_speed(32.0)


def test_as_fast_as_possible_to_the_end(recording: Path) -> None:
    with open_recording(recording) as rec:
        src = ReplaySource(rec, speed=None, clock=ManualClock())
        src.open()
        chunks = []
        while not src.at_end:
            chunks.append(src.read())
        data = np.concatenate([c.data for c in chunks])
        assert np.array_equal(data, rec.read(0, rec.n_samples))
        assert [e.data["recording_sample"] for c in chunks for e in c.events] == [3000, 9000]
        assert src.read() is None


def test_replay_through_a_session_has_no_gaps(recording: Path) -> None:
    clock = ManualClock()
    with open_recording(recording) as rec:
        src = ReplaySource(rec, clock=clock, speed=None)
        session = Session(src, rec.montage, max_samples=12_000)
        reader = session.raw.reader(start=0)
        src.seek(8000)
        session.start()
        assert session.acquisition.wait(30)
        session.stop()
        status = session.status()
        assert status.gaps == 0 and status.samples == 12_000
        got = reader.read()
        assert np.array_equal(got.data[:, 0], np.arange(8000, 20_000, dtype=np.float32))
        replayed = [(e.kind, e.start) for e in session.events.snapshot()
                    if e.kind == "replay_seek" or "recording_sample" in e.data]
        assert replayed == [("replay_seek", 0), ("marker", 1000)]  # the alarm is concluded afresh


def test_replaying_never_modifies_the_file(recording: Path) -> None:
    before = hashlib.sha256(recording.read_bytes()).hexdigest()
    stat = recording.stat()
    with open_recording(recording) as rec:
        src = ReplaySource(rec, speed=None, clock=ManualClock())
        src.open()
        while not src.at_end:
            src.read()
            if src.position == 5000 and src.seek_generation == 0:
                src.seek(1000)
        src.close()
    info(recording)
    assert hashlib.sha256(recording.read_bytes()).hexdigest() == before
    assert recording.stat().st_mtime_ns == stat.st_mtime_ns


def test_replay_of_an_edf_file(tmp_path: Path) -> None:
    data = np.random.default_rng(5).standard_normal((4000, 2)).astype(np.float32) * 100
    path = tmp_path / "x.edf"
    write_edf(path, 1000.0, ["L5-L TibAnt", "S1-L Gastroc"], data, [(1.5, None, "screw L5")], 5000)
    media = open_media(path)
    src = ReplaySource(media, speed=None, clock=ManualClock())
    src.open()
    chunks = []
    while not src.at_end:
        chunks.append(src.read())
    got = np.concatenate([c.data for c in chunks])
    assert got.shape == (4000, 2) and np.abs(got - data).max() < 0.1
    notes = [e for c in chunks for e in c.events]
    assert [(e.kind, e.start, e.data["text"]) for e in notes] == [("annotation", 1500, "screw L5")]
    assert src.info.source == "replay x.edf"
