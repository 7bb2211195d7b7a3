"""Supervised workers, the supervisor, technical alarms and the train-time ledger (pure parts)."""

from __future__ import annotations

import threading
import time

import pytest

from ionm_station.alarms import TileState
from ionm_station.detect.train_time import TrainTimeLedger, union_samples
from ionm_station.events import EventLog
from ionm_station.montage import load_montage
from ionm_station.pipeline import supervisor as sup
from ionm_station.pipeline.supervisor import Supervisor
from ionm_station.pipeline.technical import TechnicalAlarm, Vitals, assess, overlay
from ionm_station.pipeline.worker import Worker, WorkerHealth


class Counter(Worker):
    """Counts steps; raises on the steps listed in ``fail_at``; can be told to block."""

    def __init__(self, fail_at: set[int] = frozenset(), stall_s: float = 0.5) -> None:
        super().__init__("processing", stall_s=stall_s, idle_s=0.001)
        self.steps = 0
        self.fail_at = set(fail_at)
        self.rebuilt = 0
        self.block = threading.Event()

    def step(self) -> int:
        self.steps += 1
        if self.steps in self.fail_at:
            raise RuntimeError(f"boom at {self.steps}")
        if self.block.is_set():
            time.sleep(0.3)
        return 1

    def on_restart(self) -> None:
        self.rebuilt += 1


def wait_for(predicate, timeout_s: float = 3.0) -> float:
    """Seconds until ``predicate()`` held (fails the test after ``timeout_s``)."""
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout_s, "condition not reached"
        time.sleep(0.002)
    return time.monotonic() - t0


def healthy() -> WorkerHealth:
    return WorkerHealth("x", "running")


# --- worker ---------------------------------------------------------------------------------


def test_worker_crash_is_kept_and_restart_rebuilds() -> None:
    w = Counter(fail_at={5})
    w.start()
    wait_for(lambda: w.health().state == "crashed")
    h = w.health()
    assert h.error == "RuntimeError: boom at 5" and "Traceback" in (w.traceback or "")
    w.restart()
    wait_for(lambda: w.steps > 10)
    assert w.health().state == "running" and w.rebuilt == 1 and w.health().restarts == 1
    w.stop()
    assert w.health().state == "stopped"


def test_worker_stall_shows_in_health() -> None:
    w = Counter(stall_s=0.1)
    w.start()
    w.block.set()  # every step now takes 0.3 s: the heartbeat goes stale
    wait_for(lambda: w.health().state == "stalled")
    w.block.clear()
    wait_for(lambda: w.health().state == "running")
    w.stop()


# --- supervisor -----------------------------------------------------------------------------


def make_supervisor(worker: Worker, log: EventLog, vitals=None) -> Supervisor:
    return Supervisor(lambda: [worker], log,
                      vitals or (lambda: Vitals(worker.health(), healthy())), lambda: 123)


def test_supervisor_restarts_a_crashed_worker_within_a_second() -> None:
    log = EventLog()
    w = Counter(fail_at={3})
    s = make_supervisor(w, log)
    w.start()
    s.start()
    try:
        wait_for(lambda: w.steps > 3 and w.health().state == "running" and w.restarts == 1, 1.0)
    finally:
        s.stop()
        w.stop()
    fault = log.of_kind("worker_fault")[0]
    assert fault.data == {"worker": "processing", "error": "RuntimeError: boom at 3"} and fault.start == 123
    assert log.of_kind("worker_restarted")[0].data["restarts"] == 1


def test_restart_budget_gives_up_and_keeps_the_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog()
    w = Counter(fail_at=set(range(1, 1000)))  # fails on every step
    s = make_supervisor(w, log)
    w.start()
    for _ in range(40):
        time.sleep(0.01)
        s.poll()
    assert w.health().state == "failed"
    assert len(log.of_kind("worker_restarted")) == sup.MAX_RESTARTS
    assert log.of_kind("worker_failed")[0].data["reason"].startswith(f"{sup.MAX_RESTARTS} restarts")
    raised = [e.data for e in log.of_kind("technical_alarm") if e.data["what"] == "raised"]
    assert raised and raised[0]["condition"] == "not_monitoring"
    assert [a.kind for a in s.held()] == ["not_monitoring"]


def test_a_stalled_worker_is_abandoned_and_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sup, "STALL_RESTART_S", 0.2)
    log = EventLog()
    w = Counter(stall_s=0.05)
    w.start()
    w.block.set()
    s = make_supervisor(w, log)
    wait_for(lambda: (s.poll(), w.restarts)[1] >= 1)
    w.block.clear()
    assert "stalled" in log.of_kind("worker_fault")[0].data["error"]
    wait_for(lambda: w.health().state == "running")
    w.stop()


class Sticky(Counter):
    """A worker whose :meth:`on_restart` blocks until ``release`` is set (e.g. closing a socket
    whose peer is gone) or raises while ``refuse`` is set."""

    def __init__(self, name: str, fail_at: set[int]) -> None:
        super().__init__(fail_at)
        self.name = name
        self.release = threading.Event()
        self.refuse = False

    def on_restart(self) -> None:
        if self.refuse:
            self.refuse = False
            raise OSError("device busy")
        self.release.wait(30.0)
        super().on_restart()


def test_a_hung_restart_stops_no_other_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker's restart that never returns must not keep the supervisor from restarting the
    others; the hung one stays down with its alarm up, is logged as hung, and stopping it does
    not hang the station's shutdown."""
    monkeypatch.setattr(sup, "RESTART_HUNG_S", 0.3)
    log = EventLog()
    stuck, other = Sticky("sdc-publisher", {2}), Counter(fail_at={400})
    workers = [stuck, other]
    s = Supervisor(lambda: workers, log, None, lambda: 0, poll_s=0.01)
    for w in workers:
        w.start()
    s.start()
    try:
        wait_for(lambda: stuck.restarts == 1)  # its restart began, and hangs in on_restart
        elapsed = wait_for(lambda: other.restarts == 1 and other.health().state == "running", 2.0)
        assert elapsed < 1.0 + 400 * 0.002  # within a second of its crash (≤ 400 short steps)
        assert stuck.health().down and stuck.rebuilt == 0
        wait_for(lambda: "remote_off" in [a.kind for a in s.held()])  # its fault is shown
        wait_for(lambda: any("restart hung" in e.data["error"] for e in log.of_kind("worker_fault")))
        assert stuck.restarts == 1  # one restart at a time
        t0 = time.monotonic()
        stuck.stop(timeout_s=0.2)
        assert time.monotonic() - t0 < 1.0
    finally:
        stuck.release.set()
        s.stop()
        other.stop()
    wait_for(lambda: stuck.health().state == "stopped")  # not relaunched after the stop
    assert stuck.rebuilt == 1 and stuck.join(1.0)


def test_a_restart_that_raises_is_logged_and_tried_again() -> None:
    log = EventLog()
    w = Sticky("recorder", {2})
    w.refuse = True
    w.release.set()
    s = Supervisor(lambda: [w], log, None, lambda: 0, poll_s=0.01)
    w.start()
    s.start()
    try:
        wait_for(lambda: w.rebuilt == 1 and w.health().state == "running")
    finally:
        s.stop()
        w.stop()
    errors = [e.data["error"] for e in log.of_kind("worker_fault")]
    assert errors[:2] == ["RuntimeError: boom at 2", "restart failed: OSError: device busy"]
    assert len(log.of_kind("worker_restarted")) == 1 and w.restarts == 2


def test_stop_waits_for_the_thread_a_restart_launched_meanwhile() -> None:
    """A stop that lands while a restart is past its own stop check but has not launched yet:
    the stop waits for the lock, then for the thread the restart launched (which sees the stop
    and ends) — its on_exit is over when stop returns (a recorder must not close its file
    from two threads at once)."""

    class Late(Counter):
        def __init__(self) -> None:
            super().__init__({2})
            self.launching = threading.Event()
            self.go = threading.Event()
            self.exits = 0

        def _launch(self) -> None:
            if self.restarts:
                self.launching.set()
                self.go.wait(5.0)
            super()._launch()

        def on_exit(self) -> None:
            time.sleep(0.2)
            self.exits += 1

    w = Late()
    w.start()
    wait_for(lambda: w.health().state == "crashed")
    restart = threading.Thread(target=w.restart)
    restart.start()
    assert w.launching.wait(2.0)
    stopper = threading.Thread(target=w.stop)
    stopper.start()
    time.sleep(0.05)  # the stop has joined the old thread and waits for the lock
    w.go.set()
    stopper.join(3.0)
    restart.join(1.0)
    assert not stopper.is_alive() and w.exits == 1 and not w._thread.is_alive()
    assert w.health().state == "stopped"


def test_technical_alarm_is_held_after_a_short_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sup, "HOLD_S", 0.3)
    log = EventLog()
    state = {"v": Vitals(WorkerHealth("processing", "crashed", error="X: y"), healthy())}
    s = Supervisor(list, log, lambda: state["v"], lambda: 7)
    s.poll()
    assert [a.kind for a in s.held()] == ["not_monitoring"]
    state["v"] = Vitals(healthy(), healthy())
    s.poll()
    assert [a.kind for a in s.held()] == ["not_monitoring"]  # still shown: held
    time.sleep(0.35)
    s.poll()
    assert s.held() == []
    whats = [e.data["what"] for e in log.of_kind("technical_alarm")]
    assert whats == ["raised", "cleared"] and log.of_kind("technical_alarm")[1].data["lasted_s"] >= 0.3


def test_supervisor_survives_a_failing_poll() -> None:
    calls = {"n": 0}

    def vitals() -> Vitals:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first poll fails")
        return Vitals(healthy(), healthy())

    s = Supervisor(list, EventLog(), vitals, lambda: 0, poll_s=0.01)
    s.start()
    wait_for(lambda: calls["n"] >= 3)
    s.stop()


# --- technical alarms -----------------------------------------------------------------------


@pytest.mark.parametrize("vitals, kinds", [
    (Vitals(healthy(), healthy()), []),
    (Vitals(WorkerHealth("processing", "stalled", 0.8), healthy()), ["not_monitoring"]),
    (Vitals(WorkerHealth("processing", "crashed", error="E: x"), healthy()), ["not_monitoring"]),
    (Vitals(healthy(), healthy(), lag_s=2.0), ["not_monitoring"]),
    (Vitals(healthy(), healthy(), lag_s=20.0, live=False), []),  # a fast replay runs ahead
    (Vitals(healthy(), healthy(), silent_s=0.6), ["signal_lost"]),
    (Vitals(healthy(), healthy(), silent_s=5.0, live=False), []),
    (Vitals(healthy(), healthy(), source_state="reconnecting"), ["signal_lost"]),
    (Vitals(healthy(), healthy(), source_fault="DeviceError: gone"), ["signal_lost"]),
    (Vitals(healthy(), WorkerHealth("acquisition", "crashed")), ["signal_lost"]),
    (Vitals(healthy(), healthy(), (WorkerHealth("serial-reader", "crashed"),)), ["signal_lost"]),
    (Vitals(healthy(), healthy(), recorder_failed="disk full"), ["recording_stopped"]),
    (Vitals(healthy(), healthy(), degraded=("250 Hz: ECG removal off",)), ["low_sample_rate"]),
    (Vitals(healthy(), healthy(), finished=True), ["not_monitoring"]),
])
def test_assess(vitals: Vitals, kinds: list[str]) -> None:
    assert [a.kind for a in assess(vitals)] == kinds


def test_overlay_never_leaves_a_quiet_tile_over_an_unmonitored_channel() -> None:
    tiles = [TileState("L5-L", "L5", "L", "alarm", "caution", "A-train", 0.6, latched=True),
             TileState("L5-R", "L5", "R")]
    shown = overlay(tiles, [TechnicalAlarm("not_monitoring", "warning", "processing crashed"),
                            TechnicalAlarm("recording_stopped", "caution", "disk full")])
    assert [t.state for t in shown] == ["not_monitoring", "not_monitoring"]
    assert shown[0].train_time_s == 0.6 and "alarm before: A-train" in shown[0].reason
    assert all("RECORDING STOPPED: disk full" in t.technical for t in shown)
    kept = overlay(tiles, [TechnicalAlarm("low_sample_rate", "advisory", "250 Hz")])
    assert [t.state for t in kept] == ["alarm", "quiet"] and kept[1].technical


# --- train time -----------------------------------------------------------------------------


def test_union_samples() -> None:
    assert union_samples([]) == 0
    assert union_samples([(0, 10), (5, 15), (20, 25)]) == 20
    assert union_samples([(5, 6), (0, 100)]) == 100


def test_train_time_is_the_union_over_a_tiles_muscles() -> None:
    montage = load_montage("lumbar")
    ledger = TrainTimeLedger(montage, 1000.0)
    l5l = montage.channels_of("L5", "L")
    assert len(l5l) == 2
    ledger.add(l5l[0], 1000, 1300)  # one 0.3 s A-train seen on both L5-L muscles
    ledger.add(l5l[1], 1000, 1300)
    assert ledger.tile_s("L5-L") == pytest.approx(0.3)
    assert ledger.by_channel()[montage.channels[l5l[1]].label] == pytest.approx(0.3)
    assert ledger.tile_s("L5-L", [(1200, 1600)]) == pytest.approx(0.6)  # with an ongoing one
    assert set(ledger.by_tile()) == set(montage.tile_keys())
