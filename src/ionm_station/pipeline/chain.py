"""The free-run EMG chain: raw µV in, clean µV, artifact spans and detected events out.

    raw ─┬─► band-pass ─► mains ─► ECG canceller ─► common-mode look ─► clean (delayed by ``delay``)
         │                    │                          │                   │
         │              step detector ─ spans ─┐  spans ─┘                   │
         │                                     ▼                             ▼
         └─► artifact detector ── spans ──► blank mask ───────────────► event detector ─► events

Samples the source lost (NaN rows) pass the gap bridge first (``dsp/gaps.py``): gaps up to
10 ms are filled for the stages (NaN again in the clean output, blanked for detection), and
detection is blanked around longer ones while the stages restart.

Chunk in, chunk out, with every stage's state carried, so a record processed in any chunking
gives the same clean signal, spans and events as processing it whole. The clean stream lags
the raw stream by ``delay`` samples (the ECG canceller needs to see a whole beat, and the
second look for common-mode steps, on its output, the step's fit window); its rows
carry absolute sample indices like everything else. A chunk of any length is pushed through
the stages in pieces of at most :data:`PIECE_S`, so memory stays bounded.

Any sample rate from :data:`MIN_SAMPLE_RATE_HZ`: at :data:`FULL_CHAIN_MIN_HZ` and above every
stage runs (the band's upper edge is clamped to 0.9 × Nyquist); below it the chain is
*degraded* — ECG template subtraction needs the 1 ms alignment grid, so a 30 Hz high-pass
(Drake & Callaghan 2006) takes its place, and mains harmonics above 0.45 × the rate are not
cancelled (nor mains at all below 141 Hz, where 60 Hz no longer fits). :attr:`FreeRunChain.notes`
says what was changed, in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from ionm_station.detect.events import DetectedEvent, EmgEventDetector
from ionm_station.dsp.artifacts import SIGNAL_LOST_KINDS, ArtifactDetector, ArtifactSpan
from ionm_station.dsp.ecg import EcgCanceller, Highpass30
from ionm_station.dsp.filters import BandpassFilter
from ionm_station.dsp.gaps import GapBridge
from ionm_station.dsp.mains import (
    MAX_HARMONIC_OF_FS,
    NOMINAL_MAINS_HZ,
    MainsCanceller,
    harmonics_below,
    mains_fits,
    mains_min_rate_hz,
)
from ionm_station.dsp.pacing import PacingPulses
from ionm_station.dsp.rows import Rows
from ionm_station.dsp.steps import StepDetector
from ionm_station.events import Event
from ionm_station.montage import Montage

#: Raw samples at or beyond this fraction of the input range count as railed (lead-off, cautery).
RAIL_FRACTION = 0.98
#: After a railed raw sample, the mains canceller does not learn from that channel for this long
#: (s): the band-passed signal is the filter's decay from the rail (no mains in it), and its
#: smooth tail would otherwise teach a zero amplitude and a tiny noise floor that then slows
#: re-learning for seconds once the lead is back.
RAIL_HOLD_S = 0.5
#: Lowest sampling rate (Hz) the chain runs at: the detector's 40 Hz high-pass needs it.
MIN_SAMPLE_RATE_HZ = 100.0
#: From this rate (Hz) on, the chain is the full free-run chain (ECG template subtraction on its
#: 1 ms alignment grid, mains to the 7th harmonic, band to ≥ 450 Hz); below it is degraded.
FULL_CHAIN_MIN_HZ = 1000.0
#: Longest piece (s) pushed through the stages at once, whatever the chunk length.
PIECE_S = 1.0
#: … and through the step detector and the ECG canceller in turn: the step detector's refit on
#: earlier beats takes the R peaks the canceller has reported before each of its pieces, and
#: from this short a piece on every one it may use is there, whatever the chunking (see
#: StepDetector.beat_margin; with whole 1 s pieces a beat reported within the piece was missing
#: for an edge late in it, and a common-mode span on extra tuning seed 313 ended 6 samples
#: earlier than in 50 ms chunks).
STEPS_PIECE_S = 0.2


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
        clean: filtered, mains- and ECG-free µV, (n, n_channels), one row per raw row; NaN
            before the first raw sample and where cautery, saturation or lead-off left no usable
            signal.
        events: events that ended.
        artifacts: artifact spans that closed (the stream passed their stop).
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
        montage: channels, one per column.
        sample_rate_hz: sampling rate (Hz), at least :data:`MIN_SAMPLE_RATE_HZ`.
        range_uv: amplifier input range ± µV (saturation detection).
        settings: filter and artifact-removal settings.
        start: absolute index of the first raw sample it will see (a chain rebuilt mid-stream);
            the clean output starts ``delay`` rows earlier, with NaN rows before ``start``.
        thresholds_uv: float array, one event threshold (µV p-p) per channel, that the detector
            reads by reference for ``above_threshold`` (its owner may change it at any time);
            default: the montage's thresholds.

    Attributes:
        notes: what the chain changed because of the sampling rate, in plain words (empty when
            nothing was).
        degraded: the chain is not the full free-run chain (below :data:`FULL_CHAIN_MIN_HZ`):
            the station raises a LOW SAMPLE RATE technical advisory.
        delay: samples by which the clean output lags the raw input.
        report_ongoing: fill ``ChainOutput.ongoing`` (default); an offline analysis, which
            reads only finished events, sets it False and saves the provisional classification.
    """

    def __init__(self, montage: Montage, sample_rate_hz: float, range_uv: float,
                 settings: ChainSettings = ChainSettings(), start: int = 0,
                 thresholds_uv: np.ndarray | None = None) -> None:
        if not sample_rate_hz >= MIN_SAMPLE_RATE_HZ:
            raise ValueError(f"the free-run chain needs at least {MIN_SAMPLE_RATE_HZ:g} Hz, "
                             f"got {sample_rate_hz:g} Hz")
        n = len(montage.channels)
        fs = float(sample_rate_hz)
        self.montage = montage
        self.sample_rate_hz = fs
        self.start = start
        self.settings = settings
        self.degraded = fs < FULL_CHAIN_MIN_HZ
        self.bandpass = BandpassFilter(n, fs, settings.low_hz, settings.high_hz)
        self.mains = self._mains_canceller(settings.mains_hz)
        # ECG: template subtraction from 1 kHz, else the 30 Hz high-pass baseline
        full = settings.remove_ecg and not self.degraded
        self.ecg = EcgCanceller(n, fs) if full else None
        self.ecg_highpass = Highpass30(n, fs) if settings.remove_ecg and not full else None
        self.artifacts = ArtifactDetector(n, fs, range_uv, start=start)
        # pacemaker pulses taken out as lost samples (below FULL_CHAIN_MIN_HZ they are a
        # fraction of a sample)
        self.pacing = (PacingPulses(n, fs, settings.mains_hz, start) if not self.degraded
                       else None)
        # (the heartbeat before a long gap is blanked: the canceller's delay leaves time)
        self.gaps = GapBridge(n, fs, start, blank_before=self.ecg is not None,
                              mains_hz=settings.mains_hz)
        if self.ecg and self.gaps.lead > self.ecg.delay:
            raise ValueError("a long gap is known too late to blank the heartbeat before it")
        # electrode pops and common-mode steps, found on the filtered stream ahead of the
        # detector by the ECG canceller's delay (without it they would come too late to blank)
        self.steps = StepDetector(n, fs, self.bandpass.sos, start) if self.ecg else None
        # … and ahead of the rows of the heartbeat fits a step spoils (EcgCanceller.note_steps)
        if self.steps and self.steps.latency + self.ecg.core_samples > self.ecg.delay:
            raise ValueError("steps are found too late to blank the heartbeat fits they spoil")
        self._steps_piece = max(1, round(STEPS_PIECE_S * fs))
        # every R peak a refit may use is reported by then (a beat not output late is reported
        # before its window's rows are output, within the canceller's delay)
        if self.steps and self._steps_piece + self.ecg.delay > self.steps.beat_margin:
            raise ValueError("the step detector would miss R peaks its refit may use")
        # common-mode steps that a heartbeat under them hid from the first look, found again
        # on the canceller's output (see _residual_common_mode): its rows wait for them here
        ecg_delay = self.ecg.delay if self.ecg else 0
        self.residual_steps = self._residual_step_detector(start - ecg_delay)
        held = self.residual_steps.latency if self.residual_steps else 0
        self.delay = ecg_delay + held
        self._held = None
        if self.residual_steps:
            self._held = Rows(n, np.float64, start=start - self.delay, fill=np.nan)
            self._held.pad(held)  # (rows before the first sample, as the canceller's own)
        self._first_spans: list[ArtifactSpan] = []  # the first look's, not yet passed
        self.detector = EmgEventDetector(montage, fs, thresholds_uv=thresholds_uv)
        self.thresholds_uv = self.detector.thresholds_uv
        self._rail_uv = RAIL_FRACTION * range_uv
        self._rail_hold = max(1, round(RAIL_HOLD_S * fs))
        self._since_rail = np.full(n, np.iinfo(np.int64).max // 2)  # samples since last railed
        self._piece = max(1, round(PIECE_S * fs))
        self._raw_next = start               # absolute index of the next raw row
        self._mains_from = start  # the mains canceller's first row
        self._pacing_knows_mains = settings.mains_hz is not None  # (else it is being detected)
        self._clean_next = start - self.delay  # absolute index of the next clean row
        self.notes = self._notes()
        self.report_ongoing = True

    # --- settings -----------------------------------------------------------------------------

    def set_band(self, low_hz: float, high_hz: float) -> tuple[float, float]:
        """Change the band-pass edges (Hz); raises ValueError on edges that do not make a band
        below Nyquist. The filter restarts at steady state on the next sample. Returns the edges
        in force (the upper one clamped to 0.9 × Nyquist)."""
        bandpass = BandpassFilter(len(self.montage.channels), self.sample_rate_hz, low_hz, high_hz)
        self.bandpass = bandpass
        if self.steps is not None:  # its templates are the band-pass's step responses
            self.steps = StepDetector(len(self.montage.channels), self.sample_rate_hz,
                                      bandpass.sos, self._raw_next)
            # from the first row filtered with the new band (its templates are that band's)
            self.residual_steps = self._residual_step_detector(self._raw_next)
        self.settings = replace(self.settings, low_hz=low_hz, high_hz=high_hz)
        self.notes = self._notes()
        return bandpass.low_hz, bandpass.high_hz

    def set_mains(self, mains_hz: float | None) -> None:
        """Set the mains frequency: 50 or 60 Hz, or None to detect it; the canceller restarts
        (and is off, with a note, where the sampling rate is too low for it)."""
        if mains_hz is not None and mains_hz not in NOMINAL_MAINS_HZ:
            raise ValueError(f"mains must be 50 or 60 Hz or None (detect), got {mains_hz!r}")
        self.mains = self._mains_canceller(mains_hz)
        self._mains_from = self._raw_next  # (the canceller's first row)
        self._pacing_knows_mains = mains_hz is not None
        self.gaps.set_mains(mains_hz)
        if self.pacing is not None:  # (its baseline takes mains out a period back)
            self.pacing.set_mains(mains_hz)
        self.settings = replace(self.settings, mains_hz=mains_hz)
        self.notes = self._notes()

    def _residual_step_detector(self, start: int) -> StepDetector | None:
        """The second look for common-mode steps, on the canceller's output from absolute
        ``start`` (None without the canceller)."""
        if self.ecg is None:
            return None
        return StepDetector(len(self.montage.channels), self.sample_rate_hz, self.bandpass.sos,
                            start, common_mode_only=True)

    def _mains_canceller(self, mains_hz: float | None) -> MainsCanceller | None:
        n = len(self.montage.channels)
        if not mains_fits(self.sample_rate_hz, mains_hz):
            return None
        return MainsCanceller(n, self.sample_rate_hz, mains_hz=mains_hz)

    def _notes(self) -> tuple[str, ...]:
        """What the sampling rate changed, in plain words."""
        fs, s = self.sample_rate_hz, self.settings
        notes = []
        if self.bandpass.high_hz < s.high_hz:
            notes.append(f"{fs:g} Hz: band {self.bandpass.low_hz:g}–{self.bandpass.high_hz:g} Hz "
                         f"(upper edge at 0.9 × Nyquist)")
        if self.mains is None:
            notes.append(f"mains removal off (needs more than {mains_min_rate_hz(s.mains_hz):g} Hz)")
        elif harmonics_below(fs, s.mains_hz) < self.mains.n_harmonics_max:
            notes.append(f"mains harmonics up to {MAX_HARMONIC_OF_FS * fs:g} Hz only")
        if self.ecg_highpass is not None:
            notes.append(f"ECG removal by 30 Hz high-pass, not template subtraction "
                         f"(needs {FULL_CHAIN_MIN_HZ:g} Hz)")
        return tuple(notes)

    # --- streaming ----------------------------------------------------------------------------

    def process(self, raw: np.ndarray, start: int, source_events: list[Event] = ()) -> ChainOutput:
        """Process the next consecutive raw chunk (n, n_channels) µV starting at index ``start``.

        ``source_events`` are what the source reported in this chunk: stimuli are blanked
        (artifact and evoked response are not free-run activity); a ``lead_off`` with ``stop``
        None opens a lead-off on its channels (all if none are named) at its start, and one
        with the same start and ``stop`` set closes it (alone: a whole lead-off); a replay
        seek restarts the band-pass at the splice.
        """
        raw = np.asarray(raw)
        n_ch = len(self.montage.channels)
        if raw.ndim != 2 or raw.shape[1] != n_ch:
            raise ValueError(f"expected a (n, {n_ch}) chunk, got shape {raw.shape}")
        if start != self._raw_next:
            raise ValueError(f"chunk starts at {start}, expected {self._raw_next}")
        stop = start + len(raw)
        self._raw_next = stop
        self._mark(source_events)
        seeks = {e.start for e in source_events
                 if e.kind == "replay_seek" and start <= e.start < stop}
        cuts = sorted(seeks | set(range(start, stop, self._piece)) | {stop})
        out = ChainOutput(self._clean_next, np.empty(raw.shape))
        for a, b in pairwise(cuts):
            if a in seeks:  # a replay jumped here: no ringing across the splice
                self.bandpass.reset()
                self.gaps.splice()
                if self.pacing is not None:
                    self.pacing.splice()
            part = self._run(raw[a - start:b - start], a)
            out.clean[part.start - out.start:part.start - out.start + len(part.clean)] = part.clean
            out.events += part.events
            out.artifacts += part.artifacts
        out.ongoing = self.detector.ongoing_a_trains() if self.report_ongoing else []
        return out

    def flush(self) -> ChainOutput:
        """End of record: push the delayed tail through and close every open span and event."""
        if self.ecg is not None:
            y = self._residual_common_mode(self.ecg.flush(), last=True)
        else:
            y = np.zeros((0, len(self.montage.channels)))
        out = self._detect(y, self.artifacts.flush())
        out.events.extend(self.detector.flush())
        out.ongoing = self.detector.ongoing_a_trains() if self.report_ongoing else []
        return out

    def open_spans(self) -> list[ArtifactSpan]:
        """Artifact spans going on at the raw stream position (``stop`` None): the level state
        to read every block. Each is later reported closed (``ChainOutput.artifacts``) with the
        same start and channels (see :mod:`ionm_station.dsp.artifacts`)."""
        return self.artifacts.open_spans()

    def train_time_s(self) -> dict[str, float]:
        """Summed A-train duration (s) per channel label so far."""
        return self.detector.train_time_s()

    def _mark(self, source_events: list[Event]) -> None:
        """Hand the source's stimuli and lead-offs to the artifact detector."""
        n_ch = len(self.montage.channels)
        for e in source_events:
            if e.kind == "stimulus":
                self.artifacts.mark_stimulus(e.start)
                if self.pacing is not None:
                    self.pacing.mark_stimulus(e.start)
            elif e.kind == "lead_off":
                for ch in e.channels or range(n_ch):
                    if 0 <= ch < n_ch:
                        self.artifacts.mark_lead_off(e.start, e.stop, ch)

    def _run(self, raw: np.ndarray, start: int) -> ChainOutput:
        """One piece through every stage."""
        spans = self.artifacts.process(raw, start)
        with np.errstate(invalid="ignore"):
            railed = np.abs(raw) >= self._rail_uv  # NaN compares False (the stages skip NaN)
        paced = raw if self.pacing is None else self.pacing.process(raw)
        pulses = None  # samples a pacemaker pulse was taken out of
        if paced is not raw:
            pulses = np.isnan(paced) & ~np.isnan(raw)
        y = self.bandpass.process(self.gaps.process(paced))
        if self.mains is not None:
            y = self.mains.process(y, self._railed_hold(railed))
            if (self.pacing is not None and not self._pacing_knows_mains
                    and self.mains.decided_at is not None):
                # mains detected: the pacing stage's baseline takes it out a period back, not
                # 0.1 s back (that baseline ended wide pulses in their recharge: seed 9414) —
                # from a row a piece after the decision's, whatever the chunking
                self._pacing_knows_mains = True
                self.pacing.set_mains(self.mains.detected_hz,
                                      self._mains_from + self.mains.decided_at + self._piece)
        if self.ecg is not None:
            y = self._residual_common_mode(self._steps_and_ecg(y, railed, start, pulses))
        elif self.ecg_highpass is not None:
            y = self.ecg_highpass.process(y)
        return self._detect(y, spans)

    def _steps_and_ecg(self, y: np.ndarray, railed: np.ndarray, start: int,
                       pulses: np.ndarray | None = None) -> np.ndarray:
        """The mains-free piece ``y`` (µV) from absolute ``start`` through the step detector
        (its spans marked, the R peaks known so far handed to it, its steps noted by the ECG
        canceller) and the canceller, in turns of at most STEPS_PIECE_S; returns the
        canceller's output (µV). The samples the gap bridge filled are lost to the canceller's
        QRS detection, except those of pacemaker ``pulses`` (n, channels) bool: a ventricular pulse
        comes at its QRS's onset, and its lost blocks hid the beat (extra seed 9414, pulses
        30 ms before the R peak: its QRS left at every other beat)."""
        out = []
        for a in range(0, max(len(y), 1), self._steps_piece):
            b = a + self._steps_piece
            beats = [r + self.start for r in self.ecg.beats[-4:]]  # absolute
            for span in self.steps.process(y[a:b], start + a, beats):
                if self._explained(span, self.steps):
                    continue
                self.artifacts.mark_span(span)
                if span.kind == "common_mode":
                    self._first_spans.append(span)
            self.ecg.note_steps([(s.start - self.start, s.channels) for s in self.steps.stepped
                                 if not self._paced(s, self.steps)])
            for s in self.steps.stepped:  # (a pop's span ends where its tail is under the noise)
                if s.kind == "pop":  # from when any chunking has reported it
                    self.ecg.hold_out(s.channels[0], s.start - self.start + self.steps.latency,
                                      s.stop - self.start)
            lost = self.gaps.lost(start + a, len(y[a:b]))  # (bridged rows: no beat found there)
            if lost is not None and pulses is not None:
                lost = lost & ~pulses[a:b]
            out.append(self.ecg.process(y[a:b], railed[a:b], lost))
        return np.concatenate(out)

    def _explained(self, span: ArtifactSpan, steps: StepDetector) -> bool:
        """Whether the step of ``span`` (found by ``steps``) is explained by lost rows: the
        gap bridge's join or a pacemaker pulse (see :meth:`_paced`)."""
        return self.gaps.explains(span.start, span.channels, span.kind) or self._paced(span,
                                                                                    steps)

    def _paced(self, span: ArtifactSpan, steps: StepDetector) -> bool:
        """Whether the step of ``span`` (found by ``steps``) is a pacemaker pulse's edge or the
        step back after its lost rows were filled: no electrode's, and no spoilt heartbeat fit
        (the pulse comes before every beat: its QRS would be blanked at every one)."""
        return self.pacing is not None and self.pacing.explains(span.start + steps.lead)

    def _residual_common_mode(self, y: np.ndarray, last: bool = False) -> np.ndarray:
        """The canceller's output ``y`` (µV, the rows after those it gave before) through a
        second step detector, for common-mode steps only (from its first row: after a band
        change, the first row filtered with the new band); its spans are marked on the
        channels where no span of the first look's is going on at their start. Returns the rows
        every span in which is known by now (``last``: all of them, the record ends): the event
        detector sees the stream that detector's latency (about 38 ms) later.

        A QRS under a 10–40 µV common-mode step spoils the first look's fits on the channels
        with a big heart; once the heartbeat is subtracted the step fits there too (125 extra
        tuning cases: 12 of 59 false events gone, 10–60 µV spikes at common-mode steps 44 ms
        before to 64 ms after an R peak; no event more missed)."""
        first = self.residual_steps.first - self._held.stop  # (rows of an older band before)
        if len(y) > first:
            at = max(first, 0)
            for span in self.residual_steps.process(y[at:], self._held.stop + at):
                if self._explained(span, self.residual_steps):
                    continue
                uncovered = tuple(c for c in span.channels if not any(
                    c in s.channels and s.start <= span.start < s.stop
                    for s in self._first_spans))
                if uncovered:
                    self.artifacts.mark_span(replace(span, channels=uncovered))
        if len(y):
            self._held.append(y)
        stop = self._held.stop if last else max(self._held.start,
                                                self._held.stop - self.residual_steps.latency)
        out = self._held.view(self._held.start, stop).copy()
        self._held.drop_before(stop)
        self._first_spans = [s for s in self._first_spans if s.stop > stop]
        return out

    def _railed_hold(self, railed: np.ndarray) -> np.ndarray | None:
        """(n, channels) bool: within ``RAIL_HOLD_S`` after a ``railed`` raw sample (None:
        none)."""
        n = len(railed)
        if not railed.any() and (self._since_rail >= self._rail_hold).all():
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
        defined = max(0, self.start - start)  # rows before the first sample only fill the delay
        if len(clean) > defined:
            first = start + defined
            body = clean[defined:]
            blank = self.artifacts.blank_mask(first, len(body))
            gaps = self.gaps.masks(first, len(body))
            if gaps is not None:  # lost rows (bridged or not) and the settle after a gap
                blank |= gaps[1]
            kept = None
            if self.ecg is not None:  # QRS not (yet) subtracted, or with a large residual
                heart = self.ecg.blank_mask(first - self.start, len(body))
                kept = heart & ~blank  # (slow: through the detector's filters as it is)
                blank |= heart
            events = self.detector.process(body, first, blank, kept,
                                           None if gaps is None else gaps[1])
            # what is shown and exported: no signal where cautery, rails or lead-off left none
            # (stimulus blanking is for detection only: the evoked response stays visible)
            body[self.artifacts.blank_mask(first, len(body), SIGNAL_LOST_KINDS)] = np.nan
            if gaps is not None:  # a bridged row is no measurement
                body[gaps[0]] = np.nan
        return ChainOutput(start, clean, events, spans)
