"""Simulated concentric-needle EMG with ground truth: MUAP pools and spontaneous activity.

A MUAP is a sum of "Mexican hat" components (second derivative of a Gaussian, negative main
peak): a few narrow ones, one per group of muscle fibres near the needle, dispersed in time, and
one broad one, the far fibres, that gives the initial and terminal phases. The pools:

* **normal** — 4 motor units per needle site firing 8–13 Hz; ~650 µV, ~9 ms, mostly triphasic.
* **neurogenic** — reinnervated units: larger (~2 mV), longer (~14 ms), dispersed and often
  polyphasic; reduced recruitment: 3 units per site firing faster (14–22 Hz).
* **myopathic** — small (~300 µV), short (~5–6 ms), narrow dispersed components, often
  polyphasic; early recruitment: 6 units per site.

A recording moves the needle through 6 sites (8 for the neurogenic pool; 30 s: 4 s, or
2.75 s, of activity and 1 s of rest while the needle moves, each), so a muscle holds 24–36 distinct
MUAPs, as a multi-MUAP study collects them. Discharges are placed at continuous times (each
sampled at its own sub-sample offset) over white noise (8 µV RMS).

Rest recordings hold one kind of spontaneous activity: fibrillation potentials, positive sharp
waves, fasciculation potentials, complex repetitive discharges or myotonic discharges (or none).

Ground truth of every MUAP is measured on its noise-free template, sampled at 200 kHz, with the
same definitions as the analysis (:func:`~ionm_station.lab.measure.measure_template`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ionm_station.lab.measure import MuapShape, measure_template

POOLS = ("normal", "neurogenic", "myopathic")
SPONTANEOUS_KINDS = ("fibrillation", "positive_sharp_wave", "fasciculation", "crd", "myotonic")
#: The truth is measured on templates sampled this fast (Hz).
TRUTH_FS_HZ = 200_000.0
#: Half-width of a rendered discharge (ms).
HALF_WINDOW_MS = 25.0
NOISE_UV = 8.0
#: Rest while the needle moves to the next site (s).
MOVE_S = 1.0

Shape = Callable[[np.ndarray], np.ndarray]  # time from the discharge (ms) -> µV


@dataclass(frozen=True)
class TrueUnit:
    """One simulated motor unit (or spontaneous generator) and its discharges."""

    kind: str  # "muap" or a spontaneous kind
    times_s: np.ndarray
    shape: MuapShape
    site: int = -1

    @property
    def rate_hz(self) -> float:
        isi = np.diff(self.times_s)
        return float(1.0 / np.median(isi)) if isi.size else 0.0


@dataclass
class NeedleCase:
    """A simulated needle recording (µV) and what it holds."""

    fs_hz: float
    data_uv: np.ndarray
    pool: str  # normal / neurogenic / myopathic / rest
    units: list[TrueUnit] = field(default_factory=list)
    spontaneous_kind: str | None = None
    spontaneous_trains: int = 0

    @property
    def muaps(self) -> list[TrueUnit]:
        return [u for u in self.units if u.kind == "muap"]


def _hat(t_ms: np.ndarray, centre_ms: np.ndarray, width_ms: np.ndarray,
         lobes: np.ndarray | float = 1.0) -> np.ndarray:
    """``(1 - lobes·u²)·exp(-u²/2)``: a Gaussian (lobes 0) to a Mexican hat (lobes 1)."""
    u = (t_ms - centre_ms) / width_ms
    return (1.0 - lobes * u * u) * np.exp(-0.5 * u * u)


def _sum_of_hats(amp: np.ndarray, centre: np.ndarray, width: np.ndarray,
                 lobes: np.ndarray | float = 1.0) -> Shape:
    amp, centre, width, lobes = (np.asarray(a, dtype=float) for a in (amp, centre, width, lobes))

    def shape(t_ms: np.ndarray) -> np.ndarray:
        t = np.asarray(t_ms, dtype=float)[..., None]
        return (-amp * _hat(t, centre, width, lobes)).sum(axis=-1)
    return shape


#: Per pool: fibre components (min, max), dispersion SD (ms), component width range (ms),
#: spike amplitude median (µV) and log-SD, broad width range (ms), broad/spike ratio range,
#: units per site, firing rate range (Hz), side lobes of the fibre components
#: (range; 0 Gaussian, 1 Mexican hat).
POOL_PARAMS = {
    "normal": {"n": (3, 5), "disp": 0.22, "width": (0.22, 0.32), "amp": 520.0,
               "amp_sd": 0.30, "broad": (1.5, 1.9), "ratio": (0.10, 0.14), "units": 4,
               "rate": (8.0, 13.0), "lobes": (0.0, 0.5)},
    "neurogenic": {"n": (6, 11), "disp": 0.9, "width": (0.25, 0.40), "amp": 1900.0,
                   "amp_sd": 0.30, "broad": (2.1, 2.7), "ratio": (0.07, 0.10), "units": 3,
                   "rate": (14.0, 22.0), "lobes": (0.3, 0.7)},
    "myopathic": {"n": (3, 7), "disp": 0.7, "width": (0.13, 0.20), "amp": 380.0,
                  "amp_sd": 0.30, "broad": (0.95, 1.25), "ratio": (0.10, 0.14), "units": 6,
                  "rate": (8.0, 13.0), "lobes": (0.4, 0.9)},
}


#: Needle sites per 30 s recording: the neurogenic muscle, with 3 units per site (reduced
#: recruitment), is sampled at more sites so that it holds the 20 MUAPs a verdict needs
#: (24), as an examiner would move the needle more; normal 24, myopathic 36.
SITES = {"normal": 6, "neurogenic": 8, "myopathic": 6}


def muap_shape(pool: str, rng: np.random.Generator) -> Shape:
    """A random MUAP of ``pool`` (time 0 near its main peak)."""
    p = POOL_PARAMS[pool]
    n = int(rng.integers(p["n"][0], p["n"][1] + 1))
    centre = rng.normal(0.0, p["disp"], n)
    centre -= centre[np.argmax(np.abs(centre) < 10)]  # one component at 0
    width = rng.uniform(*p["width"], n)
    weights = rng.dirichlet(np.full(n, 2.0))
    total = p["amp"] * float(np.exp(rng.normal(0.0, p["amp_sd"])))
    amp = total * weights * (n ** 0.5) / 1.6
    broad_w = rng.uniform(*p["broad"])
    broad_a = rng.uniform(*p["ratio"]) * total
    return _sum_of_hats(np.r_[amp, broad_a], np.r_[centre, rng.normal(0.0, 0.2)],
                        np.r_[width, broad_w], np.r_[rng.uniform(*p["lobes"], n), 1.0])


def _fibrillation_shape(rng: np.random.Generator) -> Shape:
    """Biphasic spike, initially positive, 1–4 ms."""
    a = rng.uniform(50.0, 300.0) / 1.2131  # p-p of u·exp(-u²/2) is 2/sqrt(e)
    w = rng.uniform(0.15, 0.3)

    def shape(t_ms: np.ndarray) -> np.ndarray:
        u = np.asarray(t_ms) / w
        return -a * u * np.exp(-0.5 * u * u)
    return shape


def _psw_shape(rng: np.random.Generator) -> Shape:
    """Positive sharp wave: a sharp positive deflection, then a long low negative phase."""
    a = rng.uniform(60.0, 400.0)
    w = rng.uniform(0.25, 0.4)
    tau = rng.uniform(2.5, 4.0)

    def shape(t_ms: np.ndarray) -> np.ndarray:
        t = np.asarray(t_ms, dtype=float)
        pos = a * np.exp(-0.5 * (t / w) ** 2)
        s = np.clip(t - w, 0.0, None) / tau
        return pos - 0.3 * a * s * np.exp(1.0 - s)
    return shape


def _crd_shape(rng: np.random.Generator) -> Shape:
    """A complex of 3–6 fibre spikes at fixed lags over 4–12 ms."""
    n = int(rng.integers(3, 7))
    span = rng.uniform(4.0, 12.0)
    centre = np.sort(rng.uniform(0.0, span, n))
    centre -= centre[0]
    return _sum_of_hats(rng.uniform(100.0, 400.0, n), centre, rng.uniform(0.15, 0.3, n))


def truth_shape(shape: Shape) -> MuapShape:
    """Measure the noise-free template at :data:`TRUTH_FS_HZ`."""
    t = np.arange(-HALF_WINDOW_MS, HALF_WINDOW_MS, 1000.0 / TRUTH_FS_HZ)
    x = shape(t)
    return measure_template(x, TRUTH_FS_HZ)


def _render(out: np.ndarray, fs_hz: float, shape: Shape, times_s: np.ndarray,
            gains: np.ndarray | None = None) -> None:
    """Add ``shape`` at every discharge time (continuous times: each at its own offset)."""
    if times_s.size == 0:
        return
    half = int(HALF_WINDOW_MS * fs_hz / 1000.0)
    first = np.floor(times_s * fs_hz).astype(np.int64)
    idx = first[:, None] + np.arange(-half, half + 1)[None, :]
    t_ms = (idx / fs_hz - times_s[:, None]) * 1000.0
    wave = shape(t_ms)
    if gains is not None:
        wave = wave * gains[:, None]
    ok = (idx >= 0) & (idx < out.size)
    np.add.at(out, idx[ok], wave[ok])


def _regular_times(rng: np.random.Generator, start_s: float, stop_s: float, rate_hz: float,
                   cv: float) -> np.ndarray:
    n = int((stop_s - start_s) * rate_hz * 1.5) + 4
    isi = np.clip(rng.normal(1.0 / rate_hz, cv / rate_hz, n), 0.4 / rate_hz, None)
    t = start_s + rng.uniform(0.0, 1.0 / rate_hz) + np.cumsum(isi) - isi[0]
    return t[(t >= start_s) & (t < stop_s)]


def _noise(rng: np.random.Generator, n: int, noise_uv: float) -> np.ndarray:
    white = rng.normal(0.0, 1.0, n + 1)
    x = 0.7 * white[1:] + 0.3 * white[:-1]  # a little smoothing (amplifier bandwidth)
    return x * (noise_uv / np.sqrt(0.7 ** 2 + 0.3 ** 2))


def simulate_pool(pool: str, seed: int, fs_hz: float = 20_000.0, duration_s: float = 30.0,
                  sites: int | None = None, noise_uv: float = NOISE_UV) -> NeedleCase:
    """A voluntary-activity recording of ``pool`` (normal / neurogenic / myopathic);
    ``sites`` None: the pool's own number (:data:`SITES`)."""
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r} (expected one of {', '.join(POOLS)})")
    rng = np.random.default_rng([seed, POOLS.index(pool)])
    p = POOL_PARAMS[pool]
    n = int(duration_s * fs_hz)
    data = _noise(rng, n, noise_uv)
    units = []
    sites = SITES[pool] if sites is None else sites
    site_s = duration_s / sites
    for site in range(sites):
        start, stop = site * site_s + 0.05, (site + 1) * site_s - MOVE_S
        for _ in range(p["units"]):
            shape = muap_shape(pool, rng)
            times = _regular_times(rng, start, stop, rng.uniform(*p["rate"]), 0.15)
            _render(data, fs_hz, shape, times)
            units.append(TrueUnit("muap", times, truth_shape(shape), site))
    return NeedleCase(fs_hz, data, pool, units)


#: Full effort, per pool: units within the needle's pick-up and their firing rates (Hz):
#: neurogenic — few units (reduced recruitment) firing fast; myopathic — many small units
#: (early recruitment).
INTERFERENCE_PARAMS = {"normal": {"units": 20, "rate": (15.0, 30.0)},
                       "neurogenic": {"units": 6, "rate": (25.0, 40.0)},
                       "myopathic": {"units": 40, "rate": (15.0, 30.0)}}


def simulate_interference(pool: str, seed: int, fs_hz: float = 20_000.0,
                          duration_s: float = 3.0, noise_uv: float = NOISE_UV) -> NeedleCase:
    """A full-effort recording of ``pool``: overlapping MUAPs, an interference pattern."""
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r} (expected one of {', '.join(POOLS)})")
    rng = np.random.default_rng([seed, 200 + POOLS.index(pool)])
    p = INTERFERENCE_PARAMS[pool]
    data = _noise(rng, int(duration_s * fs_hz), noise_uv)
    units = []
    for _ in range(p["units"]):
        shape = muap_shape(pool, rng)
        times = _regular_times(rng, 0.0, duration_s, rng.uniform(*p["rate"]), 0.15)
        _render(data, fs_hz, shape, times)
        units.append(TrueUnit("muap", times, truth_shape(shape)))
    return NeedleCase(fs_hz, data, pool, units)


def _myotonic_times(rng: np.random.Generator, start_s: float, length_s: float) -> np.ndarray:
    """A waning discharge: the rate falls smoothly from 50–80 Hz to 20–30 Hz."""
    r0, r1 = rng.uniform(50.0, 80.0), rng.uniform(20.0, 30.0)
    t, out = 0.0, []
    while t < length_s:
        out.append(start_s + t)
        rate = r0 * (r1 / r0) ** (t / length_s)
        t += 1.0 / rate
    return np.asarray(out)


def simulate_rest(kind: str | None, seed: int, fs_hz: float = 20_000.0,
                  duration_s: float = 30.0, noise_uv: float = NOISE_UV) -> NeedleCase:
    """A rest recording holding one kind of spontaneous activity (None: none)."""
    if kind is not None and kind not in SPONTANEOUS_KINDS:
        raise ValueError(f"unknown spontaneous kind {kind!r}")
    rng = np.random.default_rng([seed, 100 + (SPONTANEOUS_KINDS.index(kind) if kind else 9)])
    n = int(duration_s * fs_hz)
    data = _noise(rng, n, noise_uv)
    units: list[TrueUnit] = []
    trains = 0
    if kind in ("fibrillation", "positive_sharp_wave"):
        trains = int(rng.integers(1, 4))
        for _ in range(trains):
            shape = _fibrillation_shape(rng) if kind == "fibrillation" else _psw_shape(rng)
            times = _regular_times(rng, rng.uniform(0.0, 5.0), duration_s - 0.05,
                                   rng.uniform(2.0, 12.0), 0.02)
            _render(data, fs_hz, shape, times)
            units.append(TrueUnit(kind, times, truth_shape(shape)))
    elif kind == "fasciculation":
        trains = int(rng.integers(1, 3))
        for _ in range(trains):
            shape = muap_shape("normal", rng)
            rate = rng.uniform(0.3, 0.8)
            k = rng.poisson(rate * duration_s) + 6
            times = np.sort(rng.uniform(0.05, duration_s - 0.05, k))
            keep = np.r_[True, np.diff(times) > 0.1]
            times = times[keep]
            _render(data, fs_hz, shape, times)
            units.append(TrueUnit(kind, times, truth_shape(shape)))
    elif kind in ("crd", "myotonic"):
        trains = int(rng.integers(2, 4))
        slot = duration_s / trains
        for i in range(trains):
            length = rng.uniform(1.5, min(4.0, slot - 1.0))
            start = i * slot + rng.uniform(0.3, slot - length - 0.3)
            if kind == "crd":
                shape = _crd_shape(rng)
                times = _regular_times(rng, start, start + length, rng.uniform(10.0, 40.0),
                                       0.003)
                gains = None
            else:
                shape = (_fibrillation_shape(rng) if rng.random() < 0.5 else _psw_shape(rng))
                times = _myotonic_times(rng, start, length)
                gains = np.linspace(1.0, rng.uniform(0.4, 0.6), times.size)
            _render(data, fs_hz, shape, times, gains)
            units.append(TrueUnit(kind, times, truth_shape(shape)))
    return NeedleCase(fs_hz, data, "rest", units, kind, trains)
