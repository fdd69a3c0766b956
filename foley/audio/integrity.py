"""Is a file whole, and are its samples usable: the checks every clip passes before it is used.

Completeness, from the bytes (libsndfile reads a cut-off WAV without a word, reporting only the
frames present, so the header is read here):
- WAV / WAVEX (RIFF, RIFX), RF64 / BW64 (ds64 sizes), W64: the data chunk's declared size against
  the bytes after it;
- AIFF / AIFC: the SSND chunk's declared size; CAF: the data chunk's (unless -1, "to the end");
  AU: the header's data size (unless 0xFFFFFFFF, "unknown");
- Ogg (Vorbis, Opus, FLAC in Ogg): the last page must be whole and carry the end-of-stream flag.
A declared size of 0 or all ones in a WAV data chunk means "unknown" (streamed writers) and is not
checked. After decoding (foley.audio.formats.decode), fewer frames than libsndfile's header count
(FLAC: STREAMINFO total samples; Ogg: the last granule position) is a truncation too.
Samples: none, non-finite, or a peak below the silence threshold reject the file; a share of
samples at full scale above a limit is noted (clipped), not rejected.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from foley.audio.formats import Decoded, container_of
from foley.util.errors import AudioError

FULL_SCALE = 32767 / 32768  # the largest positive 16-bit value: samples at or above it in magnitude are clipped
UNKNOWN_SIZES = (0, 0xFFFFFFFF)
OGG_MAX_PAGE = 27 + 255 + 255 * 255
W64_GUID_TAIL = bytes.fromhex("f3acd3118cd100c04f8edb8a")
MAX_CHUNKS = 10_000


@dataclass(frozen=True)
class DataExtent:
    """What a header says about the audio data, and what the file holds."""

    what: str  # e.g. "the WAV data chunk"
    declared_bytes: int
    present_bytes: int
    frame_bytes: int | None  # bytes per frame when the header says, for messages in frames

    def describe(self) -> str:
        def amount(count: int) -> str:
            if self.frame_bytes:
                return f"{count // self.frame_bytes:,} frames ({count:,} bytes)"
            return f"{count:,} bytes"

        return f"{self.what} declares {amount(self.declared_bytes)} but the file holds {amount(self.present_bytes)}"


def check_complete(source: Path | bytes) -> None:
    """Raise AudioError('truncated: ...') when a file (path or bytes) holds less than its header declares."""
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            problem = _container_problem(handle, size)
    except OSError as err:
        raise AudioError(f"unreadable: {err.strerror}") from None
    if problem is not None:
        raise AudioError(f"truncated: {problem}")


def _container_problem(handle: BinaryIO, size: int) -> str | None:
    head = handle.read(16)
    handle.seek(0)
    container = container_of(head)
    if container == "OGG":
        return _ogg_problem(handle, size)
    walkers: dict[str | None, Callable[[BinaryIO, int], DataExtent | str | None]] = {
        "WAV": _riff_extent, "RF64": _riff_extent, "W64": _w64_extent, "AIFF": _aiff_extent, "CAF": _caf_extent,
        "AU": _au_extent,
    }
    walker = walkers.get(container)
    extent = walker(handle, size) if walker else None
    if isinstance(extent, DataExtent):
        return extent.describe() if extent.present_bytes < extent.declared_bytes else None
    return extent


def _read(handle: BinaryIO, count: int) -> bytes | None:
    data = handle.read(count)
    return data if len(data) == count else None


def _riff_extent(handle: BinaryIO, size: int) -> DataExtent | str | None:
    """Walk RIFF / RIFX / RF64 / BW64 chunks to the data chunk."""
    magic = handle.read(12)
    endian = ">" if magic.startswith(b"RIFX") else "<"
    ds64_data, frame_bytes = None, None
    for _ in range(MAX_CHUNKS):
        start = handle.tell()
        header = _read(handle, 8)
        if header is None:
            return "the file ends before its data chunk" if start >= size else None
        chunk, length = header[:4], struct.unpack(endian + "I", header[4:])[0]
        if chunk == b"ds64" and length >= 16 and (body := _read(handle, 16)) is not None:
            ds64_data = struct.unpack("<Q", body[8:16])[0]
        elif chunk == b"fmt " and length >= 14 and (body := _read(handle, 14)) is not None:
            frame_bytes = struct.unpack(endian + "H", body[12:14])[0] or None
        elif chunk == b"data":
            declared = ds64_data if length == 0xFFFFFFFF and ds64_data is not None else length
            if ds64_data is None and declared in UNKNOWN_SIZES:
                return None
            return DataExtent("the data chunk", declared, size - start - 8, frame_bytes)
        handle.seek(start + 8 + length + (length & 1))
    return None


def _w64_extent(handle: BinaryIO, size: int) -> DataExtent | str | None:
    """Walk Sony Wave64 chunks (16-byte GUID, 8-byte size that counts the 24-byte header, 8-byte alignment)."""
    handle.seek(40)
    frame_bytes = None
    for _ in range(MAX_CHUNKS):
        start = handle.tell()
        header = _read(handle, 24)
        if header is None:
            return "the file ends before its data chunk" if start >= size else None
        if header[4:16] != W64_GUID_TAIL:
            return None
        chunk, length = header[:4], struct.unpack("<Q", header[16:])[0]
        if length < 24:
            return None
        if chunk == b"fmt " and (body := _read(handle, 14)) is not None:
            frame_bytes = struct.unpack("<H", body[12:14])[0] or None
        elif chunk == b"data":
            return DataExtent("the W64 data chunk", length - 24, size - start - 24, frame_bytes)
        handle.seek(start + length + (-length % 8))
    return None


def _aiff_extent(handle: BinaryIO, size: int) -> DataExtent | str | None:
    """Walk AIFF / AIFC chunks (big-endian, even-padded) to SSND."""
    if handle.read(12)[8:12] not in (b"AIFF", b"AIFC"):
        return None
    for _ in range(MAX_CHUNKS):
        start = handle.tell()
        header = _read(handle, 8)
        if header is None:
            return "the file ends before its SSND (sound data) chunk" if start >= size else None
        chunk, length = header[:4], struct.unpack(">I", header[4:])[0]
        if chunk == b"SSND":
            return DataExtent("the SSND chunk", length, size - start - 8, None)
        handle.seek(start + 8 + length + (length & 1))
    return None


def _caf_extent(handle: BinaryIO, size: int) -> DataExtent | str | None:
    """Walk CAF chunks (4-byte type, signed 8-byte size; -1 on the data chunk means 'to the end of the file')."""
    handle.seek(8)
    for _ in range(MAX_CHUNKS):
        start = handle.tell()
        header = _read(handle, 12)
        if header is None:
            return "the file ends before its data chunk" if start >= size else None
        chunk, length = header[:4], struct.unpack(">q", header[4:])[0]
        if chunk == b"data":
            return None if length < 0 else DataExtent("the CAF data chunk", length, size - start - 12, None)
        if length < 0:
            return None
        handle.seek(start + 12 + length)
    return None


def _au_extent(handle: BinaryIO, size: int) -> DataExtent | None:
    header = _read(handle, 24)
    if header is None:
        return None
    offset, length = struct.unpack(">II", header[4:12])
    if length == 0xFFFFFFFF:
        return None
    return DataExtent("the AU header", length, max(0, size - offset), None)


def _ogg_problem(handle: BinaryIO, size: int) -> str | None:
    """The last whole Ogg page must close the stream (header flag 0x04) and no page may be cut off."""
    start = max(0, size - 2 * OGG_MAX_PAGE)
    handle.seek(start)
    tail = handle.read()
    last_whole, cut = None, False
    position = tail.find(b"OggS")
    while position >= 0:
        end = _ogg_page_end(tail, position)
        if end is None or start + end > size:
            cut = True
        else:
            last_whole, cut = position, False
        position = tail.find(b"OggS", position + 4)
    if cut:
        return "its last Ogg page is cut off"
    if last_whole is None or not tail[last_whole + 5] & 0x04:
        return "its Ogg stream has no end-of-stream page (the file stops before the stream's end)"
    return None


def _ogg_page_end(tail: bytes, position: int) -> int | None:
    """Where the page starting at position ends in tail's coordinates (may lie past tail), or None."""
    if len(tail) < position + 27 or tail[position + 4] != 0:
        return None
    segments = tail[position + 26]
    table = tail[position + 27 : position + 27 + segments]
    if len(table) < segments:
        return len(tail) + 1
    return position + 27 + segments + sum(table)


def check_decoded(decoded: Decoded) -> None:
    """Fewer frames decoded than libsndfile's header count is a truncation."""
    frames = decoded.samples.shape[0]
    if 0 < decoded.declared_frames and frames < decoded.declared_frames:
        raise AudioError(
            f"truncated: {frames:,} frames decoded, {decoded.declared_frames:,} declared by its {decoded.format} header"
        )


def peak_db(samples: np.ndarray) -> float:
    """The largest absolute sample in dB relative to full scale (-inf for digital silence)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def check_samples(samples: np.ndarray, silence_db: float) -> None:
    """Reject no samples, non-finite samples, and a peak below silence_db dBFS."""
    if samples.size == 0:
        raise AudioError("empty: the file holds no samples")
    if not np.isfinite(samples).all():
        raise AudioError("non-finite: the file holds NaN or infinite samples")
    level = peak_db(samples)
    if level < silence_db:
        what = "every sample is zero" if level == -math.inf else f"peak {level:.1f} dBFS"
        raise AudioError(f"silent: {what}, below data.silence_db = {silence_db:g} dBFS")


def clipping_note(samples: np.ndarray, limit: float) -> str | None:
    """'clipped: ...' when more than `limit` of the samples sit at full scale, else None."""
    share = float(np.mean(np.abs(samples) >= FULL_SCALE)) if samples.size else 0.0
    if share <= limit:
        return None
    return f"clipped: {share:.2%} of samples at full scale (above data.clipped_fraction = {limit:g})"
