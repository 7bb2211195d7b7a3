"""The IONM serial amplifier wire protocol: a pure frame encoder and streaming decoder (no I/O).

A frame (all integers little-endian; full specification in ``docs/serial-protocol.md``)::

    offset size field
    0      2    sync word A5 5A
    2      1    protocol version (1)
    3      1    flags: bit 0 stimulus, bit 1 trigger input; bits 2–7 zero
    4      2    frame sequence number, wraps 65535 → 0
    6      1    channel count C (1–64)
    7      1    samples per channel S in this frame (1–255)
    8      8    lead-off bits, bit c = channel c has lost electrode contact
    16     1    sample offset (0 … S-1) of the stimulus / trigger in this frame
    17     1    reserved, zero
    18     2    stimulus current in units of 0.01 mA
    20     3·S·C samples, sample-major (s0c0, s0c1, …), 24-bit signed, in ADC steps (LSB)
    20+3SC 4    CRC-32 (IEEE 802.3, as zlib.crc32) of bytes 0 … 19+3SC

:class:`FrameDecoder` turns any byte stream into frames: it hunts for the sync word, checks the
header, waits for the whole frame, checks the CRC, and turns jumps of the sequence number into
a count of dropped samples carried by the next good frame. It never raises on any input.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

SYNC = b"\xa5\x5a"
VERSION = 1
HEADER = struct.Struct("<2sBBHBBQBBH")
HEADER_SIZE = HEADER.size  # 20 bytes
CRC_SIZE = 4
BYTES_PER_SAMPLE = 3
MAX_CHANNELS = 64
MAX_SAMPLES_PER_FRAME = 255
SEQUENCE_MODULUS = 1 << 16
FLAG_STIMULUS = 0x01
FLAG_TRIGGER = 0x02
KNOWN_FLAGS = FLAG_STIMULUS | FLAG_TRIGGER
#: Largest 24-bit sample value; the smallest is ``-SAMPLE_MAX - 1``.
SAMPLE_MAX = (1 << 23) - 1
#: Stimulus current resolution on the wire: steps per mA (0.01 mA steps).
CURRENT_STEPS_PER_MA = 100


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        sequence: frame sequence number (0–65535, wraps).
        samples: int32 array (n_samples, n_channels) in ADC steps (LSB); × ``uv_per_lsb`` → µV.
        lead_off: bit c set = channel c has no electrode contact during this frame.
        flags: :data:`FLAG_STIMULUS` / :data:`FLAG_TRIGGER` bits.
        event_offset: sample offset in this frame of the stimulus or trigger (0 … n_samples-1).
        current_ma: stimulus current (mA, 0.01 mA resolution); 0 without a stimulus.
        dropped_before: samples per channel lost between the previous good frame and this one
            (from the sequence gap × this frame's ``n_samples``); 0 for the first frame.
    """

    sequence: int
    samples: np.ndarray
    lead_off: int = 0
    flags: int = 0
    event_offset: int = 0
    current_ma: float = 0.0
    dropped_before: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[1])


def frame_size(n_channels: int, n_samples: int) -> int:
    """Bytes on the wire of a frame with ``n_channels`` × ``n_samples``."""
    return HEADER_SIZE + BYTES_PER_SAMPLE * n_channels * n_samples + CRC_SIZE


def encode_frame(sequence: int, samples: np.ndarray, lead_off: int = 0, flags: int = 0,
                 event_offset: int = 0, current_ma: float = 0.0) -> bytes:
    """One frame on the wire.

    Args:
        sequence: frame number; taken modulo 65536.
        samples: integer array (n_samples, n_channels) in ADC steps, each in the 24-bit range.
        lead_off: channel bit mask (bit c = channel c off).
        flags: :data:`FLAG_STIMULUS` and/or :data:`FLAG_TRIGGER`.
        event_offset: sample offset of the stimulus/trigger within the frame.
        current_ma: stimulus current (mA), 0–655.35, sent in 0.01 mA steps.

    Raises:
        ValueError: shape, value or field out of range.
    """
    samples = np.asarray(samples)
    if samples.ndim != 2 or not (1 <= samples.shape[0] <= MAX_SAMPLES_PER_FRAME
                                 and 1 <= samples.shape[1] <= MAX_CHANNELS):
        raise ValueError(f"samples must be (1–{MAX_SAMPLES_PER_FRAME}, 1–{MAX_CHANNELS}), "
                         f"got shape {samples.shape}")
    n_samples, n_channels = samples.shape
    values = samples.astype(np.int64)
    if values.size and (values.min() < -SAMPLE_MAX - 1 or values.max() > SAMPLE_MAX):
        raise ValueError("samples exceed the 24-bit range")
    if not 0 <= event_offset < n_samples:
        raise ValueError(f"event_offset must be 0–{n_samples - 1}, got {event_offset}")
    if flags & ~KNOWN_FLAGS or not 0 <= lead_off < (1 << n_channels):
        raise ValueError(f"bad flags {flags:#x} or lead-off mask {lead_off:#x}")
    current = round(current_ma * CURRENT_STEPS_PER_MA)
    if not 0 <= current <= 0xFFFF:
        raise ValueError(f"stimulus current must be 0–655.35 mA, got {current_ma}")
    header = HEADER.pack(SYNC, VERSION, flags, sequence % SEQUENCE_MODULUS, n_channels,
                         n_samples, lead_off, event_offset, 0, current)
    payload = values.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :BYTES_PER_SAMPLE].tobytes()
    body = header + payload
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_int24(payload: bytes | memoryview, n_samples: int, n_channels: int) -> np.ndarray:
    """24-bit signed little-endian values → int32 array (n_samples, n_channels), vectorised."""
    raw = np.frombuffer(payload, np.uint8).reshape(-1, BYTES_PER_SAMPLE)
    wide = np.zeros((raw.shape[0], 4), np.uint8)
    wide[:, 1:] = raw  # value in the top 3 bytes; an arithmetic shift sign-extends
    return (wide.view("<i4")[:, 0] >> 8).reshape(n_samples, n_channels)


@dataclass
class DecoderStats:
    """What the decoder has seen since it was made or reset.

    Attributes:
        frames: good frames returned.
        crc_errors: complete frames with a valid header whose CRC did not match (dropped).
        resyncs: times bytes had to be skipped to find the next sync word.
        skipped_bytes: bytes discarded while hunting.
        dropped: samples per channel lost to sequence gaps (counted on the next good frame).
        duplicates: frames repeating the previous sequence number (discarded).
    """

    frames: int = 0
    crc_errors: int = 0
    resyncs: int = 0
    skipped_bytes: int = 0
    dropped: int = 0
    duplicates: int = 0


class FrameDecoder:
    """Streaming decoder: feed it bytes in any pieces, get whole good frames back.

    Resynchronisation rule: bytes before a sync word are discarded (one resync per run of
    discarded bytes). A header is plausible when the version is 1, the reserved byte and
    unknown flag bits are zero, and 1 ≤ C ≤ 64, 1 ≤ S. A plausible frame whose CRC fails is
    counted in ``crc_errors`` and only its first byte is discarded, so a real frame starting
    inside it is still found. Buffered bytes stay bounded by one maximum-size frame.
    """

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._buf = bytearray()
        self._last_sequence: int | None = None
        self._hunting = False

    def reset(self) -> None:
        """Forget buffered bytes and the sequence reference (new connection); keep the stats."""
        self._buf.clear()
        self._last_sequence = None
        self._hunting = False

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the good frames they complete, in order."""
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        pos = 0
        while True:
            sync = buf.find(SYNC, pos)
            if sync < 0:  # keep a trailing A5: it may be the first half of a sync word
                keep = len(buf) - 1 if buf.endswith(SYNC[:1]) else len(buf)
                pos = self._skip(pos, max(pos, keep))
                break
            pos = self._skip(pos, sync)
            if len(buf) - pos < HEADER_SIZE:
                break
            (_, version, flags, sequence, n_channels, n_samples, lead_off, event_offset,
             reserved, current) = HEADER.unpack_from(buf, pos)
            if (version != VERSION or reserved or flags & ~KNOWN_FLAGS
                    or not 1 <= n_channels <= MAX_CHANNELS or n_samples < 1):
                pos = self._skip(pos, pos + 1)
                continue
            end = pos + frame_size(n_channels, n_samples)
            if len(buf) < end:
                break
            body = bytes(buf[pos:end - CRC_SIZE])
            if zlib.crc32(body) != struct.unpack_from("<I", buf, end - CRC_SIZE)[0]:
                self.stats.crc_errors += 1
                self._hunting = False  # the bytes after a bad frame are a new hunt
                pos = self._skip(pos, pos + 1)
                continue
            frame = self._frame(body, flags, sequence, n_channels, n_samples, lead_off,
                                event_offset, current)
            if frame is not None:
                frames.append(frame)
            self._hunting = False
            pos = end
        del buf[:pos]
        return frames

    def _skip(self, start: int, stop: int) -> int:
        """Account for discarding bytes [start, stop); returns ``stop``."""
        if stop > start:
            if not self._hunting:
                self.stats.resyncs += 1
                self._hunting = True
            self.stats.skipped_bytes += stop - start
        return stop

    def _frame(self, body: bytes, flags: int, sequence: int, n_channels: int, n_samples: int,
               lead_off: int, event_offset: int, current: int) -> Frame | None:
        """A good frame (None for a duplicate), with the sequence gap turned into samples."""
        dropped = 0
        if self._last_sequence is not None:
            step = (sequence - self._last_sequence) % SEQUENCE_MODULUS
            if step == 0:
                self.stats.duplicates += 1
                return None
            dropped = (step - 1) * n_samples
        self._last_sequence = sequence
        self.stats.frames += 1
        self.stats.dropped += dropped
        samples = unpack_int24(body[HEADER_SIZE:], n_samples, n_channels)
        return Frame(sequence, samples, lead_off & ((1 << n_channels) - 1), flags,
                     min(event_offset, n_samples - 1), current / CURRENT_STEPS_PER_MA, dropped)
