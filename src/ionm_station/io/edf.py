"""EDF / EDF+ / BDF exchange through ``edfio`` (a maintained, pure-Python EDF library).

Signals are returned samples × channels in µV. Only signals sampled at the file's highest
rate are kept (EMG); slower ones (e.g. a temperature channel) and the EDF+ annotation signal
are skipped and named in ``skipped``.
"""

from __future__ import annotations

import datetime
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import edfio
import numpy as np

from ionm_station.errors import input_problem
from ionm_station.io.edf_header import SignalFileError, check_header

#: Duration of one EDF data record (s) in files we write.
RECORD_S = 0.1
#: Factor from each physical dimension spelling to µV.
UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3, "": 1.0}


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
    """Check the file and its header (:func:`~.edf_header.check_header`), then read it."""
    problem = input_problem(path)
    if problem:
        raise SignalFileError(f"{path}: {problem}")
    kind = edf_kind(path)
    if kind is None:
        raise SignalFileError(f"{path}: not an EDF or BDF file (unknown header)")
    check_header(path, kind)
    reader = edfio.read_bdf if kind == "bdf" else edfio.read_edf
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # text fields in Latin-1: a name with an accent must not make the file unreadable
            edf = reader(path, header_encoding="latin-1")
        except Exception as exc:  # what the header check cannot see (e.g. a broken EDF+ TAL)
            raise SignalFileError(f"{path}: corrupt EDF/BDF file ({exc})") from None
    if caught:  # a doubt edfio would only print: for us it is an error
        raise SignalFileError(f"{path}: {caught[0].message}")
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
    try:  # edfio parses the EDF+ annotation signal only now
        annotations = [(a.onset, a.duration, a.text) for a in edf.annotations]
    except ValueError as exc:
        raise SignalFileError(f"{path}: corrupt EDF+ annotations ({exc})") from None
    return EdfContent(float(fs), [s.label for s, _ in kept], data, float(range_uv), annotations,
                      skipped)


#: Label of the EDF+ annotation signal.
ANNOTATION_LABEL = "EDF Annotations"
#: Bytes reserved for the time-keeping TAL of each data record ("+<seconds>" \x14\x14\x00).
_TK_BYTES = 24
_DIGITAL_MIN, _DIGITAL_MAX = -32768, 32767
#: Samples per channel converted to 16 bits at a time (bounds the writer's own memory).
_BATCH_SAMPLES = 10_000


def _ascii(text: str, width: int) -> bytes:
    """``text`` as printable ASCII (others → ``_``), cut or space-padded to ``width`` bytes."""
    clean = "".join(c if 32 <= ord(c) < 127 else "_" for c in str(text))
    return clean.encode("ascii")[:width].ljust(width)


def edf_label(label: str) -> str:
    """``label`` as the EDF header of files we write holds it (16 printable ASCII characters)."""
    return _ascii(label, 16).decode("ascii").strip()


def _number(x: float) -> str:
    """A number as EDF header text: shortest decimal form, no exponent."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _physical_max_text(r: float) -> str:
    """Header text (≤ 7 characters, so ``-`` fits in 8) for a physical maximum ≥ ``r`` > 0."""
    whole = len(str(int(r)))
    if whole > 7:
        raise ValueError(f"physical range ±{r:g} does not fit an EDF header field")
    for decimals in range(max(0, 6 - whole), -1, -1):
        step = 10.0 ** -decimals
        s = f"{math.ceil(r / step - 1e-9) * step:.{decimals}f}"
        if len(s) <= 7:
            return s
    return str(math.ceil(r))


def _onset_text(seconds: float) -> str:
    return ("-" if seconds < 0 else "+") + _number(abs(seconds))


def _tal(onset_s: float, duration_s: float | None, text: str) -> bytes:
    """One EDF+ TAL: ``+onset[\\x15duration]\\x14text\\x14\\x00`` (text UTF-8, no separators)."""
    clean = "".join(" " if c in "\x00\x14\x15" or ord(c) < 32 else c for c in text)
    head = _onset_text(onset_s)
    if duration_s is not None and duration_s > 0:
        head += "\x15" + _number(duration_s)
    return (head + "\x14" + clean + "\x14").encode("utf-8") + b"\x00"


def record_duration(sample_rate_hz: float) -> float:
    """0.1 s if that holds whole samples at ``sample_rate_hz``, else 1 s; ValueError if neither."""
    for record_s in (RECORD_S, 1.0):
        n = sample_rate_hz * record_s
        if n >= 1 and abs(n - round(n)) < 1e-9:
            return record_s
    raise ValueError(f"EDF export needs a rate with whole samples per {RECORD_S} s or 1 s "
                     f"record, got {sample_rate_hz} Hz")


class EdfWriter:
    """Streaming EDF+C writer: memory stays bounded whatever the recording length.

    The header is written at once with ``-1`` data records (EDF+ "unknown") and patched at
    :meth:`close`. :meth:`write` takes (n, n_channels) µV blocks of any length; whole data
    records go to disk at once, the rest (< one record) waits for the next block. Samples
    are 16-bit: physical range ± ``range_uv`` (the header's 8-character text, rounded up),
    quantisation step 2 × range / 65535; values beyond it are clipped, NaN written as 0
    (callers annotate gaps).

    The last signal is ``EDF Annotations``: every data record starts with its time-keeping
    TAL; event annotations (known up front, any order) go into the record holding their onset
    or, when that one is full, the next ones with room. Its size per record is chosen so all
    annotations fit in ``n_samples`` samples (pass it for an exact fit; without it the
    records up to the last onset are assumed). :meth:`close` raises ValueError if fewer
    samples were written than the annotations needed.

    Args:
        path: output file (overwritten).
        sample_rate_hz: rate of every signal; needs whole samples per 0.1 s (else 1 s) record.
        labels: signal labels (cut to 16 ASCII characters).
        range_uv: physical range ± µV.
        annotations: (onset_s, duration_s or None, text).
        n_samples: samples per channel that will be written (sizes the annotation signal).
        patient: EDF+ local patient identification ("code sex birthdate name", "X" unknown).
        recording: EDF+ local recording identification ("Startdate dd-MMM-yyyy admin tech equipment").
        start: start date and time; None → 01.01.85 00.00.00 (unknown / de-identified).
        transducer: transducer type of every signal.
    """

    def __init__(self, path: str | Path, sample_rate_hz: float, labels: list[str],
                 range_uv: float, annotations: list[tuple[float, float | None, str]] = (),
                 n_samples: int | None = None, patient: str = "X X X X",
                 recording: str = "Startdate X X X X", start: datetime.datetime | None = None,
                 transducer: str = "EMG") -> None:
        if not labels:
            raise ValueError("EDF export needs at least one signal")
        if not range_uv > 0:
            raise ValueError(f"physical range must be > 0, got {range_uv}")
        self.path = Path(path)
        self.sample_rate_hz = float(sample_rate_hz)
        self.record_s = record_duration(self.sample_rate_hz)
        self.per_record = round(self.sample_rate_hz * self.record_s)
        self.n_channels = len(labels)
        max_text = _physical_max_text(float(range_uv))
        self.range_uv = float(max_text)
        self._scale = (_DIGITAL_MAX - _DIGITAL_MIN) / (2 * self.range_uv)
        tals = sorted(((float(o), d, str(t)) for o, d, t in annotations), key=lambda a: a[0])
        self._tals = [(self._record_of(o), _tal(o, d, t)) for o, d, t in tals]
        if n_samples is not None:
            n_records = max(1, -(-int(n_samples) // self.per_record))
            # an onset beyond the end is kept (true onset) but stored in the last record
            self._tals = [(min(r, n_records - 1), tal) for r, tal in self._tals]
        else:
            n_records = max([1] + [r + 1 for r, _ in self._tals])
        self.annotation_bytes = self._annotation_bytes(n_records)
        self._next_tal = 0  # first of self._tals not yet written
        self.n_records = 0
        self.n_samples = 0
        self._carry = np.empty((0, self.n_channels), dtype=np.float32)
        self._file = open(self.path, "wb")  # noqa: SIM115 - held across write() calls
        try:
            self._file.write(self._header(labels, max_text, patient, recording, start, transducer))
        except BaseException:
            self._file.close()
            raise

    # -- layout -------------------------------------------------------------------------------

    def _record_of(self, onset_s: float) -> int:
        return max(0, math.floor(onset_s / self.record_s + 1e-9))

    def _left_over(self, free: int, n_records: int) -> int:
        """How many TALs do not fit in ``n_records`` records of ``free`` bytes each, placed
        in order as :meth:`_annotation_record` does (own record, else the next with room)."""
        used: dict[int, int] = {}
        cursor = 0
        for i, (r, tal) in enumerate(self._tals):
            r = max(r, cursor)
            while used.get(r, 0) + len(tal) > free:
                r += 1
            if r >= n_records:
                return len(self._tals) - i
            used[r] = used.get(r, 0) + len(tal)
            cursor = r
        return 0

    def _annotation_bytes(self, n_records: int) -> int:
        """Bytes per record (even) of the annotation signal so every TAL fits in ``n_records``."""
        if not self._tals:
            return _TK_BYTES
        lengths = [len(t) for _, t in self._tals]
        free = max(max(lengths), -(-sum(lengths) // n_records))
        while self._left_over(free, n_records):
            free = int(free * 1.25) + 2
        total = _TK_BYTES + free
        return total + total % 2

    def _header(self, labels: list[str], max_text: str, patient: str, recording: str,
                start: datetime.datetime | None, transducer: str) -> bytes:
        ns = self.n_channels + 1
        date = start.strftime("%d.%m.%y") if start else "01.01.85"
        time = start.strftime("%H.%M.%S") if start else "00.00.00"
        head = (_ascii("0", 8) + _ascii(patient, 80) + _ascii(recording, 80) + _ascii(date, 8)
                + _ascii(time, 8) + _ascii(str(256 * (ns + 1)), 8) + _ascii("EDF+C", 44)
                + _ascii("-1", 8) + _ascii(_number(self.record_s), 8) + _ascii(str(ns), 4))
        sig = [(lab, transducer, "uV", "-" + max_text, max_text, self.per_record)
               for lab in labels]
        sig.append((ANNOTATION_LABEL, "", "", "-1", "1", self.annotation_bytes // 2))
        fields = [
            [_ascii(s[0], 16) for s in sig], [_ascii(s[1], 80) for s in sig],
            [_ascii(s[2], 8) for s in sig], [_ascii(s[3], 8) for s in sig],
            [_ascii(s[4], 8) for s in sig], [_ascii(str(_DIGITAL_MIN), 8)] * ns,
            [_ascii(str(_DIGITAL_MAX), 8)] * ns, [_ascii("", 80)] * ns,
            [_ascii(str(s[5]), 8) for s in sig], [_ascii("", 32)] * ns,
        ]
        out = head + b"".join(b"".join(f) for f in fields)
        assert len(out) == 256 * (ns + 1)
        return out

    # -- writing ------------------------------------------------------------------------------

    def write(self, block_uv: np.ndarray) -> None:
        """Append (n, n_channels) µV samples; whole data records are written at once."""
        block = np.asarray(block_uv, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != self.n_channels:
            raise ValueError(f"expected (n, {self.n_channels}) samples, got {block.shape}")
        self.n_samples += block.shape[0]
        if self._carry.shape[0]:
            block = np.concatenate([self._carry, block])
        whole = block.shape[0] // self.per_record * self.per_record
        if whole:
            self._write_records(block[:whole])
        self._carry = block[whole:].copy()

    def _digital(self, x: np.ndarray) -> np.ndarray:
        d = x.astype(np.float64)  # a copy: the in-place steps below leave ``x`` alone
        np.nan_to_num(d, copy=False, nan=0.0, posinf=self.range_uv, neginf=-self.range_uv)
        d += self.range_uv
        d *= self._scale
        d += _DIGITAL_MIN
        np.rint(d, out=d)
        np.clip(d, _DIGITAL_MIN, _DIGITAL_MAX, out=d)
        return d.astype("<i2")

    def _annotation_record(self, index: int) -> bytes:
        out = (_onset_text(index * self.per_record / self.sample_rate_hz)).encode("ascii") \
            + b"\x14\x14\x00"
        while self._next_tal < len(self._tals):
            r, tal = self._tals[self._next_tal]
            if r > index or len(out) + len(tal) > self.annotation_bytes:
                break
            out += tal
            self._next_tal += 1
        return out.ljust(self.annotation_bytes, b"\x00")

    def _write_records(self, samples: np.ndarray) -> None:
        """Write whole records, about :data:`_BATCH_SAMPLES` samples per channel at a time."""
        batch = max(1, _BATCH_SAMPLES // self.per_record) * self.per_record
        for i in range(0, samples.shape[0], batch):
            part = samples[i:i + batch]
            k = part.shape[0] // self.per_record
            # (k, per_record, ch) → (k, ch, per_record): each record holds signal after signal
            digital = self._digital(part).reshape(k, self.per_record, self.n_channels)
            digital = np.ascontiguousarray(digital.transpose(0, 2, 1)).reshape(k, -1)
            notes = np.frombuffer(b"".join(self._annotation_record(self.n_records + j)
                                           for j in range(k)), dtype=np.uint8).reshape(k, -1)
            self._file.write(np.concatenate([digital.view(np.uint8), notes], axis=1).data)
            self.n_records += k

    def close(self) -> None:
        """Pad the last record with zeros (< one record), write the record count, close.

        Raises:
            ValueError: annotations were left over (fewer samples written than announced).
        """
        if self._file.closed:
            return
        try:
            if self._carry.shape[0] or self.n_records == 0:
                pad = np.zeros((self.per_record - self._carry.shape[0], self.n_channels),
                               dtype=np.float32)
                self._write_records(np.concatenate([self._carry, pad]))
                self._carry = self._carry[:0]
            left = len(self._tals) - self._next_tal
            self._file.seek(236)
            self._file.write(_ascii(str(self.n_records), 8))
        finally:
            self._file.close()
        if left:
            raise ValueError(f"{left} annotation(s) did not fit in {self.n_records} EDF data "
                             f"records (onset beyond the end, or n_samples too small)")

    def abort(self) -> None:
        """Close the file without finishing it (after an error; the header keeps -1 records)."""
        self._file.close()

    def __enter__(self) -> EdfWriter:  # noqa: PYI034 - not meant to be subclassed
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_edf(path: str | Path, sample_rate_hz: float, labels: list[str], data_uv: np.ndarray,
              annotations: list[tuple[float, float | None, str]] = (),
              range_uv: float | None = None) -> None:
    """Write an EDF+ file: one µV signal per column of ``data_uv``, annotations as EDF+ TAL.

    The file holds whole data records (0.1 s, or 1 s when 0.1 s is no whole number of
    samples): the end is padded with zeros. ``range_uv`` sets the physical range ± µV
    (default: the data's own maximum, so 16-bit quantisation is as fine as the data allow).
    NaN (gaps) are written as 0 µV; the caller annotates gaps. Uses :class:`EdfWriter`.
    """
    data = np.asarray(data_uv)
    if range_uv is None:
        finite = np.abs(data[np.isfinite(data)]) if data.size else np.zeros(0)
        range_uv = max(float(finite.max()) if finite.size else 0.0, 1.0)
    with EdfWriter(path, sample_rate_hz, labels, range_uv, annotations,
                   n_samples=len(data)) as writer:
        step = writer.per_record * 100
        for i in range(0, data.shape[0], step):
            writer.write(data[i:i + step])
