"""EDF+ annotations keep their meaning (issue 12): every event exported as a readable text of
the documented grammar that ``info`` and replay read back as the same event; de-identification
clears every person field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ionm_station.cli import main
from ionm_station.events import Event
from ionm_station.io.annotations import annotation_text, parse_annotation
from ionm_station.montage import load_montage
from ionm_station.recording import CaseMetadata, RecordingWriter
from ionm_station.recording.export import export_edf, info
from ionm_station.sources.replay import EdfMedia, as_source_events
from ionm_station.stream import StreamInfo

MONTAGE = load_montage("lumbar")
LABELS = list(MONTAGE.labels)
FS = 2000.0

#: One of every kind of event a case holds, with the data the station logs for it.
EVENTS = [
    Event("stimulus", 200, data={"current_ma": 5.0, "target": "L5-R"}),
    Event("lead_off", 300, None, (3,)),
    Event("lead_off", 300, 900, (3,)),
    Event("marker", 400, None, (), {"text": "screw L5; left = done"}),
    Event("emg_event", 1000, 7000, (3,), {"kind": "train", "train_type": "A", "peak_uv": 412.3,
                                          "rate_hz": 96.0, "above_threshold": True}),
    Event("emg_event", 1500, 1530, (13,), {"kind": "spike", "train_type": None, "peak_uv": 175.1,
                                           "rate_hz": None, "above_threshold": True}),
    Event("alarm", 1600, data={"tile": "L5-L", "state": "alarm", "priority": "high",
                               "reason": "A-train 3.0 s"}),
    Event("alarm", 9000, data={"tile": "L5-L", "state": "quiet", "priority": None, "reason": ""}),
    Event("artifact", 2000, 4000, tuple(range(16)), {"kind": "cautery"}),
    Event("artifact", 4100, 4200, (2, 5), {"kind": "saturation"}),
    Event("technical_alarm", 5000, data={"condition": "signal_lost", "what": "raised",
                                         "priority": "high", "reason": "no data for 0.6 s",
                                         "host_time_s": 1764500000.125}),
    Event("worker_fault", 5100, data={"worker": "processing",
                                      "error": "RuntimeError: boom; at x=1"}),
    Event("settings", 5200, data={"band_hz": [20.0, 2000.0]}),
    Event("gap", 6000, 6300, data={"samples": 300}),
    Event("tof", 6500, data={"ratio": 0.9, "counts": 4, "note": "123", "extra": {"a": [1, 2]}}),
]


def _same(got: Event, want: Event) -> None:
    """``got`` is ``want`` read back: an instant's stop may be None, and a None value absent."""
    assert (got.kind, got.start, got.channels) == (want.kind, want.start, want.channels)
    assert got.stop == (None if want.stop in (None, want.start) else want.stop)
    assert got.data == {k: v for k, v in want.data.items() if v is not None}


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_every_kind_of_event_reads_back_from_its_text(event: Event) -> None:
    text = annotation_text(event, LABELS)
    assert "\n" not in text and text.startswith(f"{event.kind}; ")
    _same(parse_annotation(text, event.start, event.stop, LABELS), event)


def test_the_texts_say_what_happened() -> None:
    texts = {e.kind + str(e.start): annotation_text(e, LABELS) for e in EVENTS}
    assert texts["alarm1600"] == "alarm; tile=L5-L; state=alarm; priority=high; " \
                                 "reason=A-train 3.0 s"
    assert texts["artifact2000"] == "artifact; channels=all; kind=cautery"
    assert texts["artifact4100"] == "artifact; channels=L4-L VastMed, S1-L Gastroc; " \
                                    "kind=saturation"
    assert texts["emg_event1000"] == "emg_event; channels=L5-L TibAnt; kind=train; " \
                                     "train_type=A; peak_uv=412.3; rate_hz=96.0; " \
                                     "above_threshold=true"
    assert texts["technical_alarm5000"].startswith(
        "technical_alarm; condition=signal_lost; what=raised; priority=high; "
        "reason=no data for 0.6 s")
    assert texts["marker400"] == 'marker; text="screw L5\\u003b left = done"'
    assert texts["tof6500"] == 'tof; ratio=0.9; counts=4; note="123"; extra={"a": [1, 2]}'


@pytest.mark.parametrize("text", ["screw L5", "Stimulus 5 mA", "arousal", "Eyes: closed",
                                  "marker", "marker; not a field", "x; a=[unclosed",
                                  "alarm; channels=No Such Label; tile=L5-L", ""])
def test_other_annotations_stay_annotations(text: str) -> None:
    assert parse_annotation(text, 10, None, LABELS) == Event("annotation", 10, None,
                                                             data={"text": text})


def test_labels_that_would_not_read_back_are_written_as_a_list() -> None:
    labels = ["L5-L TibAnt, deep", "all", "S1-R Gastroc"]
    event = Event("artifact", 5, 9, (0, 1), {"kind": "flat"})
    text = annotation_text(event, labels)
    assert text == 'artifact; channels=["L5-L TibAnt, deep", "all"]; kind=flat'
    _same(parse_annotation(text, 5, 9, labels), event)


@pytest.fixture
def case(tmp_path: Path) -> Path:
    path = tmp_path / "case.h5"
    w = RecordingWriter(path, StreamInfo(FS, MONTAGE.labels, 5000.0), MONTAGE, None, {},
                        CaseMetadata("MRN-77 Roe", "L4-S1 PLIF", "Dr Who", "2025-03-01T08:15:00"))
    w.append(np.random.default_rng(4).normal(0, 5, (20_000, 16)).astype(np.float32))
    w.add_events(EVENTS)
    w.close()
    return path


def test_export_then_info_and_replay_read_the_events_back(case: Path, tmp_path: Path) -> None:
    edf = tmp_path / "case.edf"
    export_edf(case, edf)
    media = EdfMedia.load(edf)
    assert len(media.events) == len(EVENTS)
    for got, want in zip(media.events, sorted(EVENTS, key=lambda e: e.start)):
        _same(got, want)
    assert info(edf)["events_by_kind"] == info(case)["events_by_kind"]
    played = as_source_events(media.events)  # what a replay plays into the pipeline
    assert [(e.kind, e.start, e.stop) for e in played] == [
        ("stimulus", 200, None), ("lead_off", 300, 900), ("marker", 400, None)]
    assert played[0].data == {"current_ma": 5.0, "target": "L5-R"}


def test_deidentified_export_clears_every_person_field(case: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    edf = tmp_path / "anon.edf"
    assert main(["export", str(case), "--edf", str(edf), "--deidentify"]) == 0
    head = edf.read_bytes()[:256].decode("ascii")
    assert head[8:88].strip() == "X X X X"
    assert head[88:168].strip() == "Startdate X X X IONM_Station L4-S1_PLIF"
    assert head[168:184] == "01.01.8500.00.00"
    for person in ("MRN", "Roe", "Dr", "Who"):
        assert person not in head
    named = tmp_path / "named.edf"
    export_edf(case, named)
    head = named.read_bytes()[:256].decode("ascii")
    assert "MRN-77_Roe" in head and "Dr_Who" in head and "01-MAR-2025" in head
