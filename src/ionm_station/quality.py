"""Signal quality of every channel from a few seconds of signal — pure numpy, no pipeline state.

The processing worker calls :func:`assess` on the newest seconds of the raw and clean rings
(periodically, and for a baseline check); reports and trends read the ``signal_quality`` events
it logs. Nothing here reaches into the DSP chain: every measure is taken from the samples.

Per channel:

* **noise RMS** (µV) — of the *clean* signal (band-passed, mains and ECG removed, artifacts
  blanked as NaN): the median of the RMS of 20 ms windows, so events and short artifacts do
  not count as noise.
* **mains** (µV RMS) — of the *raw* signal: the fundamental and its harmonics up to the 5th,
  each read as the largest Hann-windowed spectral line within ±1 Hz of h × mains (the mains
  frequency drifts), summed as RMS. With ``mains_hz`` None, 50 or 60 Hz is the family with more
  power over all channels.
* **ECG** (µV p-p) — of the *raw* signal kept to 8–40 Hz (FFT mask): the 0.5–99.5 percentile
  range, i.e. the size of the QRS complexes picked up.
* **lead off** — the channel sat at the amplifier's rail (|x| ≥ 98 % of the range) for half
  the window or more, or the source reported it off.
* **flat** — a standard deviation below ``flat_max_uv`` (a shorted or dead input).

The likely cause of a failing channel, most telling first: ``lead off``, ``no signal`` (the
window is mostly missing samples), ``flat``, ``high mains``, ``high noise``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ionm_station.events import Event
from ionm_station.montage import Montage
from ionm_station.triggered.cmap import Response

#: Harmonics of mains measured (fundamental = 1).
MAINS_HARMONICS = 5
#: Half-width of the search for each mains line (Hz): nominal ± offset and drift.
MAINS_SEARCH_HZ = 1.0
#: Band of the ECG pick-up measure (Hz).
ECG_BAND_HZ = (8.0, 40.0)
#: Window of the robust noise RMS (s).
NOISE_WINDOW_S = 0.020
#: Fraction of the range counted as "at the rail".
RAIL_FRACTION = 0.98
#: The likely causes, most telling first.
CAUSES = ("lead off", "no signal", "flat", "high mains", "high noise")


@dataclass(frozen=True)
class QualityLimits:
    """When a channel fails the check.

    Attributes:
        noise_rms_max_uv: clean-signal noise above this is ``high noise`` (µV RMS; diagnostic
            needle EMG expects ≤ 3–4 µV, so 10 µV means a poor electrode or interference).
        mains_max_uv: raw mains above this is ``high mains`` (µV RMS; a high electrode
            impedance or an unshielded lead picks up mains).
        flat_max_uv: a raw standard deviation below this is ``flat`` (µV).
        rail_fraction: share of the window at the rail that means ``lead off``.
        missing_fraction: share of the window missing (NaN) that means ``no signal``.
    """

    noise_rms_max_uv: float = 10.0
    mains_max_uv: float = 20.0
    flat_max_uv: float = 0.3
    rail_fraction: float = 0.5
    missing_fraction: float = 0.5


@dataclass(frozen=True)
class ChannelQuality:
    """One channel's quality over a window (None: could not be measured, e.g. all blanked).

    Attributes:
        channel: montage channel index.
        noise_rms_uv: clean-signal noise (µV RMS).
        mains_uv: raw mains, fundamental and harmonics (µV RMS).
        mains_hz: the nominal mains frequency measured against (Hz).
        ecg_uv: raw ECG pick-up (µV p-p).
        lead_off: at the rail or reported off.
        flat: no signal variation.
        cause: the likely cause of a failure ('' when the channel passes).
    """

    channel: int
    noise_rms_uv: float | None
    mains_uv: float | None
    mains_hz: float | None
    ecg_uv: float | None
    lead_off: bool
    flat: bool
    cause: str

    @property
    def ok(self) -> bool:
        """The channel passes the check."""
        return not self.cause

    def to_data(self) -> dict[str, Any]:
        """The event data of a ``signal_quality`` event (values rounded to 0.01 µV)."""
        return {"noise_rms_uv": _rounded(self.noise_rms_uv), "mains_uv": _rounded(self.mains_uv),
                "mains_hz": self.mains_hz, "ecg_uv": _rounded(self.ecg_uv),
                "lead_off": self.lead_off, "flat": self.flat, "ok": self.ok,
                "cause": self.cause or None}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def noise_rms(clean: np.ndarray, fs: float) -> np.ndarray:
    """Median RMS of :data:`NOISE_WINDOW_S` windows of ``clean`` (n, ch) per channel (µV);
    windows holding NaN are left out, NaN where none is whole."""
    w = max(1, int(NOISE_WINDOW_S * fs))
    n = len(clean) // w
    if n == 0:
        return np.full(clean.shape[1], np.nan)
    blocks = clean[: n * w].astype(np.float64).reshape(n, w, -1)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))  # NaN where a window holds NaN
    out = np.full(clean.shape[1], np.nan)
    whole = np.isfinite(rms).any(axis=0)
    if whole.any():
        out[whole] = np.nanmedian(rms[:, whole], axis=0)
    return out


def _spectrum(raw: np.ndarray) -> np.ndarray:
    """Peak amplitude spectrum (µV) of each column after removing its mean, Hann window."""
    x = raw - raw.mean(axis=0)
    win = np.hanning(len(x))[:, None]
    return np.abs(np.fft.rfft(x * win, axis=0)) * 2.0 / win.sum()


def mains_rms(spectrum: np.ndarray, fs: float, n: int, mains_hz: float) -> np.ndarray:
    """Mains level per channel (µV RMS): fundamental and harmonics up to
    :data:`MAINS_HARMONICS` below Nyquist, from a peak amplitude ``spectrum`` of ``n`` samples."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    power = np.zeros(spectrum.shape[1])
    for h in range(1, MAINS_HARMONICS + 1):
        f = h * mains_hz
        if f + MAINS_SEARCH_HZ >= fs / 2:
            break
        band = (freqs >= f - MAINS_SEARCH_HZ) & (freqs <= f + MAINS_SEARCH_HZ)
        if band.any():
            peak = spectrum[band].max(axis=0)
            power += peak * peak / 2.0
    return np.sqrt(power)


def ecg_p2p(raw: np.ndarray, fs: float) -> np.ndarray:
    """ECG pick-up per channel (µV p-p): ``raw`` kept to :data:`ECG_BAND_HZ`, 0.5–99.5 %."""
    spec = np.fft.rfft(raw - raw.mean(axis=0), axis=0)
    freqs = np.fft.rfftfreq(len(raw), 1.0 / fs)
    spec[(freqs < ECG_BAND_HZ[0]) | (freqs > ECG_BAND_HZ[1])] = 0.0
    y = np.fft.irfft(spec, n=len(raw), axis=0)
    lo, hi = np.percentile(y, [0.5, 99.5], axis=0)
    return hi - lo


def assess(raw: np.ndarray, clean: np.ndarray, fs: float, range_uv: float,
           mains_hz: float | None = None, reported_off: Collection[int] = (),
           limits: QualityLimits = QualityLimits()) -> list[ChannelQuality]:
    """Quality of every channel from the same stretch of raw and clean signal.

    Args:
        raw: raw samples (n, channels) µV, NaN = missing.
        clean: clean samples (m, channels) µV, NaN = blanked or undefined.
        fs: sample rate (Hz).
        range_uv: the amplifier's input range, ± µV (the rail).
        mains_hz: 50 or 60 Hz, or None to decide from the signal.
        reported_off: channels the source reports off (lead-off open now).
        limits: what fails.
    """
    raw = np.asarray(raw, dtype=np.float64)
    n, n_ch = raw.shape
    missing = np.isnan(raw)
    missing_share = missing.mean(axis=0) if n else np.ones(n_ch)
    filled = np.where(missing, 0.0, raw)
    at_rail = (np.abs(filled) >= RAIL_FRACTION * range_uv).mean(axis=0) if n else np.zeros(n_ch)
    lead_off = at_rail >= limits.rail_fraction
    lead_off[list(reported_off)] = True
    flat = np.zeros(n_ch, bool)
    mains = ecg = np.full(n_ch, np.nan)
    nominal = mains_hz
    if n >= int(fs * 0.5):
        spec = _spectrum(filled)
        if nominal is None:
            levels = {hz: float(np.sum(mains_rms(spec, fs, n, hz) ** 2)) for hz in (50.0, 60.0)}
            nominal = max(levels, key=levels.__getitem__)
        mains = mains_rms(spec, fs, n, nominal)
        ecg = ecg_p2p(filled, fs)
        present = np.maximum((~missing).sum(axis=0), 1)
        mean = filled.sum(axis=0) / present
        spread = np.sqrt((np.where(missing, 0.0, filled - mean) ** 2).sum(axis=0) / present)
        flat = (spread < limits.flat_max_uv) & (missing_share < 1.0)
    noise = noise_rms(np.asarray(clean), fs)
    out = []
    for ch in range(n_ch):
        causes = (lead_off[ch], missing_share[ch] >= limits.missing_fraction, flat[ch],
                  bool(mains[ch] > limits.mains_max_uv),
                  bool(noise[ch] > limits.noise_rms_max_uv))
        cause = next((name for name, hit in zip(CAUSES, causes) if hit), "")
        out.append(ChannelQuality(ch, *_finite(np.array([noise[ch], mains[ch]])), nominal,
                                  _finite(ecg[ch:ch + 1])[0], bool(lead_off[ch]),
                                  bool(flat[ch]), cause))
    return out


def tile_baselines(montage: Montage, found: Sequence[ChannelQuality], activity: Sequence[Event],
                   responses: Sequence[Response]) -> list[tuple[str, tuple[int, ...], dict]]:
    """The baseline snapshot of every tile: ``(key, channels, data)`` for a ``baseline`` event.

    ``data``: ``tile``; ``ok`` (every channel passed); ``failing`` (label → likely cause);
    per channel of the tile, in montage order, ``labels``, ``noise_rms_uv``, ``mains_uv`` and
    ``ecg_uv``; ``quiet`` (no above-threshold EMG event on the tile in the window,
    ``activity`` being the window's ``emg_event`` events); and ``cmap``, the tile's latest
    stimulus response that responded (``current_ma``, ``peak_uv`` per channel, ``latency_ms``,
    ``index`` of the stimulus), None if it was not stimulated.
    """
    by_channel = {q.channel: q for q in found}
    busy = {c for e in activity for c in e.channels}
    out = []
    for key in montage.tile_keys():
        channels = tuple(i for i, c in enumerate(montage.channels) if c.tile_key == key)
        quals = [by_channel[i] for i in channels if i in by_channel]
        response = next((r for r in reversed(responses) if r.target == key and r.any), None)
        cmap = None if response is None else {
            "current_ma": response.current_ma, "index": response.stimulus,
            "peak_uv": [round(v, 1) for v in response.peak_uv],
            "latency_ms": [None if v is None else round(v, 2) for v in response.latency_ms]}
        out.append((key, channels, {
            "tile": key, "ok": all(q.ok for q in quals),
            "failing": {montage.channels[q.channel].label: q.cause for q in quals if not q.ok},
            "labels": [montage.channels[q.channel].label for q in quals],
            "noise_rms_uv": [_rounded(q.noise_rms_uv) for q in quals],
            "mains_uv": [_rounded(q.mains_uv) for q in quals],
            "ecg_uv": [_rounded(q.ecg_uv) for q in quals],
            "quiet": not busy.intersection(channels), "cmap": cmap}))
    return out
