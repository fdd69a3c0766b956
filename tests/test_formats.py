"""Audio by content in every libsndfile format; completeness from the headers; silence and clipping."""

import io
import math
import struct

import numpy as np
import pytest
import soundfile as sf

from foley.audio.clips import ClipPolicy, read_recording
from foley.audio.formats import container_of, decode, list_folder, not_audio_reason
from foley.audio.integrity import check_complete, check_samples, clipping_note
from foley.util.errors import AudioError

SR = 22050
# (extension, soundfile format, subtype, rate): every format the README lists, written by soundfile itself
FORMATS = [
    ("wav", "WAV", "PCM_16", SR),
    ("wav", "WAV", "PCM_U8", SR),
    ("wav", "WAV", "FLOAT", SR),
    ("wav", "WAVEX", "PCM_24", SR),
    ("rf64", "RF64", "PCM_16", SR),
    ("w64", "W64", "PCM_16", SR),
    ("flac", "FLAC", "PCM_16", SR),
    ("ogg", "OGG", "VORBIS", SR),
    ("opus", "OGG", "OPUS", 48000),
    ("mp3", "MP3", "MPEG_LAYER_III", SR),
    ("aiff", "AIFF", "PCM_16", SR),
    ("caf", "CAF", "PCM_16", SR),
    ("au", "AU", "PCM_16", SR),
]
# Formats whose truncation foley detects (MP3 has no declared length that foley reads)
CHECKED = [f for f in FORMATS if f[1] != "MP3"]


def tone(seconds: float, rate: int = SR, channels: int = 1, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = level * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


def encoded(fmt: str, subtype: str, rate: int, audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("ext, fmt, subtype, rate", FORMATS, ids=[f"{f[1]}-{f[2]}" for f in FORMATS])
def test_every_format_is_audio_by_content_and_decodes_whole(tmp_path, ext, fmt, subtype, rate):
    data = encoded(fmt, subtype, rate, tone(1.0, rate, channels=2))
    for name in (f"clip.{ext}", f"CLIP.{ext.upper()}", "clip.bin"):  # extension in any case, or a wrong one
        path = tmp_path / name
        path.write_bytes(data)
        assert not_audio_reason(path) is None
        check_complete(path)
        decoded = decode(path)
        assert decoded.samples.shape == (rate, 2) and decoded.sample_rate == rate
        assert decoded.declared_frames == rate
    recording = read_recording(tmp_path / "clip.bin", ClipPolicy(SR, 2 * SR))
    assert recording.audio.shape == (SR,) and recording.conversions[0] == "2 channels -> mono (mean)"


@pytest.mark.parametrize("ext, fmt, subtype, rate", CHECKED, ids=[f"{f[1]}-{f[2]}" for f in CHECKED])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_a_cut_off_file_is_rejected_as_truncated(tmp_path, ext, fmt, subtype, rate, keep):
    data = encoded(fmt, subtype, rate, tone(2.0, rate))
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(AudioError, match="^truncated: "):
        read_recording(path, ClipPolicy(SR, 4 * SR))


def test_the_truncation_message_counts_frames_from_the_wav_header(tmp_path):
    data = encoded("WAV", "PCM_16", SR, tone(4.0))
    path = tmp_path / "download.wav"
    path.write_bytes(data[: 44 + 978 * 2])
    assert sf.info(str(path)).frames == 978  # libsndfile alone accepts it
    with pytest.raises(AudioError) as err:
        check_complete(path)
    assert str(err.value) == ("truncated: the data chunk declares 88,200 frames (176,400 bytes) "
                              "but the file holds 978 frames (1,956 bytes)")


def test_streamed_wavs_with_unknown_sizes_and_trailing_chunks_are_whole(tmp_path):
    data = bytearray(encoded("WAV", "PCM_16", SR, tone(0.5)))
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)  # a streaming writer's "size unknown"
    path = tmp_path / "streamed.wav"
    path.write_bytes(bytes(data))
    check_complete(path)
    listed = encoded("WAV", "PCM_16", SR, tone(0.5)) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    check_complete(listed)


def test_an_ogg_stream_without_its_last_page_is_truncated():
    data = encoded("OGG", "VORBIS", SR, tone(3.0))
    last = data.rfind(b"OggS")
    check_complete(data)
    with pytest.raises(AudioError, match="no end-of-stream page"):
        check_complete(data[:last])
    with pytest.raises(AudioError, match="last Ogg page is cut off"):
        check_complete(data[: last + 40])


def test_a_flac_cut_inside_its_frames_says_how_far_it_decoded(tmp_path):
    path = tmp_path / "cut.flac"
    data = encoded("FLAC", "PCM_16", SR, tone(4.0))
    path.write_bytes(data[: len(data) // 2])
    check_complete(path)  # FLAC declares samples, not bytes: the decoder finds the cut
    with pytest.raises(AudioError, match=r"^truncated: .*88,200"):
        read_recording(path, ClipPolicy(SR, 4 * SR))


def test_containers_are_named_by_their_first_bytes():
    assert container_of(b"RIFF\0\0\0\0WAVE") == "WAV" and container_of(b"fLaC") == "FLAC"
    assert container_of(b"\xff\xfb\x90") == "MP3" and container_of(b"ID3\x04") == "MP3"
    assert container_of(b"hello") is None and container_of(b"") is None


def test_folder_listing_skips_what_is_not_audio_with_the_reason(tmp_path):
    sf.write(tmp_path / "a.wav", tone(0.1), SR)
    (tmp_path / "notes.txt").write_text("recorded in the garden")
    (tmp_path / "blob.xyz").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "broken.ogg").write_bytes(b"not really an ogg")  # an audio name: read, then rejected
    (tmp_path / ".DS_Store").write_bytes(b"\0" * 64)
    (tmp_path / "takes").mkdir()
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    listing = list_folder(tmp_path)
    assert [p.name for p in listing.audio] == ["a.wav", "broken.ogg"]
    reasons = {s.path.name: s.reason for s in listing.skipped}
    assert reasons == {
        ".DS_Store": "hidden file",
        "blob.xyz": "not audio: a .xyz file whose content libsndfile does not recognise",
        "gone.wav": "broken link: the file it points to does not exist",
        "notes.txt": "not audio: a .txt file whose content libsndfile does not recognise",
        "takes": "sub-folder: class folders are not searched recursively",
    }
    with pytest.raises(AudioError, match="^unreadable: "):
        read_recording(tmp_path / "broken.ogg", ClipPolicy(SR, SR))


def test_silence_empty_and_non_finite_samples_are_rejected():
    with pytest.raises(AudioError, match="^silent: every sample is zero"):
        check_samples(np.zeros((100, 2), np.float32), -60.0)
    with pytest.raises(AudioError, match=r"^silent: peak -70.0 dBFS, below data.silence_db = -60 dBFS"):
        check_samples(np.full((100, 1), 10 ** (-70 / 20), np.float32), -60.0)
    check_samples(np.full((100, 1), 10 ** (-70 / 20), np.float32), -80.0)
    check_samples(np.zeros((100, 1), np.float32), -math.inf)  # silence checks off
    with pytest.raises(AudioError, match="^empty: "):
        check_samples(np.zeros((0, 1), np.float32), -60.0)
    with pytest.raises(AudioError, match="^non-finite: "):
        check_samples(np.array([[0.5], [np.inf]], np.float32), -60.0)


def test_clipping_is_noted_above_the_configured_share():
    audio = np.full(1000, 0.5, np.float32)
    audio[:3] = [1.0, -1.0, 32767 / 32768]
    assert clipping_note(audio, 0.01) is None
    assert clipping_note(audio, 0.001) == "clipped: 0.30% of samples at full scale (above data.clipped_fraction = 0.001)"
    audio[3] = 32766 / 32768  # one step below full scale is not clipped
    assert clipping_note(audio, 0.003) is None
