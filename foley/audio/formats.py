"""Which files are audio, and decoding them: every format libsndfile reads, chosen by content.

A file is taken for audio when its name has an audio extension (any case), when it begins like an
audio container, or when libsndfile recognises its content whatever its name; such a file is then
decoded or rejected with the reason. Anything else in a folder of clips is skipped with the reason:
hidden files, sub-folders, files that are not audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from foley.util.errors import AudioError

# Extensions of the formats libsndfile reads (WAV/WAVEX/BWF, RF64, W64, FLAC, OGG Vorbis/Opus,
# MP3, AIFF/AIFC, CAF, AU, NIST Sphere, IRCAM, VOC, AVR, MAT, PAF, IFF/SVX, SDS, XI, HTK, PVF, WVE, MPC 2K)
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .bwf .rf64 .w64 .flac .ogg .oga .opus .mp3 .mp2 .mpga .aif .aiff .aifc .caf .au .snd "
    ".nist .sph .sf .ircam .voc .avr .mat .paf .iff .svx .8svx .sds .xi .htk .pvf .wve .mpc".split()
)
# Leading bytes of the containers foley checks for completeness (foley.audio.integrity), and of MP3
MAGIC = (
    (b"RIFF", "WAV"), (b"RIFX", "WAV"), (b"RF64", "RF64"), (b"BW64", "RF64"), (b"riff", "W64"),
    (b"fLaC", "FLAC"), (b"OggS", "OGG"), (b"FORM", "AIFF"), (b"caff", "CAF"), (b".snd", "AU"), (b"ID3", "MP3"),
)
HEAD_BYTES = 16
READ_BLOCK = 1 << 16  # frames decoded per call: a file damaged mid-way still says how far it decoded


def container_of(head: bytes) -> str | None:
    """The container a file's first bytes announce (WAV, RF64, W64, FLAC, OGG, AIFF, CAF, AU, MP3), or None."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame sync
        return "MP3"
    return None


def read_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


def not_audio_reason(path: Path) -> str | None:
    """Why a regular file is not taken for audio, or None when it is."""
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        return None
    try:
        head = read_head(path)
    except OSError as err:
        return f"not audio: cannot be read ({err.strerror})"
    if container_of(head) is not None or _libsndfile_recognises(path):
        return None
    kind = f"a {path.suffix} file" if path.suffix else "a file without extension"
    return f"not audio: {kind} whose content libsndfile does not recognise"


def _libsndfile_recognises(path: Path) -> bool:
    try:
        sf.info(str(path))
    except Exception:  # libsndfile reports unrecognised content through several error types
        return False
    return True


def entry_skip_reason(path: Path) -> str | None:
    """Why an entry of a class folder is skipped (hidden, sub-folder, not a file, not audio), or None."""
    if path.name.startswith("."):
        return "hidden file" if path.is_file() else "hidden entry"
    if path.is_dir():
        return "sub-folder: class folders are not searched recursively"
    if not path.exists():
        return "broken link: the file it points to does not exist"
    if not path.is_file():
        return "not a regular file"
    return not_audio_reason(path)


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass(frozen=True)
class FolderListing:
    """A folder's entries, sorted by name: the audio files, and the rest with why each is skipped."""

    audio: tuple[Path, ...]
    skipped: tuple[SkippedFile, ...]


def list_folder(folder: Path) -> FolderListing:
    audio, skipped = [], []
    for path in sorted(Path(folder).iterdir()):
        reason = entry_skip_reason(path)
        if reason is None:
            audio.append(path)
        else:
            skipped.append(SkippedFile(path, reason))
    return FolderListing(tuple(audio), tuple(skipped))


@dataclass(frozen=True)
class Decoded:
    """A file's samples (frames, channels) float32 as libsndfile decodes them, and what its header says."""

    samples: np.ndarray
    sample_rate: int
    format: str
    subtype: str
    declared_frames: int  # libsndfile's frame count from the header (FLAC: STREAMINFO; Ogg: last granule)


def decode(path: Path) -> Decoded:
    """Decode a whole file; AudioError says 'unreadable: ...' or 'truncated: ...' with libsndfile's words."""
    try:
        handle = sf.SoundFile(str(path))
    except Exception as err:  # libsndfile reports every unreadable file through its own error types
        raise AudioError(f"unreadable: {_first_line(err)}") from None
    with handle:
        blocks = [np.zeros((0, handle.channels), np.float32)]
        try:
            while (block := handle.read(READ_BLOCK, dtype="float32", always_2d=True)).shape[0]:
                blocks.append(block)
        except Exception as err:  # a decoder error part-way through the data
            done = sum(b.shape[0] for b in blocks)
            raise AudioError(
                f"truncated: decoding stopped after {done:,} of the {handle.frames:,} frames its header declares "
                f"({_first_line(err)})"
            ) from None
        return Decoded(np.concatenate(blocks), handle.samplerate, handle.format, handle.subtype, handle.frames)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
