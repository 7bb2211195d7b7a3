"""SerialSource against the pty device emulator: bit-exact data, exact fault accounting,
signal loss within 0.5 s, pick-up of a restarted emulator, clear errors for bad ports."""

from __future__ import annotations

import gc
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ionm_station.errors import DeviceError
from ionm_station.profiles import SerialSettings
from ionm_station.sim.emulator import DeviceEmulator, EmulatorSettings, to_lsb
from ionm_station.sources import serial_protocol as sp
from ionm_station.sources.serial_source import SerialSource
from ionm_station.stream import Chunk

LSB_UV = 0.1
RATE_HZ = 10000.0

SCENARIO = """
name = "pty-test"
duration_s = 10
loop = true
seed = 5
montage = "lumbar"
[[events]]
kind = "lead_off"
channel = "L4-R VastMed"
at_s = 0.3
duration_s = 0.4
[[events]]
kind = "stimulus"
target = "L5-L"
at_s = 0.5004
current_ma = 7.25
"""


def source_for(link: Path, labels: tuple[str, ...], lost_after_ms: int = 300) -> SerialSource:
    return SerialSource(SerialSettings(str(link), uv_per_lsb=LSB_UV, lost_after_ms=lost_after_ms),
                        labels, RATE_HZ)


def drain(source: SerialSource, until: threading.Thread, stop: int) -> list[Chunk]:
    """Read until the emulator thread has ended and sample ``stop`` arrived (or 5 s passed)."""
    chunks: list[Chunk] = []
    deadline = None
    while deadline is None or time.monotonic() < deadline:
        chunk = source.read()
        if chunk is not None:
            chunks.append(chunk)
            if chunk.stop >= stop:
                break
        if deadline is None and not until.is_alive():
            deadline = time.monotonic() + 5.0
    return chunks


def wait_for(predicate, timeout_s: float, step_s: float = 0.005) -> float | None:
    """Seconds until ``predicate()`` held, or None after ``timeout_s``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate():
            return time.monotonic() - t0
        time.sleep(step_s)
    return None


def test_ten_seconds_with_corruption_counts_match_and_data_are_bit_exact(tmp_path: Path) -> None:
    scenario = tmp_path / "pty_test.toml"
    scenario.write_text(SCENARIO)
    settings = EmulatorSettings(link=tmp_path / "amp", rate_hz=RATE_HZ, channels=16,
                                scenario=str(scenario), uv_per_lsb=LSB_UV, seconds=10.0,
                                speed=1.0, corrupt_rate=0.01, drop_rate=0.005)
    with DeviceEmulator(settings) as emulator:
        # signal loss is the next tests' subject: here a pause of the whole process for 0.3 s
        # (seen in clean-clone runs of the whole suite on a slow machine: sender and reader share
        # it) must not close the port, which would drop the device's sequence reference and
        # place the next frames by wall time
        source = source_for(settings.link, emulator.montage.labels, lost_after_ms=5000)
        source.open()  # before the first byte: index 0 of the source = frame 0 of the device
        runner = threading.Thread(target=emulator.run)
        gc.collect()  # no full collection of the suite's heap pausing sender and reader
        gc.disable()
        try:
            runner.start()
            chunks = drain(source, runner, 100_000)
            runner.join(30.0)  # the emulator must not be closed under a running sender
        finally:
            gc.enable()
        source.close()
    injected = emulator.stats
    assert source.counters.reconnects == 0
    assert injected.frames == 10_000 and injected.frames_corrupted > 50
    # frames the emulator could not queue because the reader stalled for over 0.5 s (a loaded
    # machine: clean-clone runs of the whole suite on a slow 2-core machine left 15 and 184 of
    # 10,000 before the collector was held off) are never written; they are lost_samples like the injected faults and must be counted
    # as dropped all the same (below)
    assert injected.frames_unsent <= 0.01 * injected.frames
    assert source.counters.crc_errors == injected.frames_corrupted
    assert source.counters.dropped == injected.lost_samples
    assert source.counters.samples + source.counters.dropped == 100_000
    stop = 0
    for chunk in chunks:  # every received sample equals the simulator's, in ADC steps
        assert chunk.start >= stop and chunk.data.dtype == np.float32
        stop = chunk.stop
        want = to_lsb(emulator.amplifier.generate(chunk.start, chunk.n_samples), LSB_UV)
        got = np.rint(chunk.data.astype(np.float64) / LSB_UV).astype(np.int64)
        assert np.array_equal(got, want)
    assert stop == 100_000
    gaps = sum(b.start - a.stop for a, b in itertools.pairwise(chunks))
    assert gaps == injected.lost_samples  # dropped samples advance start, never joined
    events = [(e.kind, e.start, e.stop, e.channels) for c in chunks for e in c.events]
    spf = injected.samples_per_frame
    if not any(c.start <= 5004 < c.stop for c in chunks):
        pytest.skip("the stimulus frame happened to be faulted")  # fixed seed: not the case
    stim = [e for c in chunks for e in c.events if e.kind == "stimulus"]
    assert [(e.start, e.data) for e in stim] == [(5004, {"current_ma": 7.25, "target": None})]
    off, on = 3000 // spf * spf, 7000 // spf * spf  # lead-off is an interval: open, then closed
    assert [e for e in events if e[0].startswith("lead")] == [("lead_off", off, None, (10,)),
                                                             ("lead_off", off, on, (10,))]


def test_missing_and_busy_ports_name_the_port(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-amp"
    with pytest.raises(DeviceError, match=str(missing)):
        source_for(missing, ("a",)).open()
    with DeviceEmulator(EmulatorSettings(link=tmp_path / "amp", channels=1)) as emulator:
        first = source_for(emulator.settings.link, ("a",))
        first.open()
        try:
            with pytest.raises(DeviceError, match=f"{emulator.settings.link}.*busy"):
                source_for(emulator.settings.link, ("a",)).open()
        finally:
            first.close()


def start_emulator(link: Path, stats: Path) -> subprocess.Popen:
    """The real command in a subprocess (as a user would run it)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ionm_station.commands.simulate_device", "--link", str(link),
         "--channels", "4", "--stats", str(stats)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert wait_for(link.exists, 15.0) is not None, proc.stderr
    return proc


def test_pulled_link_is_reported_within_half_a_second_and_a_restart_is_picked_up(
        tmp_path: Path) -> None:
    link = tmp_path / "amp"
    first = start_emulator(link, tmp_path / "first.json")
    source = source_for(link, ("a", "b", "c", "d"))
    source.open()
    chunks: list[Chunk] = []
    try:
        assert wait_for(lambda: bool(chunks.append(source.read()) or source.counters.samples
                                     > 2000), 5.0) is not None
        first.send_signal(signal.SIGTERM)  # the emulator exits: the cable is pulled
        assert first.wait(5) == 0
        pulled_at = time.monotonic()
        assert wait_for(lambda: source.state != "streaming", 0.5) is not None
        lost_after_s = time.monotonic() - pulled_at
        stats = json.loads(first.stdout.read().strip().splitlines()[-1])
        assert stats == json.loads((tmp_path / "first.json").read_text())
        assert not link.exists()  # the emulator removed its link
        while (chunk := source.read()) is not None:
            chunks.append(chunk)
        lost = [e for c in chunks if c for e in c.events if e.kind == "signal_lost"]
        assert len(lost) == 1 and lost_after_s < 0.5
        stop_before = max(c.stop for c in chunks if c)
        assert lost[0].start == stop_before  # at the first missing sample

        second = start_emulator(link, tmp_path / "second.json")  # plugged in again
        try:
            assert wait_for(lambda: source.state == "streaming", 5.0) is not None
            after: list[Chunk] = []
            assert wait_for(lambda: bool(after.append(source.read())) or any(
                c is not None and c.n_samples for c in after), 2.0) is not None
            resumed = next(c for c in after if c is not None and c.n_samples)
            assert source.counters.reconnects == 1
            assert resumed.start > stop_before  # the clock continued past a gap
            restored = [e for c in after if c for e in c.events if e.kind == "signal_restored"]
            assert restored and restored[0].start == resumed.start
            assert restored[0].data["lost_samples"] == resumed.start - stop_before
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(5)
    finally:
        source.close()
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()


def read_until(source: SerialSource, chunks: list[Chunk], samples: int, timeout_s: float) -> None:
    """Append chunks until ``source`` delivered ``samples`` in total (fails after ``timeout_s``)."""
    assert wait_for(lambda: bool(chunks.append(source.read()))
                    or source.counters.samples >= samples, timeout_s, 0.0) is not None


def device_index(emulator: DeviceEmulator, chunk: Chunk, around: int, spf: int) -> int:
    """Where the device really sent ``chunk``: the frame start near ``around`` whose simulated
    samples equal the chunk's."""
    got = np.rint(chunk.data[:spf].astype(np.float64) / LSB_UV).astype(np.int64)
    for start in range(max(0, around - 2000) // spf * spf, around + 2000, spf):
        if np.array_equal(to_lsb(emulator.amplifier.generate(start, spf), LSB_UV), got):
            return start
    raise AssertionError(f"chunk at {chunk.start} matches no device frame near {around}")


def test_a_reader_fault_crashes_the_worker_and_a_restart_resumes_after_a_counted_gap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = EmulatorSettings(link=tmp_path / "amp", rate_hz=RATE_HZ, channels=4,
                                uv_per_lsb=LSB_UV, seconds=4.0)
    with DeviceEmulator(settings) as emulator:
        source = source_for(settings.link, emulator.montage.labels)
        source.open()
        runner = threading.Thread(target=emulator.run)
        runner.start()
        chunks: list[Chunk] = []
        try:
            read_until(source, chunks, 5000, 3.0)
            feed = sp.FrameDecoder.feed
            armed = [True]

            def faulty_feed(decoder: sp.FrameDecoder, data: bytes) -> list[sp.Frame]:
                if armed:
                    armed.clear()
                    raise RuntimeError("decoder bug")
                return feed(decoder, data)

            monkeypatch.setattr(sp.FrameDecoder, "feed", faulty_feed)
            (reader,) = source.workers()
            assert wait_for(lambda: reader.health().state == "crashed", 1.0) is not None
            assert reader.health().error == "RuntimeError: decoder bug"
            assert "faulty_feed" in reader.traceback
            assert source.state == "lost"  # never "streaming" while no reader runs
            time.sleep(0.3)  # the device streams on; nobody reads
            assert source.state == "lost"
            reader.restart()  # as the supervisor does
            assert wait_for(lambda: source.state == "streaming", 2.0) is not None
            read_until(source, chunks, source.counters.samples + 5000, 3.0)
        finally:
            source.close()
            runner.join()
    chunks = [c for c in chunks if c is not None]
    events = [e for c in chunks for e in c.events]
    (lost,) = [e for e in events if e.kind == "signal_lost"]
    (restored,) = [e for e in events if e.kind == "signal_restored"]
    assert "RuntimeError: decoder bug" in lost.data["reason"]
    (before, after), = [(a, b) for a, b in itertools.pairwise(c for c in chunks if c.n_samples)
                        if b.start != a.stop]
    assert lost.start == before.stop and restored.start == after.start
    gap = after.start - before.stop  # the clock advanced by the wall time lost: a NaN gap
    assert gap == restored.data["lost_samples"] == source.counters.dropped
    assert 0 < gap < RATE_HZ
    assert reader.restarts == 1 and source.counters.reconnects == 0
    spf = emulator.stats.samples_per_frame
    assert before.stop == device_index(emulator, before, before.start, spf) + before.n_samples
    # the port stayed open, so the device's sequence counter places the samples exactly
    assert after.start == device_index(emulator, after, after.start, spf)


def test_the_seconds_before_the_station_connected_are_not_a_gap(tmp_path: Path) -> None:
    """The device streams for 1.5 s before the port is opened (its own buffer fills, then it
    drops frames): the stream starts at a fresh frame, with no gap and nothing dropped."""
    settings = EmulatorSettings(link=tmp_path / "amp", rate_hz=RATE_HZ, channels=4,
                                uv_per_lsb=LSB_UV, seconds=4.0)
    with DeviceEmulator(settings) as emulator:
        runner = threading.Thread(target=emulator.run)
        runner.start()
        time.sleep(1.5)
        source = SerialSource(SerialSettings(str(settings.link), uv_per_lsb=LSB_UV,
                                             lost_after_ms=5000),  # a busy machine: no loss
                              emulator.montage.labels, RATE_HZ)
        source.open()
        opened_at = emulator.stats.frames * emulator.stats.samples_per_frame
        unsent_before = emulator.stats.frames_unsent
        chunks: list[Chunk] = []
        try:
            read_until(source, chunks, 10_000, 3.0)
            unsent_while_read = emulator.stats.frames_unsent - unsent_before
        finally:
            source.close()
            runner.join()
    spf = emulator.stats.samples_per_frame
    assert unsent_before > 0  # the device did drop frames before we connected
    # what the device failed to send while we read (none unless this machine stalled the
    # reader for longer than the device's buffer): the only loss the source may count
    unsent_after = unsent_while_read * spf
    chunks = [c for c in chunks if c is not None and c.n_samples]
    assert chunks[0].start == 0 and source.counters.reconnects == 0
    assert source.counters.dropped <= unsent_after < 0.2 * RATE_HZ
    assert sum(b.start - a.stop for a, b in itertools.pairwise(chunks)) \
        == source.counters.dropped  # no gap but what was lost after the port opened
    first = device_index(emulator, chunks[0], opened_at, spf)
    assert first >= opened_at - 0.1 * RATE_HZ  # a fresh frame, not one from before
    for chunk in chunks[1:3]:  # and the samples that follow it are the device's, in order
        assert device_index(emulator, chunk, first + chunk.start, spf) == first + chunk.start
