"""Clear the "open for writing" flags an HDF5 writer leaves in a file it never closed.

A file written in SWMR mode (``libver="latest"``, superblock version 2 or 3) records in its
superblock that a writer has it open. If the writer is killed the flags stay set and the HDF5
library refuses to open the file for writing (reading with ``swmr=True`` still works). The
HDF5 tool ``h5clear -s`` clears them; this module does the same in a few bytes, so recovery
needs no external tool and takes milliseconds whatever the file size.

Superblock v2/v3 layout (HDF5 file format specification, "Superblock Version 2"):
signature (8 bytes) · version (1) · size of offsets (1) · size of lengths (1) ·
file consistency flags (1) · base address, extension address, end-of-file address and root
object header address (4 × size of offsets) · Jenkins lookup3 checksum of all the above (4).
"""

from __future__ import annotations

import struct
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Byte offset of the file consistency flags in a v2/v3 superblock.
FLAGS_OFFSET = 11
_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    for shift_a, shift_b, shift_c in ((4, 6, 8), (16, 19, 4)):
        a = ((a - c) & _MASK) ^ _rot(c, shift_a)
        c = (c + b) & _MASK
        b = ((b - a) & _MASK) ^ _rot(a, shift_b)
        a = (a + c) & _MASK
        c = ((c - b) & _MASK) ^ _rot(b, shift_c)
        b = (b + a) & _MASK
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c = ((c ^ b) - _rot(b, 14)) & _MASK
    a = ((a ^ c) - _rot(c, 11)) & _MASK
    b = ((b ^ a) - _rot(a, 25)) & _MASK
    c = ((c ^ b) - _rot(b, 16)) & _MASK
    a = ((a ^ c) - _rot(c, 4)) & _MASK
    b = ((b ^ a) - _rot(a, 14)) & _MASK
    return ((c ^ b) - _rot(b, 24)) & _MASK


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` (HDF5's metadata checksum), 32-bit."""
    a = b = c = (0xDEADBEEF + len(data) + initval) & _MASK
    for pos in range(0, max(len(data) - 1, 0) // 12 * 12, 12):
        a = (a + int.from_bytes(data[pos:pos + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[pos + 4:pos + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[pos + 8:pos + 12], "little")) & _MASK
        a, b, c = _mix(a, b, c)
    tail = data[max(len(data) - 1, 0) // 12 * 12:]
    if not tail:
        return c
    tail = tail.ljust(12, b"\0")
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    return _final(a, b, c)


def _read_superblock(f) -> tuple[bytes, int]:
    """The v2/v3 superblock bytes before the checksum, and the stored checksum."""
    head = f.read(11)
    if len(head) < 11 or head[:8] != SIGNATURE or head[8] not in (2, 3):
        raise ValueError("not an HDF5 file with a version 2/3 superblock at byte 0")
    size = 12 + 4 * head[9]
    f.seek(0)
    body = f.read(size + 4)
    if len(body) < size + 4:
        raise ValueError("superblock is truncated")
    return body[:size], struct.unpack("<I", body[size:])[0]


def open_flags(path: Path) -> int:
    """The file consistency flags (0 = closed properly); ValueError if not a v2/v3 HDF5 file
    or the superblock checksum is wrong."""
    with open(path, "rb") as f:
        body, checksum = _read_superblock(f)
    if lookup3(body) != checksum:
        raise ValueError("superblock checksum mismatch")
    return body[FLAGS_OFFSET]


def clear_open_flags(path: Path) -> None:
    """Set the consistency flags to 0 and rewrite the superblock checksum (like ``h5clear -s``)."""
    with open(path, "r+b") as f:
        body, checksum = _read_superblock(f)
        if lookup3(body) != checksum:
            raise ValueError("superblock checksum mismatch")
        body = body[:FLAGS_OFFSET] + b"\0" + body[FLAGS_OFFSET + 1:]
        f.seek(0)
        f.write(body + struct.pack("<I", lookup3(body)))
