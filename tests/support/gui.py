"""Helpers of the GUI tests: sessions on the simulator, a window over a running one, faults
injected through real paths, detections handed to the processing thread's alarm engine."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

from ionm_station.audio import AlarmSounder
from ionm_station.audio_out import AudioOutput
from ionm_station.gui import app as gui_app
from ionm_station.gui import main_window
from ionm_station.gui.main_window import MainWindow
from ionm_station.profiles import load_profile
from ionm_station.session import Session, build_source, montage_for


def make_session(seconds: float | None = None, rate_hz: float = 2000.0, realtime: bool = True,
                 scenario: str | None = None) -> Session:
    """The simulated amplifier (lumbar montage) at ``rate_hz``; ``seconds`` limits the run."""
    profile = dataclasses.replace(load_profile("simulated"), sample_rate_hz=rate_hz)
    montage = montage_for(profile)
    source = build_source(profile, montage, scenario=scenario, realtime=realtime)
    limit = None if seconds is None else source.info.seconds_to_samples(seconds)
    return Session(source, montage, max_samples=limit)


class SounderStandIn(AlarmSounder):
    """An AlarmSounder with no output device, recording every priority it is handed."""

    instances: ClassVar[list[SounderStandIn]] = []

    def __init__(self, volume: float = 0.5, muted: bool = False) -> None:
        super().__init__(volume, muted, player=None)
        self._play = None  # whatever this machine has: no sound from tests
        self.notice = "audio off: no output device (test)"
        self.priorities: list[str | None] = []
        self.closed = False
        SounderStandIn.instances.append(self)

    def set_priority(self, priority: str | None) -> None:
        self.priorities.append(priority)
        super().set_priority(priority)

    def close(self) -> None:
        self.closed = True
        super().close()


class NullSounder(AlarmSounder):
    """An AlarmSounder on its own null audio output: alarm tones and EMG audio go through the
    real callback and are kept (``output.rendered()``), nothing reaches a sound card."""

    instances: ClassVar[list[NullSounder]] = []

    def __init__(self, volume: float = 0.5, muted: bool = False) -> None:
        super().__init__(volume, muted, output=AudioOutput("null"))
        self._owns_output = True  # closed with the sounder
        NullSounder.instances.append(self)


@contextmanager
def live_window(qtbot, folder: Path) -> Iterator[MainWindow]:  # noqa: ANN001 (pytest-qt)
    """A 1600×1000 window over a running real-time session (2 kHz simulator, quiet case),
    monitoring and drawing, its sound going to a :class:`SounderStandIn`; closed and stopped
    afterwards."""
    session = make_session(scenario="quiet")
    window = MainWindow(session, folder / "gui.json", sounder=SounderStandIn(),
                        recordings_dir=folder / "rec")
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    session.start()
    window.show()
    try:
        qtbot.waitUntil(lambda: window.state.monitoring and window.traces.frames > 2,
                        timeout=5000)
        yield window
    finally:
        window.close()
        session.stop()


def a_train(session: Session, key: str, at_s: float, seconds: float,
            peak_uv: float = 180.0) -> SimpleNamespace:
    """A detected A-train on the first channel of root-side ``key`` (``offset`` inclusive)."""
    root, side = key.split("-")
    ch = session.montage.channels_of(root, side)[0]
    fs = session.info.sample_rate_hz
    return SimpleNamespace(channel=ch, kind="train", train_type="A", onset=int(at_s * fs),
                           offset=int((at_s + seconds) * fs) - 1, peak_uv=peak_uv)


def detect(session: Session, now_s: float, events: list[SimpleNamespace]) -> None:
    """Hand detections to the processing thread's alarm engine (as its chain would) at
    ``now_s``; the next snapshot, and so ``session.state()``, shows them."""
    session.processing.alarms.update(int(now_s * session.info.sample_rate_hz), events=events)


class Fault:
    """Makes ``obj.name`` raise on calls ``at`` … ``at + times - 1``; ``fired_at`` is when the
    first one raised (monotonic s). ``heal()`` puts the original back."""

    def __init__(self, obj: object, name: str, at: int = 1, times: int = 1,
                 error: Exception | None = None) -> None:
        self.obj, self.name = obj, name
        self.original = getattr(obj, name)
        self.at, self.times = at, times
        self.error = error or RuntimeError("injected fault")
        self.calls = 0
        self.fired_at: float | None = None
        setattr(obj, name, self)

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.at <= self.calls < self.at + self.times:
            self.fired_at = self.fired_at or time.monotonic()
            raise self.error
        return self.original(*args, **kwargs)

    def heal(self) -> None:
        """Undo the injection."""
        setattr(self.obj, self.name, self.original)


def hold_at(session: Session, seconds: float) -> None:
    """Make a simulator that is not real time deliver nothing after ``seconds`` of signal: the
    session runs on, monitored and caught up, showing that moment (for screenshots)."""
    source = session.source
    stop = source.info.seconds_to_samples(seconds)
    read = source.read

    def held() -> object:
        if source.counters.samples >= stop:
            time.sleep(0.005)
            return None
        return read()

    source.read = held  # type: ignore[method-assign]


def run_to(session: Session, seconds: float, timeout_s: float = 120.0) -> None:
    """Start ``session`` held at ``seconds`` (:func:`hold_at`) and wait until processing has
    taken in everything."""
    hold_at(session, seconds)
    session.start()
    stop = session.info.seconds_to_samples(seconds)
    deadline = time.monotonic() + timeout_s
    while session.state().processing.index < stop:
        assert time.monotonic() < deadline, "processing did not catch up"
        time.sleep(0.01)


def hunt_session(seconds: float, rate_hz: float = 2000.0, hunts: tuple[str, ...] = ("L5-R",),
                 keep_running: bool = False) -> Session:
    """The pedicle-screw scenario run (not real time) for ``seconds`` and until the queued
    hunts are done (how much signal a hunt takes depends on thread timing); then stopped, or
    with ``keep_running`` held at ``seconds`` (:func:`hold_at`), monitored."""
    session = make_session(None if keep_running else seconds + 60, rate_hz, realtime=False,
                           scenario="pedicle_screws")
    if keep_running:
        hold_at(session, seconds)
    for key in hunts:
        session.hunt(*key.split("-"))
    session.start()
    assert session.wait_until(session.info.seconds_to_samples(seconds), 120)
    screws = session.triggered_data.screw_log.screws
    deadline = time.monotonic() + 60
    while len(screws) < len(hunts) and time.monotonic() < deadline:
        time.sleep(0.01)
    if not keep_running:
        session.stop()
    assert len(screws) == len(hunts)
    return session


def run_opens(monkeypatch, tmp_path: Path, window: type, sounder: type) -> Path:  # noqa: ANN001
    """Make ``ionm-station run`` open ``window`` (a MainWindow subclass with a ``last`` class
    attribute, reset here) with ``sounder`` as its alarm sounder, its GUI settings in
    ``tmp_path``; returns ``tmp_path``."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(gui_app, "MainWindow", window)
    monkeypatch.setattr(window, "last", None)
    monkeypatch.setattr(main_window, "AlarmSounder", sounder)
    return tmp_path
