"""The free-run EMG chain: raw µV in, clean µV, artifact spans and detected events out.

    raw ─┬─► band-pass ─► mains canceller ─► ECG canceller ─► clean (delayed by ``delay``)
         │                                                        │
         └─► artifact detector ──── spans ─── blank mask ──────► event detector ─► events

Chunk in, chunk out, with every stage's state carried, so a record processed in any chunking
gives the same clean signal, spans and events as processing it whole. The clean stream lags
the raw stream by ``delay`` samples (the ECG canceller needs to see a whole beat); its rows
carry absolute sample indices like everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ionm_station.detect.events import DetectedEvent, EmgEventDetector
from ionm_station.dsp.artifacts import ArtifactDetector, ArtifactSpan
from ionm_station.dsp.ecg import EcgCanceller
from ionm_station.dsp.filters import BandpassFilter
from ionm_station.dsp.mains import MainsCanceller
from ionm_station.events import Event
from ionm_station.montage import Montage


#: Artifact kinds after which the clean output holds NaN (no usable signal), not samples.
SIGNAL_LOST_KINDS = ("cautery", "saturation", "lead_off")
#: Raw samples at or beyond this fraction of the input range count as railed (lead-off, cautery).
RAIL_FRACTION = 0.98
#: After a railed raw sample, the mains canceller does not learn from that channel for this long
#: (s): the band-passed signal is the filter's decay from the rail (no mains in it), and its
#: smooth tail would otherwise teach a zero amplitude and a tiny noise floor that then slows
#: re-learning for seconds once the lead is back.
RAIL_HOLD_S = 0.5


@dataclass(frozen=True)
class ChainSettings:
    """User settings of the free-run chain.

    Attributes:
        low_hz, high_hz: band-pass edges (Hz); high is clamped below Nyquist.
        mains_hz: 50 or 60, or None to detect it.
        remove_ecg: subtract ECG templates (off: band-pass and mains only).
    """

    low_hz: float = 10.0
    high_hz: float = 3000.0
    mains_hz: float | None = None
    remove_ecg: bool = True


@dataclass
class ChainOutput:
    """What one call of :meth:`FreeRunChain.process` produced.

    Attributes:
        start: absolute index of ``clean[0]`` (lags the raw chunk by the chain delay).
        clean: filtered, mains- and ECG-free µV, (n, n_channels); NaN where not yet defined
            and where cautery, saturation or lead-off left no usable signal.
        events: events that ended.
        artifacts: artifact spans that closed.
        ongoing: neurotonic A-trains still going on (provisional, for alarms; not counted).
    """

    start: int
    clean: np.ndarray
    events: list[DetectedEvent] = field(default_factory=list)
    artifacts: list[ArtifactSpan] = field(default_factory=list)
    ongoing: list[DetectedEvent] = field(default_factory=list)


class FreeRunChain:
    """Band-pass, mains and ECG removal, artifact blanking and event detection for one stream.

    Args:
        montage: channels (thresholds for ``above_threshold``), one per column.
        sample_rate_hz: sampling rate (Hz).
        range_uv: amplifier input range ± µV (saturation detection).
        settings: filter and artifact-removal settings.
    """

    def __init__(self, montage: Montage, sample_rate_hz: float, range_uv: float,
                 settings: ChainSettings = ChainSettings()) -> None:
        n = len(montage.channels)
        self.montage = montage
        self.sample_rate_hz = sample_rate_hz
        self.settings = settings
        self.bandpass = BandpassFilter(n, sample_rate_hz, settings.low_hz, settings.high_hz)
        self.mains = MainsCanceller(n, sample_rate_hz, mains_hz=settings.mains_hz)
        self.ecg = EcgCanceller(n, sample_rate_hz) if settings.remove_ecg else None
        self.artifacts = ArtifactDetector(n, sample_rate_hz, range_uv)
        self.detector = EmgEventDetector(montage, sample_rate_hz)
        self.delay = self.mains.delay + (self.ecg.delay if self.ecg else 0)
        self._rail_uv = RAIL_FRACTION * range_uv
        self._rail_hold = max(1, round(RAIL_HOLD_S * sample_rate_hz))
        self._since_rail = np.full(n, np.iinfo(np.int64).max // 2)  # samples since last railed
        self._clean_next = -self.delay  # absolute index of the next clean row

    def process(self, raw: np.ndarray, start: int, source_events: list[Event] = ()) -> ChainOutput:
        """Process the next consecutive raw chunk (n, n_channels) µV starting at index ``start``.

        ``source_events`` are what the source reported in this chunk: stimuli are blanked
        (artifact and evoked response are not free-run activity), flagged lead-off is blanked,
        and a replay seek restarts the band-pass at the splice.
        """
        seeks = sorted(e.start for e in source_events if e.kind == "replay_seek" and e.start > start)
        if seeks and seeks[0] < start + len(raw):
            # a replay jumped here: restart the band-pass at steady state on the new signal
            # rather than ringing across the splice
            cut = seeks[0] - start
            first = self.process(raw[:cut], start, [e for e in source_events if e.start < seeks[0]])
            self.bandpass.reset()
            rest = self.process(raw[cut:], seeks[0], [e for e in source_events if e.start >= seeks[0]])
            return ChainOutput(first.start, np.concatenate([first.clean, rest.clean]),
                               first.events + rest.events, first.artifacts + rest.artifacts,
                               rest.ongoing)
        for e in source_events:
            if e.kind == "stimulus":
                self.artifacts.mark_stimulus(e.start)
            elif e.kind == "lead_off" and e.stop is not None:
                for ch in e.channels:
                    self.artifacts.mark_lead_off(e.start, e.stop, ch)
        spans = self.artifacts.process(raw, start)
        y = self.mains.process(self.bandpass.process(raw), self._railed_hold(raw))
        if self.ecg is not None:
            y = self.ecg.process(y)
        return self._detect(y, spans)

    def flush(self) -> ChainOutput:
        """End of record: push the delayed tail through and close every open span and event."""
        y = self.mains.flush()
        if self.ecg is not None:
            y = np.concatenate([self.ecg.process(y), self.ecg.flush()]) if len(y) else self.ecg.flush()
        spans = self.artifacts.flush()
        out = self._detect(y, spans)
        out.events.extend(self.detector.flush())
        return out

    def _railed_hold(self, raw: np.ndarray) -> np.ndarray | None:
        """(n, channels) bool: within ``RAIL_HOLD_S`` after a railed raw sample (None: none)."""
        n = len(raw)
        railed = np.abs(raw) >= self._rail_uv  # NaN compares False (the canceller skips NaN)
        any_railed = railed.any(axis=0)
        if not any_railed.any() and (self._since_rail >= self._rail_hold).all():
            self._since_rail = np.minimum(self._since_rail + n, np.iinfo(np.int64).max // 2)
            return None
        steps = np.arange(n)[:, None]
        last = np.maximum.accumulate(np.where(railed, steps, -self._since_rail[None, :]), axis=0)
        since = steps - last
        self._since_rail = since[-1] + 1 if n else self._since_rail
        return since < self._rail_hold

    def _detect(self, clean: np.ndarray, spans: list[ArtifactSpan]) -> ChainOutput:
        start = self._clean_next
        self._clean_next += len(clean)
        events: list[DetectedEvent] = []
        defined = max(0, -start)  # rows before index 0 only exist to fill the delay
        if len(clean) > defined:
            first = start + defined
            body = clean[defined:]
            blank = self.artifacts.blank_mask(first, len(body))
            if self.ecg is not None:  # QRS not yet subtracted (templates still being learnt)
                blank |= self.ecg.unsubtracted_mask(first, len(body))
            events = self.detector.process(body, first, blank)
            # what is shown and exported: no signal where cautery, rails or lead-off left none
            # (stimulus blanking is for detection only: the evoked response stays visible)
            body[self.artifacts.blank_mask(first, len(body), SIGNAL_LOST_KINDS)] = np.nan
        return ChainOutput(start, clean, events, spans, self.detector.ongoing_a_trains())

    def train_time_s(self) -> dict[str, float]:
        """Summed A-train duration (s) per channel label so far."""
        return self.detector.train_time_s()
