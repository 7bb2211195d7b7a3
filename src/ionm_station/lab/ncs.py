"""Nerve conduction studies from stimulus-locked sweeps: motor, sensory, F-waves; pure numpy.

The input is a study description (TOML, ``docs/emg-lab.md``) naming one of our recordings in
which every stimulus is a ``stimulus`` event whose ``data.site`` names where it was given. Each
study (motor, sensory or F-waves of one nerve) lists its sites in order, distal first, with
distances in mm: the first from the stimulation point to the active recording electrode, each
next one from the site before.

Sweeps are cut from 30 ms before to 100 ms after each stimulus, the stimulus artifact blanked
and band-passed zero phase by the triggered-EMG CMAP cleaner
(:func:`ionm_station.triggered.cmap.blank_and_filter`); the sweeps of a motor or sensory site
are averaged. Potentials are negative first (active electrode over the motor point, ring
electrodes on the digit); the baseline noise σ is the robust SD of 25–1 ms before the stimulus.

* **Onset latency**: the line through the potential's last crossings of 4 σ and 10 σ before its
  negative peak, extrapolated to the baseline (between samples).
* **Amplitude**: baseline to negative peak (mV motor, µV sensory); peak to peak too.
* **Duration** and **area**: of the negative peak, from onset to the return to baseline.
* **Peak latency**: of the negative peak (parabolic interpolation).
* **Velocity**: segment distance / latency difference between two sites (m/s); sensory also
  the first site's distance / onset latency.
* **F-waves**: per sweep, after the M-wave has ended, a deflection of at least 20 µV and 5 σ; its
  onset as above (either polarity). Minimum, mean and maximum latency, persistence (sweeps with
  an F-wave / sweeps).

Results are compared with :data:`REFERENCES` (every limit with its published source) and the
flags read as patterns: carpal tunnel (focal median slowing at the wrist), demyelinating,
axonal.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ionm_station.config import check_keys, load_toml, optional, require
from ionm_station.errors import ConfigError, IonmError
from ionm_station.triggered.cmap import blank_and_filter

KINDS = ("motor", "sensory", "f_wave")
#: Sweep window around each stimulus (ms).
PRE_MS, POST_MS = 30.0, 100.0
#: Stimulus artifact blanked from 0.5 ms before to this after the stimulus (ms).
BLANK_MS = 1.5
#: Filter band (Hz) per study kind: low-pass only, the offset is the pre-stimulus median (a
#: zero-phase high-pass would spread a large CMAP's slow tail before its onset).
BANDS = {"motor": (0.0, 3000.0), "sensory": (0.0, 2000.0), "f_wave": (0.0, 3000.0)}
#: Where a motor / sensory response may peak (ms after the stimulus).
PEAK_WINDOW_MS = {"motor": 40.0, "sensory": 15.0, "f_wave": 40.0}
#: A response's negative peak must exceed this many × the baseline noise.
RESPONSE_SNR = 5.0
#: The onset: the line through the last crossings of these levels (× noise; at most 40 % and
#: 80 % of a small peak) before the peak, extrapolated to the baseline. Averaged, low-passed
#: noise wanders to 3–4 σ for a millisecond at times: a 2 σ level sent onsets up to 1.1 ms early.
ONSET_LOW, ONSET_HIGH = 4.0, 10.0
#: An F-wave's peak is looked for this long after it crosses its threshold (ms).
F_PEAK_MS = 3.0
#: An F-wave: at least this (µV) and ``RESPONSE_SNR`` × noise.
F_CRITERION_UV = 20.0
#: Shipped reference values (package data).
REFERENCE_FILE = "reference_ncs.toml"


class NcsError(IonmError):
    """A study that cannot be measured: one line naming the file and the problem."""


@dataclass(frozen=True)
class Site:
    """A stimulation site: its label in the recording's stimulus events and its distance (mm;
    None for an F-wave site)."""

    site: str
    distance_mm: float | None


@dataclass(frozen=True)
class Study:
    """One study of one nerve: ``kind`` (motor, sensory, f_wave), the recording channel and its
    sites, distal first."""

    name: str
    kind: str
    nerve: str
    side: str
    channel: str
    sites: tuple[Site, ...]


@dataclass(frozen=True)
class Description:
    """A study description file: the recording it names and its studies."""

    path: Path
    recording: Path
    studies: tuple[Study, ...]


DESCRIPTION_KEYS = ("recording", "side", "study")
STUDY_KEYS = ("name", "kind", "nerve", "side", "channel", "sites")
SITE_KEYS = ("site", "distance_mm")
KIND_NAMES = {"motor": "motor", "sensory": "sensory", "f_wave": "F-waves"}


def load_description(path: str | Path) -> Description:
    """Read and check a study description; errors name the file and key (:class:`ConfigError`)."""
    path = Path(path)
    where = str(path)
    doc = load_toml(path)
    check_keys(doc, DESCRIPTION_KEYS, where)
    recording = require(doc, "recording", str, where)
    default_side = optional(doc, "side", str, where, "")
    raw = require(doc, "study", list, where)
    if not raw:
        raise ConfigError(where, "study", "expected at least one [[study]]")
    studies: list[Study] = []
    for i, entry in enumerate(raw):
        key = f"study[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(where, key, "expected a table with kind, nerve, channel and sites")
        check_keys(entry, STUDY_KEYS, where, key)
        kind = require(entry, "kind", str, where, key)
        if kind not in KINDS:
            raise ConfigError(where, f"{key}.kind", f"expected one of {', '.join(KINDS)}, "
                                                    f"got {kind!r}")
        nerve = require(entry, "nerve", str, where, key).strip()
        if not nerve:
            raise ConfigError(where, f"{key}.nerve", "expected a nerve name, e.g. 'median'")
        side = optional(entry, "side", str, where, default_side, key)
        channel = require(entry, "channel", str, where, key)
        sites_raw = require(entry, "sites", list, where, key)
        if not sites_raw:
            raise ConfigError(where, f"{key}.sites", "expected at least one site")
        if kind == "f_wave" and len(sites_raw) != 1:
            raise ConfigError(where, f"{key}.sites", "F-waves are measured at one site, "
                                                     f"got {len(sites_raw)}")
        if kind == "motor" and len(sites_raw) < 1:
            raise ConfigError(where, f"{key}.sites", "expected at least one site")
        sites = []
        for j, s in enumerate(sites_raw):
            skey = f"{key}.sites[{j}]"
            if not isinstance(s, dict):
                raise ConfigError(where, skey, "expected { site = \"...\", distance_mm = ... }")
            check_keys(s, SITE_KEYS, where, skey)
            label = require(s, "site", str, where, skey)
            dist = optional(s, "distance_mm", (int, float), where, None, skey)
            if dist is None and kind != "f_wave":
                raise ConfigError(where, f"{skey}.distance_mm",
                                  "missing (a motor or sensory site needs its distance in mm)")
            if dist is not None and not (np.isfinite(dist) and dist > 0):
                raise ConfigError(where, f"{skey}.distance_mm",
                                  f"expected a distance > 0 mm, got {dist!r}")
            sites.append(Site(label, None if dist is None else float(dist)))
        name = optional(entry, "name", str, where,
                        f"{nerve} {KIND_NAMES[kind]}" + (f" {side}" if side else ""), key)
        if any(st.name == name for st in studies):
            raise ConfigError(where, f"{key}.name", f"duplicate study name {name!r} (give "
                                                    "each study its own name)")
        studies.append(Study(name, kind, nerve, side, channel, tuple(sites)))
    rec = Path(recording)
    return Description(path, rec if rec.is_absolute() else path.parent / rec, tuple(studies))


# --- measurement (pure numpy) -------------------------------------------------------------


def noise_uv(y: np.ndarray, s: int, fs: float) -> np.ndarray:
    """Robust SD (µV) of the baseline 25–1 ms before the stimulus at row ``s``, per column."""
    base = y[max(0, s - int(0.025 * fs)):s - int(0.001 * fs)]
    mad = np.median(np.abs(base - np.median(base, axis=0)), axis=0)
    return np.maximum(1.4826 * mad, 1e-6)


def _interp_cross(v: np.ndarray, j: int, level: float) -> float:
    """Fractional index between ``j`` and ``j + 1`` where ``v`` crosses ``level``."""
    v0, v1 = float(v[j]), float(v[min(j + 1, len(v) - 1)])
    return j + (float(np.clip((level - v0) / (v1 - v0), 0.0, 1.0)) if v1 != v0 else 0.0)


def onsets(v: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Onsets (fractional rows) of the deflections of ``v`` (n, m: signed toward the deflection,
    in units of the baseline noise σ) peaking at rows ``at`` (m,): the line through the
    deflection's last crossings of ``ONSET_LOW`` and ``ONSET_HIGH`` σ (at most 40 % and 80 % of
    the peak) before ``at``, extrapolated to the baseline. Exact for a linear rise, a little
    late for a rounded one; levels clear of the noise keep a noise bump from moving it.
    Vectorised."""
    cols = np.arange(v.shape[1])
    rows = np.arange(len(v))[:, None]
    last = len(v) - 1
    peak = v[at, cols]
    low, high = np.minimum(ONSET_LOW, 0.4 * peak), np.minimum(ONSET_HIGH, 0.8 * peak)

    def crossing(level: np.ndarray) -> np.ndarray:
        below = np.maximum.accumulate(np.where(v <= level, rows, -1), axis=0)[at, cols]
        j = np.maximum(below, 0)
        v0, v1 = v[j, cols], v[np.minimum(j + 1, last), cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.clip(np.where(v1 != v0, (level - v0) / (v1 - v0), 0.0), 0.0, 1.0)
        return j + frac

    lo, hi = crossing(low), crossing(high)
    return lo - (hi - lo) * low / (high - low)


def measure_potential(y: np.ndarray, s: int, fs: float, kind: str) -> dict[str, float] | None:
    """The negative-first potential of a cleaned (averaged) sweep ``y`` (µV) with its stimulus
    at row ``s``; None when no response stands out of the noise."""
    sigma = float(noise_uv(y[:, None], s, fs)[0])
    base = float(np.median(y[max(0, s - int(0.025 * fs)):s - int(0.001 * fs)]))
    v = base - y  # negative deflections positive
    lo = s + int(np.ceil(BLANK_MS * 1e-3 * fs)) + 1
    hi = min(len(y), s + int(PEAK_WINDOW_MS[kind] * 1e-3 * fs))
    k = lo + int(np.argmax(v[lo:hi]))
    if v[k] < RESPONSE_SNR * sigma:
        return None
    onset = max(float(lo), float(onsets((v[lo:k + 1] / sigma)[:, None], np.array([k - lo]))[0])
                + lo)
    back = np.flatnonzero(v[k:] <= 0.0)
    end = k + int(back[0]) if len(back) else len(v) - 1
    end_f = _interp_cross(-v, end - 1, 0.0) if end > k else float(end)
    i0 = int(np.ceil(onset))
    area = float(np.clip(v[i0:end], 0.0, None).sum() / fs * 1e3)
    a, b, c = (float(v[k - 1]), float(v[k]), float(v[min(k + 1, len(v) - 1)]))
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    ms = 1e3 / fs
    return {"onset_latency_ms": (onset - s) * ms, "peak_latency_ms": (k + shift - s) * ms,
            "amplitude_uv": b, "peak_to_peak_uv": b + float(np.max(-v[k:hi])),
            "duration_ms": (end_f - onset) * ms, "area_uvms": area,
            "noise_uv": sigma}


def m_wave_end(y: np.ndarray, s: int, fs: float, m: dict[str, float]) -> int:
    """Row where the M-wave of ``y`` (the median of the F sweeps) has ended: after its positive
    phase it comes within max(5 σ, half the F-wave criterion) of the baseline."""
    sigma = float(noise_uv(y[:, None], s, fs)[0])
    y = y - np.median(y[max(0, s - int(0.025 * fs)):s - int(0.001 * fs)])
    neg_end = s + round((m["onset_latency_ms"] + m["duration_ms"]) * 1e-3 * fs)
    stop = min(len(y), neg_end + int(0.030 * fs))
    k2 = neg_end + int(np.argmax(y[neg_end:stop]))
    level = max(RESPONSE_SNR * sigma, 0.5 * F_CRITERION_UV)
    quiet = np.flatnonzero(np.abs(y[k2:stop]) <= level)
    return k2 + (int(quiet[0]) if len(quiet) else stop - k2)


def f_wave_onsets(sweeps: np.ndarray, s: int, fs: float, start: int) -> np.ndarray:
    """Onset latency (ms, NaN: no F-wave) of the F-wave in each cleaned sweep (columns of
    ``sweeps``), searched from row ``start`` to the end of the sweep; either polarity, its
    onset by :func:`onsets`. Vectorised over sweeps."""
    sigma = noise_uv(sweeps, s, fs)
    z = sweeps[start:] - np.median(sweeps[max(0, s - int(0.025 * fs)):s], axis=0)
    above = np.abs(z) > np.maximum(F_CRITERION_UV, RESPONSE_SNR * sigma)
    present = above.any(axis=0)
    cross = np.argmax(above, axis=0)
    cols = np.arange(z.shape[1])
    v = z * (np.sign(z[cross, cols]) / sigma)
    window = np.minimum(cross + np.arange(int(F_PEAK_MS * 1e-3 * fs))[:, None], len(z) - 1)
    peak = window[np.argmax(v[window, cols], axis=0), cols]
    onset = np.maximum(onsets(v, peak), 0.0) + start
    return np.where(present, (onset - s) / fs * 1e3, np.nan)


# --- a study from a recording --------------------------------------------------------------


def _sweeps(rec: Any, channel: int, stimuli: list[int], fs: float, where: str) -> np.ndarray:
    """Raw sweeps (n, n_stimuli) µV of ``channel`` around ``stimuli`` (file indices)."""
    pre, post = int(PRE_MS * 1e-3 * fs), int(POST_MS * 1e-3 * fs)
    out = np.empty((pre + post, len(stimuli)), dtype=np.float64)
    for i, stim in enumerate(stimuli):
        if stim - pre < 0 or stim + post > rec.n_samples:
            raise NcsError(f"{where}: the stimulus at {stim / fs:.3f} s lies within "
                           f"{PRE_MS:g} ms before / {POST_MS:g} ms after the ends of the "
                           f"recording ({rec.n_samples / fs:.3f} s; truncated file?)")
        out[:, i] = rec.read(stim - pre, stim + post)[:, channel]
    if not np.isfinite(out).all():
        raise NcsError(f"{where}: missing samples (a gap) within a sweep")
    return out


def _round(doc: dict[str, Any], digits: int = 3) -> dict[str, Any]:
    return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in doc.items()}


def measure_study(study: Study, rec: Any, stimuli_by_site: dict[str, list[int]],
                  where: str) -> dict[str, Any]:
    """Measure one study of a recording; ``stimuli_by_site``: site label → file indices."""
    fs = rec.info.sample_rate_hz
    labels = list(rec.info.labels)
    if study.channel not in labels:
        raise NcsError(f"{where}: {study.name}: channel {study.channel!r} is not in the "
                       f"recording (channels: {', '.join(labels)})")
    ch = labels.index(study.channel)
    s = int(PRE_MS * 1e-3 * fs)
    out: dict[str, Any] = {"name": study.name, "kind": study.kind, "nerve": study.nerve,
                           "side": study.side, "channel": study.channel}
    for site in study.sites:
        if not stimuli_by_site.get(site.site):
            known = ", ".join(sorted(stimuli_by_site)) or "none"
            raise NcsError(f"{where}: {study.name}: site {site.site!r} has no stimulus in "
                           f"{rec.path.name} (sites stimulated: {known})")
    if study.kind == "f_wave":
        site = study.sites[0]
        stimuli = stimuli_by_site[site.site]
        y = blank_and_filter(_sweeps(rec, ch, stimuli, fs, where), s, fs, BLANK_MS,
                             BANDS["f_wave"])
        typical = np.median(y, axis=1)  # the M-wave, F-waves (at varying latencies) left out
        m = measure_potential(typical, s, fs, "motor")
        out["site"] = site.site
        out["stimuli"] = len(stimuli)
        if m is None:
            out.update(m_wave=None, f_waves=0, persistence=0.0, min_latency_ms=None,
                       mean_latency_ms=None, max_latency_ms=None, latencies_ms=[])
            return out
        start = m_wave_end(typical, s, fs, m) + int(0.001 * fs)
        lat = f_wave_onsets(y, s, fs, start)
        found = lat[np.isfinite(lat)]
        out.update(m_wave={"onset_latency_ms": round(m["onset_latency_ms"], 3),
                           "amplitude_mv": round(m["amplitude_uv"] / 1e3, 3)},
                   f_waves=len(found), persistence=round(len(found) / len(stimuli), 3),
                   min_latency_ms=round(float(found.min()), 3) if len(found) else None,
                   mean_latency_ms=round(float(found.mean()), 3) if len(found) else None,
                   max_latency_ms=round(float(found.max()), 3) if len(found) else None,
                   latencies_ms=[None if not np.isfinite(x) else round(float(x), 3)
                                 for x in lat])
        return out
    sites = []
    for site in study.sites:
        stimuli = stimuli_by_site[site.site]
        y = blank_and_filter(_sweeps(rec, ch, stimuli, fs, where), s, fs, BLANK_MS,
                             BANDS[study.kind]).mean(axis=1)
        p = measure_potential(y, s, fs, study.kind)
        row: dict[str, Any] = {"site": site.site, "distance_mm": site.distance_mm,
                               "stimuli": len(stimuli)}
        if p is None:
            row["response"] = False
        elif study.kind == "motor":
            row.update(response=True, **_round({
                "onset_latency_ms": p["onset_latency_ms"], "peak_latency_ms": p["peak_latency_ms"],
                "amplitude_mv": p["amplitude_uv"] / 1e3, "peak_to_peak_mv": p["peak_to_peak_uv"] / 1e3,
                "area_mvms": p["area_uvms"] / 1e3, "duration_ms": p["duration_ms"],
                "noise_uv": p["noise_uv"]}, 4))
        else:
            row.update(response=True, **_round({
                "onset_latency_ms": p["onset_latency_ms"], "peak_latency_ms": p["peak_latency_ms"],
                "amplitude_uv": p["amplitude_uv"], "peak_to_peak_uv": p["peak_to_peak_uv"],
                "duration_ms": p["duration_ms"], "noise_uv": p["noise_uv"]}, 3))
        sites.append(row)
    out["sites"] = sites
    segments = []
    first = sites[0]
    if study.kind == "sensory" and first.get("response"):
        segments.append({"from": first["site"], "to": None, "distance_mm": first["distance_mm"],
                         "velocity_m_s": round(first["distance_mm"] / first["onset_latency_ms"], 2)})
    for a, b in itertools.pairwise(sites):
        seg: dict[str, Any] = {"from": a["site"], "to": b["site"], "distance_mm": b["distance_mm"],
                               "velocity_m_s": None}
        if a.get("response") and b.get("response"):
            dt = b["onset_latency_ms"] - a["onset_latency_ms"]
            if dt > 0:
                seg["velocity_m_s"] = round(b["distance_mm"] / dt, 2)
            else:
                seg["note"] = (f"{b['site']} latency is not longer than {a['site']}'s: "
                               "check the site order (distal first)")
        segments.append(seg)
    out["segments"] = segments
    return out


# --- reference values, flags and patterns --------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """One reference limit: abnormal above ``upper`` / below ``lower`` (``inclusive``: at it)."""

    nerve: str
    kind: str
    measure: str
    upper: float | None
    lower: float | None
    inclusive: bool
    source: str
    recording: str = ""
    derivation: str = ""
    name: str = ""
    minuend: str = ""
    subtrahend: str = ""


LIMIT_KEYS = ("nerve", "kind", "measure", "upper", "lower", "inclusive", "recording",
              "derivation", "source")
COMPARISON_KEYS = ("name", "kind", "measure", "minuend", "subtrahend", "upper", "lower",
                   "inclusive", "recording", "derivation", "source")
MEASURES = ("distal_latency_ms", "amplitude_mv", "velocity_m_s", "peak_latency_ms",
            "onset_latency_ms", "amplitude_uv", "f_min_latency_ms")


def load_references(path: str | Path | None = None) -> tuple[list[Limit], list[Limit]]:
    """The reference limits and comparisons (default: the shipped ``reference_ncs.toml``).
    Every entry must name its source."""
    if path is None:
        path = Path(str(resources.files("ionm_station.lab") / REFERENCE_FILE))
    where = str(path)
    doc = load_toml(path)
    check_keys(doc, ("limit", "comparison"), where)
    lists: tuple[list[Limit], list[Limit]] = ([], [])
    for table, keys, out in (("limit", LIMIT_KEYS, lists[0]),
                             ("comparison", COMPARISON_KEYS, lists[1])):
        for i, e in enumerate(optional(doc, table, list, where, [])):
            key = f"{table}[{i}]"
            check_keys(e, keys, where, key)
            measure = require(e, "measure", str, where, key)
            if measure not in MEASURES:
                raise ConfigError(where, f"{key}.measure", f"expected one of {', '.join(MEASURES)}")
            upper = optional(e, "upper", (int, float), where, None, key)
            lower = optional(e, "lower", (int, float), where, None, key)
            if upper is None and lower is None:
                raise ConfigError(where, key, "expected upper or lower")
            out.append(Limit(
                nerve=optional(e, "nerve", str, where, "", key),
                kind=require(e, "kind", str, where, key), measure=measure,
                upper=None if upper is None else float(upper),
                lower=None if lower is None else float(lower),
                inclusive=optional(e, "inclusive", bool, where, False, key),
                source=require(e, "source", str, where, key),
                recording=optional(e, "recording", str, where, "", key),
                derivation=optional(e, "derivation", str, where, "", key),
                name=optional(e, "name", str, where, "", key),
                minuend=optional(e, "minuend", str, where, "", key),
                subtrahend=optional(e, "subtrahend", str, where, "", key)))
    return lists


_WORDS = {"distal_latency_ms": ("distal {kind} latency", "ms"), "amplitude_mv": ("{kind} amplitude", "mV"),
          "velocity_m_s": ("{kind} conduction velocity", "m/s"),
          "peak_latency_ms": ("{kind} peak latency", "ms"),
          "onset_latency_ms": ("{kind} onset latency", "ms"),
          "amplitude_uv": ("{kind} amplitude", "µV"), "f_min_latency_ms": ("minimum F latency", "ms")}


def _values(study: dict[str, Any], measure: str) -> list[tuple[float, str]]:
    """(value, where) of ``measure`` in a measured (or true) study."""
    sites = [x for x in study.get("sites", []) if x.get("response", True)]
    first = sites[0] if sites and sites[0] is study.get("sites", [None])[0] else None
    if measure == "distal_latency_ms" and study["kind"] == "motor" and first:
        return [(first["onset_latency_ms"], first["site"])]
    if measure in ("amplitude_mv", "amplitude_uv", "peak_latency_ms", "onset_latency_ms") and first:
        return [(first[measure], first["site"])] if measure in first else []
    if measure == "velocity_m_s":
        return [(seg["velocity_m_s"], f"{seg['from']}–{seg['to']}" if seg.get("to")
                 else seg["from"]) for seg in study.get("segments", [])
                if seg.get("velocity_m_s") is not None]
    if measure == "f_min_latency_ms" and study.get("min_latency_ms") is not None:
        return [(study["min_latency_ms"], study.get("site", ""))]
    return []


def _beyond(value: float, lim: Limit) -> tuple[str, float] | None:
    """(">" or "<", limit) when ``value`` is abnormal against ``lim``."""
    if lim.upper is not None and (value > lim.upper or (lim.inclusive and value == lim.upper)):
        return ("≥" if lim.inclusive else ">"), lim.upper
    if lim.lower is not None and (value < lim.lower or (lim.inclusive and value == lim.lower)):
        return ("≤" if lim.inclusive else "<"), lim.lower
    return None


def flag_studies(studies: list[dict[str, Any]], limits: list[Limit],
                 comparisons: list[Limit]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Flags of measured (or true) studies against ``limits``, and the ``comparisons`` between
    nerves (each with its value and flag)."""
    flags: list[dict[str, Any]] = []
    for st in studies:
        for lim in limits:
            if lim.nerve != st["nerve"] or lim.kind != st["kind"]:
                continue
            for value, where in _values(st, lim.measure):
                hit = _beyond(value, lim)
                if hit:
                    words, unit = _WORDS[lim.measure]
                    text = words.format(kind=KIND_NAMES[st["kind"]])
                    flags.append({"study": st["name"], "nerve": st["nerve"], "side": st["side"],
                                  "measure": lim.measure, "value": value, "limit": hit[1],
                                  "where": where,
                                  "reason": f"{st['nerve']} {text} {value:.3g} {unit} {hit[0]} "
                                            f"{hit[1]:g} {unit} ({where})",
                                  "source": lim.source})
        for site in st.get("sites", []):
            if site.get("response") is False:
                flags.append({"study": st["name"], "nerve": st["nerve"], "side": st["side"],
                              "measure": "response", "value": None, "limit": None,
                              "where": site["site"],
                              "reason": f"{st['name']}: no response at {site['site']}",
                              "source": ""})
    compared: list[dict[str, Any]] = []
    for cmp in comparisons:
        for a in studies:
            if a["kind"] != cmp.kind or a["nerve"] != cmp.minuend:
                continue
            for b in studies:
                if (b["kind"] != cmp.kind or b["nerve"] != cmp.subtrahend
                        or b["side"] != a["side"] or b["channel"] != a["channel"]):
                    continue
                va, vb = _values(a, cmp.measure), _values(b, cmp.measure)
                da, db = a["sites"][0].get("distance_mm"), b["sites"][0].get("distance_mm")
                if not va or not vb or da is None or db is None or abs(da - db) > 5.0:
                    continue
                diff = round(va[0][0] - vb[0][0], 3)
                hit = _beyond(diff, cmp)
                row = {"name": cmp.name, "side": a["side"], "minuend": a["name"],
                       "subtrahend": b["name"], "measure": cmp.measure, "value_ms": diff,
                       "flag": bool(hit), "source": cmp.source}
                compared.append(row)
                if hit:
                    flags.append({"study": f"{a['name']} − {b['name']}", "nerve": f"{a['nerve']}-{b['nerve']}",
                                  "side": a["side"], "measure": f"{cmp.kind}_{cmp.measure}_difference",
                                  "value": diff, "limit": hit[1], "where": a["channel"],
                                  "reason": f"{cmp.name} {diff:.2f} ms {hit[0]} {hit[1]:g} ms",
                                  "source": cmp.source})
    return flags, compared


def patterns(studies: list[dict[str, Any]], flags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Patterns the flags make, per side: ``carpal_tunnel`` (median slowed at the wrist — distal
    motor latency or the median − ulnar sensory difference — with a normal median forearm
    velocity and normal ulnar studies), ``demyelinating`` (latency or velocity flags in two or
    more nerves), ``axonal`` (amplitude flags with no latency or velocity flag)."""
    out: list[dict[str, Any]] = []
    for side in sorted({st["side"] for st in studies}):
        fl = [f for f in flags if f["side"] == side]
        slow = [f for f in fl if f["measure"] in ("distal_latency_ms", "velocity_m_s",
                                                  "peak_latency_ms", "onset_latency_ms",
                                                  "f_min_latency_ms")]
        wrist = [f for f in fl if (f["nerve"] == "median" and f["measure"] == "distal_latency_ms")
                 or f["nerve"] == "median-ulnar"]
        forearm = [f for f in fl if f["nerve"] == "median" and f["measure"] == "velocity_m_s"]
        ulnar = [f for f in fl if f["nerve"] == "ulnar"]
        low = [f for f in fl if f["measure"] in ("amplitude_mv", "amplitude_uv", "response")]
        slow_nerves = sorted({f["nerve"] for f in slow})
        if wrist and not forearm and not ulnar:
            out.append({"pattern": "carpal_tunnel", "side": side,
                        "summary": "focal slowing of the median nerve at the wrist (carpal "
                                   "tunnel pattern): median slowed distally, forearm velocity "
                                   "and ulnar normal",
                        "reasons": [f["reason"] for f in wrist]})
        elif len(slow_nerves) >= 2:
            out.append({"pattern": "demyelinating", "side": side,
                        "summary": f"conduction slowing in {len(slow_nerves)} nerves "
                                   f"({', '.join(slow_nerves)}): demyelinating pattern",
                        "reasons": [f["reason"] for f in slow]})
        elif low and not slow:
            out.append({"pattern": "axonal", "side": side,
                        "summary": "low amplitudes with normal latencies and velocities: "
                                   "axonal pattern",
                        "reasons": [f["reason"] for f in low]})
    return out


def expected_flags(truth: dict[str, Any]) -> set[tuple[str, str]]:
    """(nerve, measure) pairs the true values of a simulated study call for (used by the
    simulator's ground truth)."""
    limits, comparisons = load_references()
    flags, _ = flag_studies(list(truth.values()), limits, comparisons)
    return {(f["nerve"], f["measure"]) for f in flags}


def stimuli_by_site(events: list[Any]) -> dict[str, list[int]]:
    """Site label → file indices of the ``stimulus`` events that carry a ``site``."""
    out: dict[str, list[int]] = {}
    for e in events:
        if e.kind == "stimulus" and e.data.get("site"):
            out.setdefault(str(e.data["site"]), []).append(int(e.start))
    return out


def analyze(description_path: str | Path, references: str | Path | None = None) -> dict[str, Any]:
    """Measure every study of a study description and flag it; the JSON document of ``ncs``.

    Raises:
        ConfigError: the description is malformed (distance ≤ 0, unknown key, ...).
        NcsError: a site without stimuli, no stimuli at all, a missing channel, a sweep beyond
            the end of the recording.
        RecordingError: the recording is missing, foreign, truncated or corrupt.
    """
    from ionm_station.recording import open_recording

    desc = load_description(description_path)
    limits, comparisons = load_references(references)
    where = str(desc.path)
    with open_recording(desc.recording) as rec:
        by_site = stimuli_by_site(rec.events)
        if not by_site:
            kinds = sum(1 for e in rec.events if e.kind == "stimulus")
            raise NcsError(f"{desc.recording}: no stimulus events with a site "
                           f"({kinds} stimulus events in all); a nerve conduction study needs "
                           "every stimulus recorded with the site it was given at")
        studies = [measure_study(st, rec, by_site, where) for st in desc.studies]
        fs = rec.info.sample_rate_hz
    flags, compared = flag_studies(studies, limits, comparisons)
    return {"description": str(desc.path), "recording": str(desc.recording),
            "sample_rate_hz": fs, "studies": studies, "comparisons": compared,
            "flags": flags, "patterns": patterns(studies, flags),
            "references": REFERENCE_FILE if references is None else str(references)}
