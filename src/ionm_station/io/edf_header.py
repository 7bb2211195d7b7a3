"""Check an EDF/EDF+/BDF header field by field before the file is read, in plain words.

Every problem is one :class:`SignalFileError` line naming the file, the field (as the EDF
specification calls it, with the signal's number and label for per-signal fields), what was
found and what is allowed, e.g. ``case.edf: header field "number of data records" is "-5";
expected a whole number ≥ 0``. The checks follow the EDF specification (Kemp et al. 1992) and
EDF+ (Kemp & Olivan 2003); BDF differs only in 3-byte samples and 24-bit digital limits.

What is refused: a header cut short; a numeric field that is not a number (or not a whole one
where the specification asks for one); a start date or time that is not ``dd.mm.yy`` /
``hh.mm.ss``; a header record size that does not match the number of signals; no signals; a record
duration ≤ 0; a record count of ``-1`` (the writer never finished the file) or below; EDF+D
(discontinuous records: reading them as one stream would join pieces of signal); a signal with
no samples per record; digital limits outside the format's range or not increasing; physical
minimum = maximum (the samples cannot be calibrated); data shorter than the header announces
(truncated) or longer (the header's record count is wrong).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ionm_station.errors import IonmError, shown

#: Bytes of the fixed part of the header; each signal adds the same again.
FIXED_BYTES = 256
#: Labels of the EDF+/BDF+ annotation signals (their calibration is not used).
ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")
#: Digital sample range of each format.
DIGITAL_RANGE = {"edf": (-32768, 32767), "bdf": (-8388608, 8388607)}
BYTES_PER_SAMPLE = {"edf": 2, "bdf": 3}

#: The fixed header fields in file order: (name in the EDF specification, width in bytes).
FIXED_FIELDS = (("version", 8), ("local patient identification", 80),
                ("local recording identification", 80), ("start date", 8), ("start time", 8),
                ("number of bytes in header record", 8), ("reserved", 44),
                ("number of data records", 8), ("data record duration", 8),
                ("number of signals", 4))
#: The per-signal fields in file order (each stored for all signals, then the next field).
SIGNAL_FIELDS = (("label", 16), ("transducer type", 80), ("physical dimension", 8),
                 ("physical minimum", 8), ("physical maximum", 8), ("digital minimum", 8),
                 ("digital maximum", 8), ("prefiltering", 80), ("samples per data record", 8),
                 ("reserved", 32))
_CLOCK = re.compile(r"^(\d\d)\.(\d\d)\.(\d\d)$")


class SignalFileError(IonmError):
    """A signal file is missing, truncated, corrupt or of a kind we cannot read."""


class _Fields:
    """Reads fields of a header at :attr:`pos`, each problem one line naming ``where`` (the
    file, and the signal for per-signal fields) and the field."""

    def __init__(self, where: str, raw: bytes) -> None:
        self.where = where
        self.raw = raw
        self.pos = 0

    def text(self, width: int) -> str:
        """The next ``width`` bytes as text (any bytes: free-text fields)."""
        chunk = self.raw[self.pos:self.pos + width]
        self.pos += width
        return chunk.decode("latin-1").strip()

    def fail(self, name: str, found: str, allowed: str) -> SignalFileError:
        return SignalFileError(f'{self.where}: header field "{name}" is "{shown(found)}"; '
                               f"expected {allowed}")

    def ascii(self, name: str, width: int) -> str:
        chunk = self.raw[self.pos:self.pos + width]
        value = self.text(width)
        if any(not 32 <= b < 127 for b in chunk):
            raise self.fail(name, chunk.decode("latin-1").strip(), "printable ASCII")
        return value

    def whole(self, name: str, width: int, lo: int, allowed: str) -> int:
        value = self.ascii(name, width)
        try:
            n = int(value)
        except ValueError:
            raise self.fail(name, value, allowed) from None
        if n < lo:
            raise self.fail(name, value, allowed)
        return n

    def number(self, name: str, width: int) -> float:
        value = self.ascii(name, width)
        try:
            x = float(value)
        except ValueError:
            raise self.fail(name, value, "a number") from None
        if not math.isfinite(x):
            raise self.fail(name, value, "a finite number")
        return x


def _check_clock(fields: _Fields, name: str, ranges: tuple[tuple[int, int], ...],
                 form: str) -> None:
    """A ``dd.mm.yy`` date or ``hh.mm.ss`` time: three two-digit numbers within ``ranges``."""
    value = fields.ascii(name, 8)
    m = _CLOCK.match(value)
    if not m or not all(lo <= int(v) <= hi for v, (lo, hi) in zip(m.groups(), ranges)):
        raise fields.fail(name, value, form)


def check_header(path: Path, kind: str) -> None:
    """Check the header of the EDF (``kind == "edf"``) or BDF file ``path`` and that the file
    holds the data it announces; :class:`SignalFileError` (one line) on the first problem."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        fixed = f.read(FIXED_BYTES)
        if len(fixed) < FIXED_BYTES:
            raise SignalFileError(f"{path}: truncated header: the file has {size} bytes, the "
                                  f"fixed part of an EDF/BDF header alone is {FIXED_BYTES}")
        h = _Fields(str(path), fixed)
        h.pos = field_offset("start date")  # before it: the version and free text
        _check_clock(h, "start date", ((1, 31), (1, 12), (0, 99)), "dd.mm.yy (day.month.year)")
        _check_clock(h, "start time", ((0, 23), (0, 59), (0, 59)),
                     "hh.mm.ss (hours.minutes.seconds)")
        header_bytes_text = h.ascii("number of bytes in header record", 8)
        reserved = h.text(44)
        if reserved.startswith(("EDF+D", "BDF+D")):
            raise SignalFileError(f'{path}: header field "reserved" is "{reserved[:5]}": a '
                                  "discontinuous EDF+/BDF+ file (its data records have gaps in "
                                  "time) is not supported; convert it to EDF+C")
        records_text = h.ascii("number of data records", 8)
        record_s = h.number("data record duration", 8)
        ns = h.whole("number of signals", 4, 1, "a whole number ≥ 1")
        header_bytes = FIXED_BYTES * (ns + 1)
        if header_bytes_text != str(header_bytes):
            raise h.fail("number of bytes in header record", header_bytes_text,
                         f"{header_bytes} (256 bytes × (1 + {ns} signals))")
        if records_text == "-1":
            raise SignalFileError(f'{path}: header field "number of data records" is "-1": the '
                                  "file was never finished (its writer stopped before writing "
                                  "the count)")
        try:
            n_records = int(records_text)
        except ValueError:
            n_records = -2
        if n_records < 0:
            raise h.fail("number of data records", records_text, "a whole number ≥ 0")
        if record_s <= 0:
            raise h.fail("data record duration", f"{record_s:g}", "a positive number of seconds")
        signals = f.read(header_bytes - FIXED_BYTES)
    if len(signals) < header_bytes - FIXED_BYTES:
        raise SignalFileError(f"{path}: truncated header: {ns} signals need {header_bytes} "
                              f"header bytes, the file has {size}")
    _check_signals(path, kind, signals, ns, n_records, size)


def _check_signals(path: Path, kind: str, raw: bytes, ns: int, n_records: int,
                   size: int) -> None:
    """The per-signal fields (``raw``: the header after its fixed part) and the data size."""
    s = _Fields(str(path), raw)
    labels = [s.text(16) for _ in range(ns)]
    lo_digital, hi_digital = DIGITAL_RANGE[kind]
    per_record = []
    for i, label in enumerate(labels):
        which = f"signal {i + 1} ({shown(label) or 'no label'})"
        field = _Fields(f"{path}: {which}", raw)
        values: dict[str, float] = {}
        for name in ("physical minimum", "physical maximum"):
            field.pos = field_offset(name, ns, i) - FIXED_BYTES
            values[name] = field.number(name, 8)
        for name in ("digital minimum", "digital maximum"):
            field.pos = field_offset(name, ns, i) - FIXED_BYTES
            values[name] = field.whole(name, 8, lo_digital,
                                       f"a whole number from {lo_digital} to {hi_digital}")
            if values[name] > hi_digital:
                raise field.fail(name, str(values[name]),
                                 f"a whole number from {lo_digital} to {hi_digital}")
        field.pos = field_offset("samples per data record", ns, i) - FIXED_BYTES
        per_record.append(field.whole("samples per data record", 8, 1, "a whole number ≥ 1"))
        if label in ANNOTATION_LABELS:
            continue
        d_min, d_max = values["digital minimum"], values["digital maximum"]
        if d_min == d_max:
            raise SignalFileError(f"{path}: {which}: digital minimum = digital maximum "
                                  f"({d_min:g}): its samples cannot be calibrated")
        if d_min > d_max:
            raise SignalFileError(f"{path}: {which}: digital minimum ({d_min:g}) is above the "
                                  f"digital maximum ({d_max:g})")
        if values["physical minimum"] == values["physical maximum"]:
            raise SignalFileError(f"{path}: {which}: physical minimum = physical maximum "
                                  f"({values['physical minimum']:g}): its samples cannot be "
                                  "calibrated")
    record_bytes = sum(per_record) * BYTES_PER_SAMPLE[kind]
    header_bytes = FIXED_BYTES * (ns + 1)
    have = (size - header_bytes) / record_bytes
    if have < n_records:
        raise SignalFileError(f"{path}: truncated: the header announces {n_records} data "
                              f"records of {record_bytes} bytes, the file holds only {have:.2f}")
    if have > n_records:
        raise SignalFileError(f"{path}: the file holds {have:g} data records of {record_bytes} "
                              f"bytes but its header announces {n_records} (header field "
                              '"number of data records" is wrong)')


def field_offset(name: str, ns: int = 0, signal: int = 0) -> int:
    """Byte offset in the file of the fixed field ``name``, or of signal ``signal``'s field
    ``name`` in a header of ``ns`` signals."""
    pos = 0
    for field, width in FIXED_FIELDS:
        if field == name:
            return pos
        pos += width
    for field, width in SIGNAL_FIELDS:
        if field == name:
            return pos + signal * width
        pos += width * ns
    raise KeyError(name)
