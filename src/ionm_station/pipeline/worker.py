"""Supervised workers: a thread with a heartbeat, a health state and a restart.

Every thread the station depends on (acquisition, a device's reader, processing, recorder) is a
:class:`Worker`. Its loop beats a heartbeat on every pass; an exception that escapes
:meth:`Worker.step` ends the pass, is kept with its traceback and turns the health to
``crashed``. The :class:`~ionm_station.pipeline.supervisor.Supervisor` notices, logs it and calls
:meth:`Worker.restart`, which lets the subclass rebuild its state (:meth:`Worker.on_restart`)
and starts a fresh thread — within one supervisor poll. A worker whose heartbeat stops while it
should be running is ``stalled``; a stalled thread cannot be killed in Python, so a restart
abandons it: the old thread's generation no longer matches and it leaves at its next check
without touching shared state again.

Health states: ``idle`` (not started), ``running``, ``stalled``, ``crashed`` (raised, waiting for
the supervisor), ``failed`` (restart budget spent: stays down, its technical alarm stays up),
``finished`` (ended on purpose: end of record, sample limit) and ``stopped``.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

#: Pause of an idle loop pass (s) when :meth:`Worker.step` found nothing to do.
IDLE_S = 0.005
#: A running worker whose heartbeat is older than this is stalled (s). A hung thread shows within
#: this; a pass of ordinary work must stay well below it even on a loaded machine (measured: a
#: 0.1 s block of 16 ch × 10 kHz through the chain took up to ~0.6 s with the 2 cores at load 10).
STALL_S = 1.0

STATES = ("idle", "running", "stalled", "crashed", "failed", "finished", "stopped")


@dataclass(frozen=True)
class WorkerHealth:
    """A worker's health at one moment.

    Attributes:
        name: the worker's name (``processing``, ``acquisition``, ``serial-reader`` …).
        state: one of :data:`STATES`.
        heartbeat_age_s: wall time since the last loop pass (s); 0 when not running.
        restarts: restarts so far.
        error: the last exception, one line (``TypeError: …``), or None.
    """

    name: str
    state: str
    heartbeat_age_s: float = 0.0
    restarts: int = 0
    error: str | None = None

    @property
    def down(self) -> bool:
        """Not doing its work now (stalled, crashed or failed)."""
        return self.state in ("stalled", "crashed", "failed")


class Worker:
    """A loop on its own daemon thread, watched by a supervisor.

    Subclasses implement :meth:`step` (do one bounded piece of work, return how much was done:
    0 means idle) and, if they hold state that a fault may have corrupted, :meth:`on_restart`.
    :meth:`step` may return ``None`` to end the worker on purpose (``finished``).

    Args:
        name: shown in health reports, logs and technical alarms.
        stall_s: heartbeat age (s) beyond which a running worker counts as stalled.
        idle_s: sleep after an idle pass (s).
    """

    def __init__(self, name: str, stall_s: float = STALL_S, idle_s: float = IDLE_S) -> None:
        self.name = name
        self.stall_s = stall_s
        self.idle_s = idle_s
        self.restarts = 0
        self.error: str | None = None
        self.traceback: str | None = None
        self._state = "idle"
        self._beat = time.monotonic()
        self._generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- lifetime (any thread) ---

    def start(self) -> None:
        """Start the loop (once; later starts are :meth:`restart`)."""
        with self._lock:
            if self._thread is not None:
                return
            self._launch()

    def restart(self) -> None:
        """Rebuild state (:meth:`on_restart`) and run a fresh thread; a stalled old thread is
        abandoned (it exits at its next check without doing more work)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._generation += 1  # the old thread, if still inside step(), becomes stale
            self.restarts += 1
            self.on_restart()
            if self._stop.is_set():  # stopped while on_restart ran: stay stopped
                self._state = "stopped"
                return
            self._launch()

    def give_up(self) -> None:
        """Stop retrying: the worker stays down as ``failed`` (its alarm stays up)."""
        with self._lock:
            self._generation += 1
            self._state = "failed"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the loop to end and wait for it: at most ``timeout_s`` in all, also for a
        restart that holds the lock (a hung :meth:`on_restart` must not hang the station's
        shutdown) and for the thread a restart launched meanwhile (it ends at once)."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        joined = self._join_until(self._thread, deadline)
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return  # a restart is stuck inside on_restart; it sees the stop and launches nothing
        try:
            if self._state in ("running", "stalled", "idle"):
                self._state = "stopped"
            thread = self._thread
        finally:
            self._lock.release()
        if thread is not joined:
            self._join_until(thread, deadline)

    @staticmethod
    def _join_until(thread: threading.Thread | None, deadline: float) -> threading.Thread | None:
        """Wait for ``thread`` (not the caller's own) until ``deadline`` (monotonic s); returns
        it."""
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        return thread

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the current thread to end; True if it did."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def health(self) -> WorkerHealth:
        """The health now: ``running`` turns ``stalled`` when the heartbeat is too old."""
        state = self._state
        age = time.monotonic() - self._beat if state in ("running", "stalled") else 0.0
        if state == "running" and age > self.stall_s:
            state = "stalled"
        return WorkerHealth(self.name, state, round(age, 3), self.restarts, self.error)

    # --- for subclasses ---

    def step(self) -> int | None:
        """One bounded piece of work; 0 = nothing to do, None = finished on purpose."""
        raise NotImplementedError

    def on_restart(self) -> None:
        """Rebuild state after a fault, before the new thread starts (lock held)."""

    def beat(self) -> None:
        """Heartbeat from inside a long :meth:`step` (the loop beats on every pass)."""
        self._beat = time.monotonic()

    def current(self, generation: int) -> bool:
        """True while ``generation`` is the worker's live generation (not abandoned)."""
        return generation == self._generation and not self._stop.is_set()

    @property
    def generation(self) -> int:
        return self._generation

    def on_exit(self) -> None:
        """Called on the worker's thread when its loop ends normally (stop or finish)."""

    # --- internals ---

    def _launch(self) -> None:
        self._state = "running"
        self._beat = time.monotonic()
        thread = threading.Thread(target=self._loop, args=(self._generation,), name=self.name,
                                  daemon=True)
        thread.start()
        self._thread = thread  # only a started thread is ever joined (join, stop)

    def _loop(self, generation: int) -> None:
        try:
            while self.current(generation):
                self._beat = time.monotonic()
                done = self.step()
                if done is None:
                    with self._lock:
                        if generation == self._generation:
                            self._state = "finished"
                    break
                if done == 0:
                    self._stop.wait(self.idle_s)
            if generation == self._generation:
                self.on_exit()
        except Exception as exc:  # kept for the supervisor: logged, then restarted
            with self._lock:
                if generation != self._generation:
                    return  # an abandoned thread's late failure changes nothing
                self.error = f"{type(exc).__name__}: {exc}"
                self.traceback = traceback.format_exc()
                self._state = "crashed"
