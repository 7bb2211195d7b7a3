"""Any BrainFlow board as a :class:`~ionm_station.sources.base.Source`.

The board's descriptor (``BoardShim.get_board_descr``) says which rows hold what: our channel i
is the board's i-th EMG row (or EXG/EEG row if the board lists no EMG rows), multiplied by the
profile's ``scale_uv`` to give µV (OpenBCI boards already report µV: 1.0; ANT Neuro eego reports
volts: 1e6). :meth:`BrainFlowSource.read` drains the board's ring buffer.

Drops: the descriptor's package-number row counts samples. A step of k > 1 between consecutive
samples means k − 1 samples were lost: the stream is split there and the next piece starts
k − 1 samples later (counted in ``counters.dropped``), so acquisition writes a NaN gap. Steps
≤ 0 are a wrap of the counter at :data:`PACKAGE_WRAP` (OpenBCI and the synthetic board count
0–255). Boards without a package row are trusted to be gap-free.

Silence and faults: BrainFlow delivers every few ms; no samples for ``lost_after_ms`` (profile,
default 500 ms) turns ``state`` to ``"lost"`` and queues a ``signal_lost`` event at the first
missing sample. A BrainFlowError in :meth:`BrainFlowSource.read` does the same and raises
DeviceError naming the board; the acquisition then calls :meth:`BrainFlowSource.recover`, which
releases the session and prepares and starts it again (``"reconnecting"``). When samples come
again the clock advances by the samples lost meanwhile — from host wall time (seconds since the
last samples × rate, minus the samples that came), made exact by the package counter when the
session was not restarted (:func:`~ionm_station.sources.base.lost_in_interruption`) — counted
as dropped; a ``signal_restored`` event marks the first new sample and ``state`` is
``"streaming"`` again.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
from brainflow.board_shim import BoardShim, BrainFlowError, BrainFlowInputParams, BrainFlowPresets

from ionm_station.errors import DeviceError
from ionm_station.events import Event
from ionm_station.profiles import BrainFlowSettings
from ionm_station.sources.base import Source, SourceCounters, lost_in_interruption
from ionm_station.stream import Chunk, StreamInfo

#: The package counter wraps after this many values (0 … PACKAGE_WRAP − 1).
PACKAGE_WRAP = 256
#: BrainFlow's own ring buffer: at least this many seconds of samples.
BOARD_BUFFER_S = 60.0
#: How long :meth:`BrainFlowSource.read` waits for data before returning None (s).
READ_WAIT_S = 0.02
PRESETS = {"default": BrainFlowPresets.DEFAULT_PRESET,
           "auxiliary": BrainFlowPresets.AUXILIARY_PRESET,
           "ancillary": BrainFlowPresets.ANCILLARY_PRESET}


def package_steps(previous: int | None, packages: np.ndarray) -> np.ndarray:
    """Samples lost before each sample, from the package counter (wrapping at 256).

    Args:
        previous: counter value of the sample before ``packages[0]`` (None: no reference).
        packages: counter values of consecutive received samples.

    Returns:
        int64 array, same length: 0 where the counter advanced by one, k − 1 where it advanced
        by k.
    """
    values = packages.astype(np.int64)
    reference = values[:1] - 1 if previous is None else np.array([previous], np.int64)
    step = np.diff(np.concatenate([reference, values]))
    step[step <= 0] += PACKAGE_WRAP
    return step - 1


class BrainFlowSource(Source):
    """Source for the BrainFlow board named by a profile's ``[brainflow]`` table (live; no
    stimulator; no threads of its own — BrainFlow runs the board's).

    Args:
        settings: board id, connection parameters, preset, µV scale and silence limit.
        labels: one label per channel (the montage's); the board needs at least as many rows.
        sample_rate_hz: the profile's rate; must equal the board's (Hz).
        range_uv: amplifier input range (± µV).
    """

    def __init__(self, settings: BrainFlowSettings, labels: Sequence[str], sample_rate_hz: float,
                 range_uv: float = 5000.0) -> None:
        BoardShim.disable_board_logger()
        self.settings = settings
        self.counters = SourceCounters()
        where = settings.serial_port or settings.ip_address or "no port"
        self._name = f"BrainFlow board id {settings.board_id} ({where})"
        if settings.preset not in PRESETS:
            raise DeviceError(f"{self._name}: unknown preset {settings.preset!r} "
                              f"(expected one of {', '.join(PRESETS)})")
        self._preset = PRESETS[settings.preset]
        try:
            descr = BoardShim.get_board_descr(settings.board_id, self._preset)
        except BrainFlowError as exc:
            raise DeviceError(f"{self._name}: unknown to BrainFlow: {exc}") from None
        self._name = f"BrainFlow {descr.get('name', 'board')} (id {settings.board_id}, {where})"
        rate = float(descr["sampling_rate"])
        if rate != float(sample_rate_hz):
            raise DeviceError(f"{self._name} streams {rate:g} Hz but the profile says "
                              f"{sample_rate_hz:g} Hz")
        rows = descr.get("emg_channels") or descr.get("exg_channels") or descr.get("eeg_channels")
        if not rows or len(rows) < len(labels):
            raise DeviceError(f"{self._name} has {len(rows or [])} EMG/EXG rows, "
                              f"the profile needs {len(labels)}")
        self._rows = list(rows[:len(labels)])
        self._package_row: int | None = descr.get("package_num_channel")
        self.info = StreamInfo(rate, tuple(labels), float(range_uv), source=self._name)
        self._board: BoardShim | None = None
        self._state = "closed"
        self._pending: deque[Chunk] = deque()
        self._next = 0
        self._last_package: int | None = None
        self._last_data_s = 0.0
        self._resuming = False  # the next samples follow an interruption

    @property
    def state(self) -> str:
        """``closed``, ``streaming``, ``lost`` (silent longer than ``lost_after_ms``, or a read
        failed) or ``reconnecting`` (inside :meth:`recover`)."""
        return self._state

    @property
    def live(self) -> bool:
        return True

    def open(self) -> None:
        """Prepare the session and start streaming; a missing or busy board → DeviceError."""
        self._board = self._start()
        self._state = "streaming"
        self._last_data_s = time.monotonic()

    def read(self) -> Chunk | None:
        """Everything the board buffered since the last call (split at package gaps), or None
        when nothing arrived within :data:`READ_WAIT_S`. A board error → DeviceError naming the
        board (call :meth:`recover`)."""
        if not self._pending:
            board = self._board
            if board is None:
                raise DeviceError(f"{self._name}: no session (not opened, or recover() could "
                                  "not restart it)")
            try:
                if board.get_board_data_count(self._preset) == 0:
                    time.sleep(READ_WAIT_S)
                data = board.get_board_data(preset=self._preset)
            except BrainFlowError as exc:
                self._interrupt(f"read failed: {exc}")
                raise DeviceError(f"{self._name}: read failed: {exc}") from exc
            now = time.monotonic()
            if data.shape[1]:
                self._split(data, now)
            elif now - self._last_data_s > self.settings.lost_after_ms / 1000:
                self._interrupt(f"no data for {self.settings.lost_after_ms} ms")
        return self._pending.popleft() if self._pending else None

    def recover(self) -> None:
        """Release the session and prepare and start it again; DeviceError naming the board if
        it cannot (the state stays ``lost``)."""
        self._interrupt("board session restarted")
        self._state = "reconnecting"
        if self._board is not None:
            self._release(self._board)
            self._board = None
        try:
            self._board = self._start()
        except DeviceError:
            self._state = "lost"
            raise
        self._last_package = None  # a new session: the package counter is no reference
        self.counters.reconnects += 1

    def close(self) -> None:
        """Stop streaming and release the board. Idempotent."""
        if self._board is not None:
            self._release(self._board)
            self._board = None
        self._state = "closed"

    def _start(self) -> BoardShim:
        """A prepared, streaming board session; DeviceError naming the board if it cannot."""
        s = self.settings
        params = BrainFlowInputParams()
        params.serial_port, params.ip_address, params.ip_port = s.serial_port, s.ip_address, s.ip_port
        params.other_info, params.timeout = s.other_info, s.timeout_s
        board = BoardShim(s.board_id, params)
        try:
            board.prepare_session()
            board.start_stream(max(450_000, int(BOARD_BUFFER_S * self.info.sample_rate_hz)))
        except BrainFlowError as exc:
            self._release(board)
            raise DeviceError(f"{self._name}: cannot start: {exc}") from None
        return board

    def _interrupt(self, reason: str) -> None:
        """The stream stopped at the next sample: report it once."""
        if self._state == "streaming":
            self._state = "lost"
            self._resuming = True
            self._pending.append(Chunk(self._next, np.zeros((0, self.info.n_channels), np.float32),
                                       [Event("signal_lost", self._next, data={"reason": reason})],
                                       host_time_s=time.monotonic()))

    def _split(self, data: np.ndarray, now_s: float) -> None:
        """Queue the samples of ``data`` (rows × samples) as chunks, one per gap-free run."""
        values = (data[self._rows].T * self.settings.scale_uv).astype(np.float32)
        n = values.shape[0]
        reference = self._last_package
        if self._package_row is None:
            lost = np.zeros(n, np.int64)
        else:
            packages = np.rint(data[self._package_row]).astype(np.int64)
            lost = package_steps(reference, packages)
            self._last_package = int(packages[-1])
        events = []
        if self._resuming:
            lost[0] = self._resume(n, now_s, None if reference is None else int(lost[0]))
            events.append(Event("signal_restored", self._next + int(lost[0]),
                                data={"lost_samples": int(lost[0])}))
        self._last_data_s = now_s
        cuts = [0, *np.flatnonzero(lost[1:]) + 1, n]
        for a, b in itertools.pairwise(cuts):
            self._next += int(lost[a])
            self.counters.dropped += int(lost[a])
            self._pending.append(Chunk(self._next, values[a:b], events, host_time_s=now_s))
            events = []
            self._next += b - a
            self.counters.samples += b - a

    def _resume(self, n: int, now_s: float, counted: int | None) -> int:
        """End an interruption: samples lost before the ``n`` that just came (``counted``: what
        the package counter says, None when it is no reference)."""
        self._resuming = False
        self._state = "streaming"
        wall = round((now_s - self._last_data_s) * self.info.sample_rate_hz) - n
        return lost_in_interruption(wall, counted, PACKAGE_WRAP)

    @staticmethod
    def _release(board: BoardShim) -> None:
        try:
            if board.is_prepared():
                board.release_session()
        except BrainFlowError:
            pass
