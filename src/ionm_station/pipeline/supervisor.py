"""The supervisor: watches every worker, restarts the fallen, raises technical alarms.

Every :data:`POLL_S` it looks at each worker's health. A worker that raised is logged (one
``worker_fault`` event with the error in plain words; the traceback into the station's log file)
and restarted with fresh state at once (well within 1 s of the fault), unless it has used up its
restart budget (:data:`MAX_RESTARTS` in :data:`BUDGET_WINDOW_S`): then it is given up — health
``failed``, a ``worker_failed`` event — and its technical alarm stays up. A worker stalled for
:data:`STALL_RESTART_S` is abandoned and restarted the same way.

A restart runs on a thread of its own (``restart-<worker>``), never on the supervisor's: a
worker's :meth:`~.worker.Worker.on_restart` may close sockets or devices and so may block, and a
supervisor waiting on it would restart nobody else. While a restart runs the worker stays down
(its health keeps ``crashed`` or ``stalled`` until the fresh thread starts), its technical alarm
stays up, and the supervisor does not start another; one that has not returned after
:data:`RESTART_HUNG_S` is logged once as a ``worker_fault`` (``restart hung …``).

It also evaluates the technical alarm conditions (:func:`~.technical.assess`) every poll and
logs a ``technical_alarm`` event when one is raised or cleared. A condition is held for at least
:data:`HOLD_S` after it clears, so a fault that recovers within one poll still shows on the
tiles long enough to be seen. The loop itself cannot die: an exception inside a poll is logged
and the next poll runs. Every :data:`TRIM_S` it also returns unused heap memory to the system.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ionm_station import memory
from ionm_station.events import Event, EventLog
from ionm_station.pipeline.technical import TechnicalAlarm, Vitals, assess, restarted
from ionm_station.pipeline.worker import Worker

#: Seconds between polls.
POLL_S = 0.05
#: Restarts allowed per worker within BUDGET_WINDOW_S before it is given up.
MAX_RESTARTS = 5
BUDGET_WINDOW_S = 60.0
#: A worker stalled this long is abandoned and restarted (s).
STALL_RESTART_S = 2.0
#: A restart whose thread has not returned after this long is hung (s): logged, the worker stays down.
RESTART_HUNG_S = 5.0
#: A technical alarm stays shown at least this long after its condition clears (s).
HOLD_S = 2.0
#: Seconds between giving unused heap memory back to the system (see :mod:`ionm_station.memory`).
TRIM_S = 30.0

log = logging.getLogger("ionm_station")


@dataclass
class _Restart:
    thread: threading.Thread
    started_s: float
    error: str
    hung_logged: bool = False


@dataclass
class _Held:
    alarm: TechnicalAlarm
    raised_s: float
    last_seen_s: float


class Supervisor:
    """Watches workers on its own thread.

    Args:
        workers: returns the workers to watch now (the recorder comes and goes).
        events: the session's event log (faults, restarts, technical alarms go here).
        vitals: returns the inputs of the technical assessment now (None: no station here,
            e.g. the remote supervisor's own workers: faults and restarts only).
        now_index: returns the newest acquired sample index (events are placed there).
        poll_s: seconds between polls.
    """

    def __init__(self, workers: Callable[[], list[Worker]], events: EventLog,
                 vitals: Callable[[], Vitals] | None, now_index: Callable[[], int],
                 poll_s: float = POLL_S) -> None:
        self._workers = workers
        self._events = events
        self._vitals = vitals
        self._now_index = now_index
        self.poll_s = poll_s
        self._restarts: dict[str, deque[float]] = {}
        self._held: dict[str, _Held] = {}
        self._pending: dict[Worker, _Restart] = {}  # restarts under way (or done, not yet seen)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """End polling; wait (at most ``timeout_s`` in all) for it and for restarts under way."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        for pending in list(self._pending.values()):
            pending.thread.join(max(0.0, deadline - time.monotonic()))

    def held(self) -> list[TechnicalAlarm]:
        """Technical alarms raised and not yet cleared (held at least :data:`HOLD_S`)."""
        with self._lock:
            return [h.alarm for h in self._held.values()]

    def poll(self) -> None:
        """One round: restart fallen workers, then update the technical alarms (a worker
        restarted in this round counts as down: its fault must show even if it is already
        running again)."""
        workers = self._workers()
        faults = [alarm for worker in workers if (alarm := self._watch(worker))]
        for gone in [w for w, p in self._pending.items()
                     if w not in workers and not p.thread.is_alive()]:
            del self._pending[gone]  # (a recorder replaced by a new one)
        current = {a.kind: a for a in faults}
        if self._vitals is not None:
            current.update({a.kind: a for a in assess(self._vitals())})
        self._technical(list(current.values()), time.monotonic())

    # --- internals ---

    def _run(self) -> None:
        next_trim = time.monotonic() + TRIM_S
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
                if time.monotonic() >= next_trim:
                    memory.trim()
                    next_trim += TRIM_S
            except Exception:  # never let supervision end: log and poll again
                log.exception("supervisor poll failed")

    def _watch(self, worker: Worker) -> TechnicalAlarm | None:
        """Restart ``worker`` if it crashed or stalled too long; the alarm of a restart (also
        while one is still running)."""
        pending = self._pending.get(worker)
        if pending is not None:
            if pending.thread.is_alive():
                return self._waiting(worker, pending)
            del self._pending[worker]
        h = worker.health()
        stalled = h.state == "stalled" and h.heartbeat_age_s >= STALL_RESTART_S
        if h.state != "crashed" and not stalled:
            return None
        index = self._now_index()
        error = h.error if h.state == "crashed" else f"stalled for {h.heartbeat_age_s:.1f} s"
        if h.state == "crashed":
            log.error("worker %s crashed at sample %d:\n%s", worker.name, index, worker.traceback)
        else:
            log.error("worker %s stalled for %.1f s at sample %d", worker.name, h.heartbeat_age_s, index)
        self._events.append(Event("worker_fault", index, data={"worker": worker.name, "error": error}))
        now = time.monotonic()
        recent = self._restarts.setdefault(worker.name, deque())
        while recent and now - recent[0] > BUDGET_WINDOW_S:
            recent.popleft()
        if len(recent) >= MAX_RESTARTS:
            worker.give_up()
            log.error("worker %s given up after %d restarts in %.0f s", worker.name, len(recent),
                      BUDGET_WINDOW_S)
            self._events.append(Event("worker_failed", index, data={
                "worker": worker.name, "error": error,
                "reason": f"{len(recent)} restarts within {BUDGET_WINDOW_S:g} s"}))
            return None  # given up: its health keeps the alarm up
        recent.append(now)
        thread = threading.Thread(target=self._restart, args=(worker, len(recent)),
                                  name=f"restart-{worker.name}", daemon=True)
        self._pending[worker] = _Restart(thread, now, error)
        thread.start()
        return restarted(worker.name, error)

    def _waiting(self, worker: Worker, pending: _Restart) -> TechnicalAlarm:
        """The alarm of a restart still running; a hung one is logged once."""
        waited = time.monotonic() - pending.started_s
        if waited >= RESTART_HUNG_S and not pending.hung_logged:
            pending.hung_logged = True
            error = f"restart hung: not done after {waited:.1f} s ({pending.error})"
            log.error("worker %s: %s", worker.name, error)
            self._events.append(Event("worker_fault", self._now_index(),
                                      data={"worker": worker.name, "error": error}))
        return restarted(worker.name, pending.error)

    def _restart(self, worker: Worker, recent: int) -> None:
        """On a ``restart-<worker>`` thread: rebuild and relaunch ``worker``, then log it. A
        restart that raises leaves the worker down; the next poll tries again (budget counts)."""
        try:
            worker.restart()
        except Exception as exc:  # logged; the worker stays crashed for the next poll
            log.exception("worker %s restart failed", worker.name)
            self._events.append(Event("worker_fault", self._now_index(), data={
                "worker": worker.name, "error": f"restart failed: {type(exc).__name__}: {exc}"}))
            return
        log.warning("worker %s restarted (%d within %.0f s)", worker.name, recent, BUDGET_WINDOW_S)
        self._events.append(Event("worker_restarted", self._now_index(),
                                  data={"worker": worker.name, "restarts": worker.restarts}))

    def _technical(self, current: list[TechnicalAlarm], now: float) -> None:
        index = self._now_index()
        seen = {a.kind: a for a in current if a.priority}  # "run ended" is a display, not an alarm
        with self._lock:
            for kind, alarm in seen.items():
                held = self._held.get(kind)
                if held is None:
                    self._held[kind] = _Held(alarm, now, now)
                    self._log(index, alarm, "raised")
                else:
                    held.alarm, held.last_seen_s = alarm, now
            for kind in [k for k, h in self._held.items() if k not in seen]:
                held = self._held[kind]
                if now - held.last_seen_s >= HOLD_S:
                    del self._held[kind]
                    self._log(index, held.alarm, "cleared", now - held.raised_s)

    def _log(self, index: int, alarm: TechnicalAlarm, what: str, lasted_s: float | None = None) -> None:
        data = {"condition": alarm.kind, "what": what, "priority": alarm.priority,
                "reason": alarm.reason, "host_time_s": round(time.time(), 3)}
        if lasted_s is not None:
            data["lasted_s"] = round(lasted_s, 3)
        self._events.append(Event("technical_alarm", index, data=data))
        (log.warning if what == "raised" else log.info)("technical alarm %s %s: %s",
                                                        alarm.headline, what, alarm.reason)
