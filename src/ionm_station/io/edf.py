"""EDF / EDF+ / BDF exchange through ``edfio`` (a maintained, pure-Python EDF library).

Signals are returned samples × channels in µV. Only signals sampled at the file's highest
rate are kept (EMG); slower ones (e.g. a temperature channel) and the EDF+ annotation signal
are skipped and named in ``skipped``.
"""

from __future__ import annotations

import datetime
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import edfio
import numpy as np

from ionm_station.errors import IonmError

#: Duration of one EDF data record (s) in files we write.
RECORD_S = 0.1
#: Factor from each physical dimension spelling to µV.
UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3, "": 1.0}


class SignalFileError(IonmError):
    """A signal file is missing, truncated, corrupt or of a kind we cannot read."""


@dataclass
class EdfContent:
    """Signals and annotations read from an EDF/BDF file.

    Attributes:
        sample_rate_hz: rate of the kept signals (Hz).
        labels: kept signal labels, in file order.
        data: float32 (n_samples, n_channels) µV.
        range_uv: smallest physical range (± µV) of the kept signals: where they saturate.
        annotations: (onset_s, duration_s or None, text) from EDF+ annotations.
        skipped: labels of signals not kept, with the reason.
    """

    sample_rate_hz: float
    labels: list[str]
    data: np.ndarray
    range_uv: float
    annotations: list[tuple[float, float | None, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def edf_kind(path: Path) -> str | None:
    """``"edf"`` or ``"bdf"`` from the first header bytes (``0`` + spaces, ``\\xffBIOSEMI``), else None."""
    with open(path, "rb") as f:
        head = f.read(8)
    return {b"0       ": "edf", b"\xffBIOSEMI": "bdf"}.get(head)


def _open(path: Path) -> edfio.Edf:
    if not path.is_file():
        raise SignalFileError(f"{path}: file not found")
    kind = edf_kind(path)
    if kind is None:
        raise SignalFileError(f"{path}: not an EDF or BDF file (unknown header)")
    reader = edfio.read_bdf if kind == "bdf" else edfio.read_edf
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            edf = reader(path)
        except Exception as exc:  # edfio raises ValueError, IndexError, UnicodeDecodeError, ...
            raise SignalFileError(f"{path}: corrupt EDF/BDF file ({exc})") from None
    for w in caught:  # edfio reads a short file with a warning; for us that is an error
        if "truncated" in str(w.message).lower() or "data records" in str(w.message):
            raise SignalFileError(f"{path}: truncated EDF/BDF file ({w.message})")
    return edf


def read_edf(path: str | Path) -> EdfContent:
    """Read an EDF, EDF+ or BDF file; problems raise :class:`SignalFileError` (one line)."""
    path = Path(path)
    edf = _open(path)
    signals = list(edf.signals)
    if not signals:
        raise SignalFileError(f"{path}: holds no signals")
    fs = max(s.sampling_frequency for s in signals)
    kept, skipped = [], []
    for s in signals:
        unit = s.physical_dimension.strip().lower()
        if s.sampling_frequency != fs:
            skipped.append(f"{s.label} ({s.sampling_frequency:g} Hz)")
        elif unit not in UNIT_TO_UV:
            skipped.append(f"{s.label} (unit {s.physical_dimension!r})")
        else:
            kept.append((s, UNIT_TO_UV[unit]))
    if not kept:
        raise SignalFileError(f"{path}: no signal in µV/mV/V at a common rate")
    n = min(len(s.data) for s, _ in kept)
    data = np.empty((n, len(kept)), dtype=np.float32)
    for i, (s, scale) in enumerate(kept):
        data[:, i] = s.data[:n] * scale
    range_uv = min(max(abs(s.physical_min), abs(s.physical_max)) * scale for s, scale in kept)
    annotations = [(a.onset, a.duration, a.text) for a in edf.annotations]
    return EdfContent(float(fs), [s.label for s, _ in kept], data, float(range_uv), annotations,
                      skipped)


def write_edf(path: str | Path, sample_rate_hz: float, labels: list[str], data_uv: np.ndarray,
              annotations: list[tuple[float, float | None, str]] = (),
              range_uv: float | None = None) -> None:
    """Write an EDF+ file: one µV signal per column of ``data_uv``, annotations as EDF+ TAL.

    The file holds whole 0.1 s data records: the end is padded with < 0.1 s of zeros.
    ``range_uv`` sets the physical range ± µV (default: the data's own maximum, so 16-bit
    quantisation is as fine as the data allow). NaN (gaps) are written as 0 µV; the caller
    annotates gaps.
    """
    data = np.nan_to_num(np.asarray(data_uv, dtype=np.float64))
    peak = float(np.abs(data).max()) if data.size else 1.0
    r = range_uv if range_uv is not None else max(peak, 1.0)
    per_record = int(round(sample_rate_hz * RECORD_S))
    if abs(per_record - sample_rate_hz * RECORD_S) > 1e-9:
        raise ValueError(f"EDF export needs a rate with whole samples per {RECORD_S} s record, "
                         f"got {sample_rate_hz} Hz")
    pad = -data.shape[0] % per_record  # EDF holds whole data records: pad < 0.1 s with zeros
    data = np.concatenate([data, np.zeros((pad, data.shape[1]))])
    signals = [
        edfio.EdfSignal(np.clip(data[:, i], -r, r), sample_rate_hz, label=lab[:16],
                        physical_dimension="uV", physical_range=(-r, r), transducer_type="EMG")
        for i, lab in enumerate(labels)
    ]
    edf = edfio.Edf(signals, starttime=datetime.time(0, 0, 0), data_record_duration=RECORD_S,
                    annotations=[edfio.EdfAnnotation(o, d, t) for o, d, t in annotations])
    edf.write(path)
