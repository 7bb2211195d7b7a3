"""The DSP thread: raw ring → band-pass → filtered ring, with its own ring cursor.

Chunk in, chunk out: the stage keeps the filter state between reads, so the filtered stream
equals filtering the whole record at once. Gaps (NaN rows) pass through as NaN.
"""

from __future__ import annotations

import threading

from ionm_station.dsp.filters import BandpassFilter
from ionm_station.ring import RingBuffer
from ionm_station.stream import StreamInfo

#: How long the thread sleeps when no new samples are waiting (s).
IDLE_S = 0.002


class DspWorker:
    """Filters everything published in ``raw`` into ``filtered`` on its own thread.

    Args:
        raw: ring the acquisition thread writes.
        filtered: ring this stage writes (same capacity and channels).
        info: stream description (rate for the filter design).
        low_hz, high_hz: band-pass edges (Hz); free-run defaults 10 Hz–3 kHz.
    """

    def __init__(self, raw: RingBuffer, filtered: RingBuffer, info: StreamInfo,
                 low_hz: float = 10.0, high_hz: float = 3000.0) -> None:
        self.raw = raw
        self.filtered = filtered
        self.reader = raw.reader(start=0)
        self.bandpass = BandpassFilter(info.n_channels, info.sample_rate_hz, low_hz, high_hz)
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dsp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain: bool = True, timeout_s: float = 5.0) -> None:
        """End the thread; with ``drain`` it first processes everything already published."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if drain and self.error is None:
            self.step()

    def step(self) -> int:
        """Process whatever is waiting; returns the samples processed."""
        got = self.reader.read()
        if got.lost:
            # a hole for this stage: keep the filtered ring on the sample clock, restart the filter
            self.filtered.write_nan(got.lost)
            self.bandpass.reset()
        if len(got.data):
            self.filtered.write(self.bandpass.process(got.data))
        return len(got.data)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.step() == 0:
                    self._stop.wait(IDLE_S)
        except Exception as exc:  # report, never kill the process
            self.error = f"dsp: {type(exc).__name__}: {exc}"
