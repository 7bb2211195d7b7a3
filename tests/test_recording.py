"""Case recording: HDF5 round trip, recorder thread, crash safety, bad files, EDF+ export."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import edfio
import h5py
import numpy as np
import pytest

from ionm_station.cli import main
from ionm_station.clock import ManualClock
from ionm_station.commands.recording_commands import (
    add_export_parser,
    add_info_parser,
    cmd_export,
    cmd_info,
)
from ionm_station.events import Event, EventLog
from ionm_station.montage import load_montage
from ionm_station.profiles import load_profile
from ionm_station.recording import (
    CaseMetadata,
    Recorder,
    RecordingError,
    RecordingWriter,
    open_recording,
    recover,
)
from ionm_station.recording import recorder as recorder_mod
from ionm_station.recording.export import export_edf, info
from ionm_station.ring import RingBuffer
from ionm_station.session import Session, build_source, montage_for
from ionm_station.stream import StreamInfo

CASE = CaseMetadata("MRN-0042 Doe", "L4-S1 PLIF", "A. Tech", "2025-03-01T08:15:00+01:00")
MONTAGE = load_montage("lumbar")
INFO = StreamInfo(10000.0, MONTAGE.labels, 5000.0)


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_writer_round_trip_is_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((12_345, 16)) * 300).astype(np.float32)
    b = (rng.standard_normal((777, 16)) * 3000).astype(np.float32)
    events = [Event("stimulus", 100, 101, (3, 4), {"current_ma": 7.25, "target": "L5-L"}),
              Event("marker", 2000, data={"text": "screw L5 left — inserted"}),
              Event("alarm", 5000, 9000, (2,), {"level": "A-train", "peak_uv": 412.5}),
              Event("alarm_ack", 9100, data={"by": "A. Tech"})]
    path = tmp_path / "case.h5"
    w = RecordingWriter(path, INFO, MONTAGE, {"name": "sim", "rate": 10000},
                        {"highpass_hz": 20.0, "threshold_uv": 100}, CASE)
    w.append(a)
    w.add_events(events[:2])
    w.append_gap(250)
    w.settings_changed(12_400, {"highpass_hz": 30.0, "threshold_uv": 60})
    w.append(b)
    w.add_events(events[2:])
    w.set_counters({"samples": 13_372, "dropped": 5, "gaps": 1, "gap_samples": 250})
    w.close()
    with open_recording(path) as rec:
        assert rec.clean_close and not rec.recovered and rec.n_samples == 12_345 + 250 + 777
        data = rec.read(0, rec.n_samples)
        assert data.dtype == np.float32
        assert np.array_equal(data[:12_345], a) and np.array_equal(data[-777:], b)
        assert np.isnan(data[12_345:12_595]).all()
        assert rec.events == events
        assert [c.index for c in rec.settings_history] == [0, 12_400]
        assert rec.settings_at(12_399)["highpass_hz"] == 20.0
        assert rec.settings_at(12_400) == {"highpass_hz": 30.0, "threshold_uv": 60}
        assert rec.case == CASE and rec.profile == {"name": "sim", "rate": 10000}
        assert rec.montage == MONTAGE and rec.info == INFO
        assert rec.counters["dropped"] == 5 and rec.counters["gap_samples"] == 250
        assert rec.duration_s == pytest.approx(1.3372)
        assert rec.read(-5, 3).shape == (3, 16) and rec.read(13_000, 99_999).shape == (372, 16)


def test_writer_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "case.h5"
    path.write_bytes(b"precious")
    with pytest.raises(RecordingError, match="file exists"):
        RecordingWriter(path, INFO, MONTAGE, None, {}, CASE)
    assert path.read_bytes() == b"precious"


def _sim_session(seconds: float, scenario: str = "pedicle_screws") -> Session:
    profile = load_profile("simulated")
    montage = montage_for(profile)
    source = build_source(profile, montage, scenario=scenario, clock=ManualClock())
    return Session(source, montage, max_samples=source.info.seconds_to_samples(seconds))


def test_recorder_records_a_session_exactly(tmp_path: Path) -> None:
    session = _sim_session(6.0)
    path = tmp_path / "case.h5"
    rec = Recorder(session.raw, session.events, session.info, session.montage, path, case=CASE,
                   settings={"threshold_uv": 100},
                   counters=lambda: dataclasses.asdict(session.source.counters), start_index=0)
    rec.start()
    session.start()
    assert session.acquisition.wait(30)
    session.events.append(Event("settings", 30_000, data={"threshold_uv": 50}))  # as processing logs it
    status = rec.stop()
    session.stop()
    assert status.state == "stopped" and status.samples_written == 60_000
    assert status.file_size_bytes == path.stat().st_size
    with open_recording(path) as r:
        assert r.clean_close and r.n_samples == 60_000
        assert np.array_equal(r.read(0, 60_000), session.source.generate(0, 60_000))
        stimuli = [e for e in r.events if e.kind == "stimulus"]
        assert stimuli and stimuli == session.events.of_kind("stimulus")
        assert [s.settings for s in r.settings_history] == [{"threshold_uv": 100},
                                                             {"threshold_uv": 50}]
        assert r.counters["samples"] == 60_000


def test_recorder_writes_overrun_as_nan_with_gap_event(tmp_path: Path) -> None:
    ring = RingBuffer(1000, 2)
    log = EventLog()
    info = StreamInfo(1000.0, ("a", "b"))
    ring.write(np.arange(6000, dtype=np.float32).reshape(3000, 2))  # 2000 samples lapped
    rec = Recorder(ring, log, info, MONTAGE.first(2), tmp_path / "o.h5", start_index=0)
    rec.start()
    rec.stop()
    with open_recording(tmp_path / "o.h5") as r:
        data = r.read(0, r.n_samples)
        assert r.n_samples == 3000 and np.isnan(data[:2000]).all()
        assert np.array_equal(data[2000:], np.arange(4000, 6000, dtype=np.float32).reshape(1000, 2))
        gap = [e for e in r.events if e.kind == "gap"]
        assert gap == [Event("gap", 0, 2000, data={"samples": 2000, "cause": "recorder_overrun"})]
        assert r.counters["recorder_lost_samples"] == 2000 and r.counters["recorder_gaps"] == 1


def test_write_error_stops_recording_not_monitoring(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real_append = RecordingWriter.append

    def failing_append(self: RecordingWriter, data: np.ndarray) -> int:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(self, data)

    monkeypatch.setattr(RecordingWriter, "append", failing_append)
    ring = RingBuffer(10_000, 2)
    log = EventLog()
    rec = Recorder(ring, log, StreamInfo(1000.0, ("a", "b")), MONTAGE.first(2),
                   tmp_path / "full.h5", start_index=0)
    rec.start()
    block = np.ones((100, 2), np.float32)
    for _ in range(50):  # the "acquisition" goes on writing whatever the recorder does
        ring.write(block)
        time.sleep(0.005)
    assert _wait(lambda: rec.status().state == "failed")
    ring.write(block)
    assert ring.published == 5100
    status = rec.stop()
    assert status.state == "failed" and "No space left on device" in status.message
    errors = log.of_kind("recording_error")
    assert len(errors) == 1 and str(tmp_path / "full.h5") in errors[0].data["message"]
    with open_recording(tmp_path / "full.h5") as r:  # what was flushed before the error survives
        assert not r.clean_close


def test_low_disk_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_mod, "DISK_CHECK_INTERVAL_S", 0.0)
    ring = RingBuffer(100_000, 4)
    log = EventLog()
    rec = Recorder(ring, log, StreamInfo(10_000.0, tuple("abcd")), MONTAGE.first(4),
                   tmp_path / "low.h5", start_index=0, flush_interval_s=0.05,
                   disk_free=lambda p: 10_000_000)
    rec.start()
    for _ in range(40):
        ring.write(np.zeros((500, 4), np.float32))
        time.sleep(0.01)
    assert _wait(lambda: rec.status().state == "low_disk")
    status = rec.stop()
    assert status.state == "stopped" and status.free_bytes == 10_000_000
    warned = log.of_kind("recording_disk_low")
    assert len(warned) == 1 and warned[0].data["minutes_left"] < 60


def test_unwritable_path_is_one_line_error(tmp_path: Path) -> None:
    rec = Recorder(RingBuffer(100, 16), EventLog(), INFO, MONTAGE, tmp_path / "no" / "x.h5")
    with pytest.raises(RecordingError) as exc:
        rec.start()
    assert "\n" not in str(exc.value) and "no/x.h5" in str(exc.value)
    assert rec.status().state == "failed"


def test_sigkill_loses_at_most_one_second(tmp_path: Path) -> None:
    path = tmp_path / "killed.h5"
    child = subprocess.Popen([sys.executable, str(Path(__file__).with_name("recording_child.py")),
                              str(path)], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("start"), line
        t_start = float(line.split()[1])
        last = None
        while True:
            line = child.stdout.readline()
            assert line.startswith("progress"), line
            last = line.split()
            if float(last[3]) - t_start >= 2.5:
                break
        assert info(path)["state"] == "being_recorded"  # the writer is alive
        with pytest.raises(RecordingError, match="is being recorded by a running station"):
            recover(path)
        os.kill(child.pid, signal.SIGKILL)
        t_kill = time.monotonic()
    finally:
        child.kill()
        child.wait(10)
    generated = max(int(last[1]), int((t_kill - t_start) * 10_000))
    assert info(path)["state"] == "killed"
    with open_recording(path) as r:
        assert not r.clean_close
        kept = r.n_samples
    report = recover(path)
    assert report.repaired and report.samples == kept and report.elapsed_s < 1.0
    assert info(path)["state"] == "recovered"
    with open_recording(path) as r:
        assert r.clean_close and r.recovered and r.n_samples == kept
        data = r.read(0, kept)
        assert np.isfinite(data).all()
    lost_s = (generated - kept) / 10_000
    print(f"SIGKILL: acquired ≤ {generated}, kept {kept}, lost ≤ {lost_s:.3f} s, "
          f"recovery {report.elapsed_s * 1000:.1f} ms")
    assert 0 <= lost_s <= 1.0
    with h5py.File(path, "r") as f:  # a plain HDF5 open works again after recovery
        assert f["samples"].shape[0] == kept
    assert recover(path).repaired is False


def _killed_recording(path: Path) -> int:
    """A recording whose writer stopped without closing it (as after SIGKILL): 3000 samples
    committed, 500 more appended after the last flush; returns the committed count."""
    w = RecordingWriter(path, INFO, MONTAGE, None, {}, CASE)
    w.append(np.ones((3000, 16), np.float32))
    w.add_events([Event("marker", 10, 10, (), {"text": "incision"})])
    w.flush()
    w.append(np.ones((500, 16), np.float32))
    w._file.id.close()  # noqa: SLF001 - the HDF5 handle goes as a killed process's would
    w._release_lock()  # noqa: SLF001 - the kernel drops a killed writer's lock
    return 3000


def test_recover_command_repairs_in_place_keeps_a_backup_and_says_what_it_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "case.h5"
    kept = _killed_recording(path)
    before = path.read_bytes()
    assert main(["info", str(path)]) == 0
    assert f"NO: its writer was killed or crashed; repair it with `ionm-station recover {path}`" \
        in capsys.readouterr().out
    assert main(["recover", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "recovered 0.30 s (3000 samples per channel, 16 ch @ 10000 Hz), " \
        "1 events" in out[0] and "case.before-recovery.h5" in out[0], out
    backup = tmp_path / "case.before-recovery.h5"
    assert backup.read_bytes() == before  # the file as it was
    with open_recording(path) as r:
        assert r.clean_close and r.recovered and r.n_samples == kept
        assert [e.data for e in r.events] == [{"text": "incision"}]
    assert main(["recover", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: closed cleanly, nothing to recover"
    assert main(["info", str(path)]) == 0
    assert "closed cleanly: yes (recovered after its writer was killed)" in capsys.readouterr().out


def test_recover_refuses_an_existing_backup_and_foreign_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "case.h5"
    _killed_recording(path)
    (tmp_path / "case.before-recovery.h5").write_text("an older backup")
    assert main(["recover", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file exists (use --force to replace it)" in err[0]
    assert main(["recover", str(path), "--backup", str(path)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert main(["recover", str(path), "--backup", str(tmp_path / "b.h5")]) == 0
    capsys.readouterr()
    text = tmp_path / "notes.h5"
    text.write_text("not a recording")
    assert main(["recover", str(text)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an HDF5 file" in err[0]


def _small_recording(path: Path) -> None:
    w = RecordingWriter(path, INFO, MONTAGE, None, {}, CASE)
    w.append(np.zeros((1000, 16), np.float32))
    w.close()


@pytest.mark.parametrize("damage", ["missing", "text", "foreign_hdf5", "truncated", "corrupt",
                                    "newer_version"])
def test_bad_files_give_one_line_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "bad.h5"
    if damage == "text":
        path.write_text("patient notes\n" * 100)
    elif damage == "foreign_hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(10)
    elif damage != "missing":
        _small_recording(path)
        raw = bytearray(path.read_bytes())
        if damage == "truncated":
            raw = raw[:len(raw) // 3]
        elif damage == "corrupt":
            raw[48:2048] = os.urandom(2000)
        path.write_bytes(bytes(raw))
        if damage == "newer_version":
            with h5py.File(path, "r+") as f:
                f.attrs["format_version"] = 99
    with pytest.raises(RecordingError) as exc, open_recording(path) as rec:
        rec.read(0, rec.n_samples)
    message = str(exc.value)
    assert "\n" not in message and str(path) in message


def test_export_edf_matches_within_quantisation(tmp_path: Path) -> None:
    session = _sim_session(5.5)
    path = tmp_path / "case.h5"
    rec = Recorder(session.raw, session.events, session.info, session.montage, path, case=CASE,
                   start_index=0)
    rec.start()
    session.start()
    assert session.acquisition.wait(30)
    session.events.append(Event("marker", 12_345, data={"text": "root check L5"}))
    rec.stop()
    session.stop()
    out = tmp_path / "case.edf"
    export_edf(path, out)
    edf = edfio.read_edf(out)
    with open_recording(path) as r:
        want = r.read(0, r.n_samples)
        step_uv = 2 * r.info.range_uv / 65535
        assert len(edf.signals) == 16
        for i, sig in enumerate(edf.signals):
            assert sig.label == r.info.labels[i][:16]
            assert np.abs(sig.data[:r.n_samples] - want[:, i]).max() <= step_uv
        texts = [a.text for a in edf.annotations]
        assert "marker; text=root check L5" in texts
        assert sum(t.startswith("stimulus") for t in texts) == \
            sum(e.kind == "stimulus" for e in r.events) > 0
    assert edf.patient.code == "MRN-0042_Doe" and str(edf.startdate) == "2025-03-01"
    anon = tmp_path / "anon.edf"
    export_edf(path, anon, deidentify=True)
    head = anon.read_bytes()[:256]
    assert b"MRN" not in head and b"Doe" not in head and head[8:15] == b"X X X X"
    assert edfio.read_edf(anon).patient.code == "X"


def test_long_export_streams_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "long.h5"
    fs, seconds = 10_000, 120
    w = RecordingWriter(path, INFO, MONTAGE, None, {}, CASE)
    rng = np.random.default_rng(5)
    for s in range(seconds):
        w.append((rng.standard_normal((fs, 16)) * 50).astype(np.float32))
        w.add_events([Event("stimulus", s * fs + 17, data={"current_ma": 5})])
    w.add_events([Event("gap", 55 * fs, 55 * fs + 300)])
    w.close()
    whole_signal = seconds * fs * 16 * 4  # float32 bytes: what a load-everything export holds
    out = tmp_path / "long.edf"
    tracemalloc.start()
    try:
        done = export_edf(path, out, deidentify=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < whole_signal / 4, f"peak {peak / 1e6:.1f} MB"
    assert done["samples"] == seconds * fs and done["annotations"] == seconds + 1
    edf = edfio.read_edf(out)
    assert edf.num_data_records == seconds * 10 and edf.patient.code == "X"
    step_uv = 2 * INFO.range_uv / 65535
    with open_recording(path) as r:
        for start in (0, 10 * fs - 500, 119 * fs):  # includes a 10 s chunk boundary
            want = r.read(start, start + 1000)
            got = np.stack([sig.data[start:start + 1000] for sig in edf.signals], axis=1)
            assert np.abs(got - want).max() <= step_uv / 2 + 1e-6
    onsets = sorted(a.onset for a in edf.annotations if a.text.startswith("stimulus"))
    assert onsets == pytest.approx([s + 17 / fs for s in range(seconds)])
    gap = [a for a in edf.annotations if a.text.startswith("gap")]
    assert len(gap) == 1 and gap[0].onset == 55 and gap[0].duration == pytest.approx(0.03)


def test_info_and_export_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "case.h5"
    _small_recording(path)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_info_parser(sub)
    add_export_parser(sub)
    assert cmd_info(parser.parse_args(["info", str(path), "--json"])) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["duration_s"] == 0.1 and doc["fs"] == 10000.0 and doc["clean_close"] is True
    assert doc["n_channels"] == 16 and doc["events"] == 0 and doc["case"]["patient_id"]
    assert "case" not in info(path, deidentify=True)
    out = tmp_path / "x.edf"
    assert cmd_export(parser.parse_args(["export", str(path), "--edf", str(out),
                                         "--deidentify"])) == 0
    assert cmd_info(parser.parse_args(["info", str(out)])) == 0
    assert "16 ch @ 10000 Hz" in capsys.readouterr().out
    with pytest.raises(RecordingError):
        info(tmp_path / "nothing.h5")
