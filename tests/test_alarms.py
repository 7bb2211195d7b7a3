"""Alarm engine: every state transition of a root-side tile."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ionm_station.alarms import AlarmConfig, AlarmEngine
from ionm_station.events import EventLog
from ionm_station.montage import load_montage

FS = 10_000.0


@dataclass
class Ev:
    channel: int
    kind: str
    train_type: str | None
    onset: int
    offset: int
    peak_uv: float


@dataclass
class Sp:
    kind: str
    start: int
    stop: int | None
    channels: tuple[int, ...]


def s(seconds: float) -> int:
    return int(seconds * FS)


@pytest.fixture
def engine() -> tuple[AlarmEngine, EventLog]:
    log = EventLog()
    return AlarmEngine(load_montage("lumbar"), FS, AlarmConfig(), sink=log.append), log


L5L_TIBANT = 3  # lumbar montage: channel 3 = L5-L TibAnt, 4 = L5-L EHL


def test_starts_quiet_with_one_tile_per_root_side(engine) -> None:
    eng, log = engine
    tiles = eng.tiles()
    assert [t.key for t in tiles] == load_montage("lumbar").tile_keys()
    assert all(t.state == "quiet" and t.priority is None for t in tiles)
    assert len(log) == 0


def test_activity_above_threshold_then_back_to_quiet(engine) -> None:
    eng, log = engine
    eng.update(s(1.0), [Ev(L5L_TIBANT, "burst", None, s(0.9), s(0.95), 60.0)])
    assert eng.tile("L5-L").state == "quiet"  # 60 µV < 100 µV threshold
    eng.update(s(2.0), [Ev(L5L_TIBANT, "burst", None, s(1.9), s(1.95), 250.0)])
    t = eng.tile("L5-L")
    assert (t.state, t.priority, t.last_peak_uv) == ("activity", "advisory", 250.0)
    assert eng.tile("L5-R").state == "quiet"
    eng.update(s(6.9))
    assert eng.tile("L5-L").state == "activity"  # held 5 s after the event ended
    eng.update(s(7.0))
    assert eng.tile("L5-L").state == "quiet"
    states = [e.data["state"] for e in log.of_kind("alarm")]
    assert states == ["activity", "quiet"]


def test_any_a_train_alarms_and_latches_until_acknowledged(engine) -> None:
    eng, log = engine
    eng.update(s(10.0), [Ev(L5L_TIBANT, "train", "A", s(9.0), s(9.2), 40.0)])  # small, short
    t = eng.tile("L5-L")
    assert t.state == "alarm" and t.priority == "advisory" and t.latched
    assert t.train_time_s == pytest.approx(0.2)
    eng.update(s(60.0))
    assert eng.tile("L5-L").state == "alarm"  # latched long after the train
    assert eng.audible == "advisory"
    eng.acknowledge("L5-L")
    assert eng.tile("L5-L").state == "quiet" and eng.audible is None
    assert log.of_kind("alarm_ack")[0].data["tile"] == "L5-L"


def test_train_time_escalates_to_caution_and_warning(engine) -> None:
    eng, _ = engine
    eng.update(s(2.0), [Ev(L5L_TIBANT, "train", "A", s(1.0), s(1.6), 150.0)])
    assert eng.tile("L5-L").priority == "caution"  # 0.6 s ≥ 0.5 s
    eng.update(s(20.0), [Ev(4, "train", "A", s(5.0), s(15.0), 150.0)])  # L5-L EHL, same root
    t = eng.tile("L5-L")
    assert t.priority == "warning" and t.train_time_s == pytest.approx(10.6)
    eng.acknowledge()
    eng.update(s(30.0), [Ev(L5L_TIBANT, "train", "A", s(25.0), s(25.1), 150.0)])
    assert eng.tile("L5-L").priority == "warning"  # train time keeps its sum after ack


def test_b_train_is_activity_not_alarm(engine) -> None:
    eng, _ = engine
    eng.update(s(3.0), [Ev(L5L_TIBANT, "train", "B", s(1.0), s(2.5), 300.0)])
    assert eng.tile("L5-L").state == "activity"
    assert eng.tile("L5-L").train_time_s == 0.0


def test_cautery_blanks_every_tile_but_never_hides_a_latched_alarm(engine) -> None:
    eng, _ = engine
    eng.update(s(1.0), [Ev(L5L_TIBANT, "train", "A", s(0.5), s(0.7), 150.0)])
    span = Sp("cautery", s(2.0), None, tuple(range(16)))
    eng.update(s(2.0), open_spans=[span])
    assert eng.tile("S1-R").state == "blanked" and "cautery" in eng.tile("S1-R").reason
    assert eng.tile("L5-L").state == "alarm" and "cautery" in eng.tile("L5-L").reason
    eng.update(s(4.0))  # nothing open any more
    assert eng.tile("S1-R").state == "quiet"


def test_lead_off_on_all_channels_of_a_root_is_no_signal(engine) -> None:
    eng, _ = engine
    first = Sp("lead_off", s(1.0), None, (L5L_TIBANT,))
    eng.update(s(1.0), open_spans=[first])
    assert eng.tile("L5-L").state == "quiet"  # the EHL channel still records L5
    eng.update(s(1.5), open_spans=[first, Sp("saturation", s(1.5), None, (4,))])
    assert eng.tile("L5-L").state == "no_signal"
    eng.update(s(3.0), open_spans=[first])
    assert eng.tile("L5-L").state == "quiet"


def test_spans_are_a_level_so_a_span_swallowed_by_cautery_cannot_stick(engine) -> None:
    """A saturation seen just before cautery is recognised is absorbed into the cautery span and
    never reported closed; the engine must not keep the channel off afterwards."""
    eng, _ = engine
    l5 = (L5L_TIBANT, 4)
    eng.update(s(1.0), open_spans=[Sp("saturation", s(1.0), None, (c,)) for c in l5])
    assert eng.tile("L5-L").state == "no_signal"
    eng.update(s(1.01), open_spans=[Sp("cautery", s(0.85), None, tuple(range(16)))])
    assert eng.tile("L5-L").state == "blanked"
    eng.update(s(3.0), [Ev(L5L_TIBANT, "burst", None, s(2.9), s(2.95), 391.0)])
    assert eng.tile("L5-L").state == "activity"  # activity right after cautery is shown


def test_one_a_train_on_two_muscles_of_a_root_counts_once(engine) -> None:
    eng, _ = engine
    eng.update(s(2.0), [Ev(L5L_TIBANT, "train", "A", s(1.0), s(1.3) - 1, 150.0),
                        Ev(4, "train", "A", s(1.0), s(1.3) - 1, 150.0)])
    t = eng.tile("L5-L")
    assert t.train_time_s == pytest.approx(0.3) and t.priority == "advisory"  # not 0.6 s, CAUTION


def test_rootless_channels_have_their_own_tiles() -> None:
    from ionm_station.analysis import montage_from_labels

    montage = montage_from_labels(["EMG1", "EMG2"])
    eng = AlarmEngine(montage, FS)
    assert [t.key for t in eng.tiles()] == ["EMG1", "EMG2"] == montage.tile_keys()
    eng.update(s(1.0), [Ev(1, "burst", None, s(0.9), s(0.95), 500.0)])
    assert eng.tile("EMG2").state == "activity"


def test_blockade(engine) -> None:
    eng, _ = engine
    eng.set_blockade("neuromuscular blockade: EMG unreliable (TOF 1/4)", s(2.0))
    assert all("blockade" in t.reason for t in eng.tiles())
    eng.set_blockade("", s(3.0))
    assert all(t.reason == "" for t in eng.tiles())


def test_silence_mutes_audio_for_a_time(engine) -> None:
    eng, log = engine
    eng.update(s(1.0), [Ev(L5L_TIBANT, "train", "A", s(0.5), s(1.5), 150.0)])
    assert eng.audible == "caution"
    eng.silence(60)
    assert eng.audible is None and eng.tile("L5-L").silenced_until_s == pytest.approx(61.0)
    eng.update(s(61.5))
    assert eng.audible == "caution"
    assert log.of_kind("alarm_silence")


def test_threshold_per_root(engine) -> None:
    eng, log = engine
    eng.set_threshold("L5-L", 300.0)
    eng.update(s(1.0), [Ev(L5L_TIBANT, "burst", None, s(0.9), s(0.95), 250.0)])
    assert eng.tile("L5-L").state == "quiet"
    assert log.of_kind("alarm_threshold")[0].data == {"tile": "L5-L", "threshold_uv": 300.0}
    with pytest.raises(ValueError):
        eng.set_threshold("L5-L", 1.0)
    with pytest.raises(ValueError, match="no alarm tile"):
        eng.set_threshold("L9-X", 100.0)
    with pytest.raises(ValueError):
        eng.set_threshold("L5-L", float("nan"))


def test_ongoing_a_train_alarms_before_it_ends_and_its_time_runs(engine) -> None:
    eng, log = engine
    eng.update(s(1.2), ongoing=[Ev(L5L_TIBANT, "train", "A", s(1.0), s(1.15), 150.0)])
    t = eng.tile("L5-L")
    assert t.state == "alarm" and "ongoing" in t.reason
    assert t.train_time_s == pytest.approx(0.15, abs=1e-3)  # the tile's time runs with it
    eng.update(s(1.3), ongoing=[Ev(L5L_TIBANT, "train", "A", s(1.0), s(1.25), 160.0)])
    assert eng.tile("L5-L").train_time_s == pytest.approx(0.25, abs=1e-3)
    assert len([e for e in log.of_kind("alarm") if e.data["tile"] == "L5-L"]) == 1  # no flood
    eng.update(s(1.9), ongoing=[Ev(L5L_TIBANT, "train", "A", s(1.0), s(1.8), 150.0)])
    assert eng.tile("L5-L").priority == "caution"  # 0.8 s so far ≥ 0.5 s
    assert eng.tile("L5-L").train_time_s == pytest.approx(0.8, abs=1e-3)
    assert eng.train_time.tile_s("L5-L") == 0.0  # the ledger counts it when it ends
    eng.update(s(3.5), [Ev(L5L_TIBANT, "train", "A", s(1.0), s(3.0), 150.0)])
    t = eng.tile("L5-L")
    assert t.train_time_s == pytest.approx(2.0, abs=1e-3)  # counted once, when it ended
    eng.update(s(3.6), ongoing=[Ev(L5L_TIBANT, "train", "A", s(3.2), s(3.55), 150.0)])
    assert eng.tile("L5-L").train_time_s == pytest.approx(2.35, abs=1e-3)
    eng.update(s(3.7))  # re-typed or dropped before it ended: no longer counted
    assert eng.tile("L5-L").train_time_s == pytest.approx(2.0, abs=1e-3)


def test_adaptive_threshold_rises_with_continuous_activity_and_reverts() -> None:
    log = EventLog()
    eng = AlarmEngine(load_montage("lumbar"), FS, AlarmConfig(adaptive=True), sink=log.append)
    t = 0.0
    while t < 12.0:  # a burst of 250 µV every 0.5 s for 12 s: continuous activity
        eng.update(s(t + 0.1), [Ev(L5L_TIBANT, "burst", None, s(t), s(t + 0.05), 250.0)])
        t += 0.5
    change = log.of_kind("alarm_threshold_auto")
    assert change and change[0].data["threshold_uv"] == 250.0
    assert change[0].start >= s(10.0)  # only after 10 s of it
    assert "auto threshold 250" in eng.tile("L5-L").reason
    eng.update(s(13.0), [Ev(L5L_TIBANT, "burst", None, s(12.9), s(12.95), 200.0)])
    assert eng.tile("L5-L").last_peak_uv == 250.0  # 200 µV is below the raised threshold
    eng.update(s(13.1), [Ev(L5L_TIBANT, "train", "A", s(12.95), s(13.05), 90.0)])
    assert eng.tile("L5-L").state == "alarm"  # an A-train alarms whatever the threshold
    eng.update(s(29.0))  # 15 s and more of quiet
    assert log.of_kind("alarm_threshold_auto")[-1].data["threshold_uv"] is None
    assert "auto threshold" not in eng.tile("L5-L").reason


def test_adaptive_threshold_is_capped_and_off_by_default(engine) -> None:
    eng, log = engine
    for k in range(30):
        eng.update(s(k * 0.5 + 0.1), [Ev(L5L_TIBANT, "burst", None, s(k * 0.5), s(k * 0.5 + 0.05), 900.0)])
    assert not log.of_kind("alarm_threshold_auto")  # default config: off
    log2 = EventLog()
    eng2 = AlarmEngine(load_montage("lumbar"), FS, AlarmConfig(adaptive=True), sink=log2.append)
    for k in range(30):
        eng2.update(s(k * 0.5 + 0.1), [Ev(L5L_TIBANT, "burst", None, s(k * 0.5), s(k * 0.5 + 0.05), 900.0)])
    assert log2.of_kind("alarm_threshold_auto")[0].data["threshold_uv"] == 400.0
