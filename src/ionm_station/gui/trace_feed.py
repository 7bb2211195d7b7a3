"""Where the trace view takes its samples: the clean ring, or the raw ring band-passed here.

While processing runs, the traces show the session's clean ring (band-passed, mains- and
ECG-free, artifacts blanked). While processing is down the clean ring stops growing; a frozen
picture would look like a quiet patient. The feed then reads the raw ring instead and
band-passes it itself (:data:`RAW_LOW_HZ` to min(:data:`RAW_HIGH_HZ`, 0.45 × rate), the
streaming filter of :mod:`ionm_station.dsp.filters`, state carried between reads), continuing
at the sample index the view had reached; when processing is back it returns to the clean
ring at the index reached. Both rings run on one sample clock, so the view's column buffer
keeps its keys across a switch. Nothing else of the chain (mains, ECG, artifact blanking,
detection) runs here: the view says so in its banner.
"""

from __future__ import annotations

from ionm_station.dsp.filters import BandpassFilter
from ionm_station.ring import ReadResult, RingBuffer

#: Band of the raw fallback (Hz): high edge at most RAW_HIGH_OF_RATE × the sample rate.
RAW_LOW_HZ, RAW_HIGH_HZ, RAW_HIGH_OF_RATE = 10.0, 3000.0, 0.45


def raw_band_hz(sample_rate_hz: float) -> tuple[float, float]:
    """(low, high) band-pass edges (Hz) of the raw fallback at ``sample_rate_hz``."""
    return RAW_LOW_HZ, min(RAW_HIGH_HZ, RAW_HIGH_OF_RATE * sample_rate_hz)


class TraceFeed:
    """A reader over the clean ring, switchable to the band-passed raw ring.

    Args:
        clean: the session's clean ring.
        raw: the session's raw ring (same channels and clock).
        sample_rate_hz: rate of both rings (Hz).

    Attributes:
        raw_mode: True while reading the raw ring.
    """

    def __init__(self, clean: RingBuffer, raw: RingBuffer, sample_rate_hz: float) -> None:
        self._clean = clean
        self._raw = raw
        self._fs = float(sample_rate_hz)
        self.raw_mode = False
        self._reader = clean.reader()
        self._filter: BandpassFilter | None = None
        self.overrun_samples = 0  # samples lost because the view fell a ring behind

    @property
    def ring(self) -> RingBuffer:
        """The ring read now."""
        return self._raw if self.raw_mode else self._clean

    def set_raw(self, raw: bool, at: int) -> None:
        """Read the raw (True) or clean ring from absolute index ``at`` on (the sample after the
        newest one the view holds; the oldest one the ring still has, if older)."""
        if raw == self.raw_mode:
            return
        self.raw_mode = raw
        self._filter = self._new_filter() if raw else None
        ring = self.ring
        self._reader = ring.reader(start=max(at, ring.published - ring.capacity, 0))

    def read(self) -> ReadResult:
        """Everything new since the last read (band-passed in raw mode)."""
        got = self._reader.read()
        self.overrun_samples += got.lost
        if self._filter is None or not got.n_samples:
            return got
        if got.lost:
            self._filter.reset()  # a lapped reader: do not filter across the hole
        return ReadResult(got.start, self._filter.process(got.data), got.lost)

    def latest(self, n: int) -> ReadResult:
        """The newest ``n`` samples of the ring read now (raw: band-passed on their own)."""
        got = self.ring.latest(n)
        if not self.raw_mode or not got.n_samples:
            return got
        return ReadResult(got.start, self._new_filter().process(got.data), got.lost)

    def restart(self, n: int) -> ReadResult:
        """The newest ``n`` samples (as :meth:`latest`); reading goes on after them, the raw
        filter carrying its state from them."""
        got = self.ring.latest(n)
        self._reader = self.ring.reader(start=got.stop)
        if not self.raw_mode or not got.n_samples:
            return got
        self._filter = self._new_filter()
        return ReadResult(got.start, self._filter.process(got.data), got.lost)

    def _new_filter(self) -> BandpassFilter:
        low, high = raw_band_hz(self._fs)
        return BandpassFilter(self.ring.n_channels, self._fs, low, high)
