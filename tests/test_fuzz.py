"""Property-based tests: the audio reader and the config loader, fed random bytes and documents,
end in foley's own clear errors or in a valid result, never in a crash from deep inside."""

import io
import struct

import numpy as np
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foley.audio.clips import read_clip
from foley.config import config_from_dict, load_config, to_plain
from foley.util.errors import AudioError, ConfigError

SR, SAMPLES = 22050, 2048
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check_clip(path) -> None:
    try:
        clip = read_clip(path, SR, SAMPLES)
    except AudioError as err:
        assert str(err)
        return
    assert clip.audio.shape == (SAMPLES,) and clip.audio.dtype == np.float32
    assert np.isfinite(clip.audio).all()


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_never_crash_the_reader(tmp_path, data):
    path = tmp_path / "random.wav"
    path.write_bytes(data)
    _check_clip(path)


def _riff(fmt_tag, channels, rate, bits, payload: bytes, declared: int) -> bytes:
    block = max(1, channels * bits // 8)
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    header = b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
    return header + b"data" + struct.pack("<I", declared) + payload


@FUZZ
@given(
    fmt_tag=st.sampled_from([1, 3, 2, 0xFFFE, 0]),
    channels=st.integers(0, 9),
    rate=st.integers(0, 400_000),
    bits=st.sampled_from([0, 8, 16, 24, 32, 64, 7]),
    payload=st.binary(max_size=2048),
    declared=st.integers(0, 2**32 - 1),
)
def test_random_wav_headers_never_crash_the_reader(tmp_path, fmt_tag, channels, rate, bits, payload, declared):
    path = tmp_path / "header.wav"
    path.write_bytes(_riff(fmt_tag, channels, rate, bits, payload, declared))
    _check_clip(path)


@FUZZ
@given(
    frames=st.integers(0, 3000),
    channels=st.integers(1, 4),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "FLOAT", "DOUBLE", "PCM_U8"]),
    special=st.sampled_from([None, np.nan, np.inf, -np.inf, 1e30]),
    seed=st.integers(0, 2**16),
)
def test_random_valid_files_read_or_are_rejected(tmp_path, frames, channels, rate, subtype, special, seed):
    data = np.random.default_rng(seed).uniform(-1, 1, (frames, channels))
    if special is not None and frames:
        data[frames // 2, 0] = special
    path = tmp_path / "valid.wav"
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, subtype=subtype, format="WAV")
    path.write_bytes(buffer.getvalue())
    _check_clip(path)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _load(document) -> None:
    try:
        config = config_from_dict(document)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert config.map_shape[0] > 0 and config.map_shape[1] > 0


@FUZZ
@given(document=documents)
def test_random_documents_load_or_fail_clearly(document):
    _load(document)


BASE = to_plain(load_config("quick"))


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))


PATHS = list(_paths(BASE))


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), documents), min_size=1, max_size=4))
def test_valid_configs_with_random_values_load_or_fail_clearly(changes):
    document = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in changes:
        node = document
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                break
            node = node[key]
        else:
            node[path[-1]] = value
    _load(document)


@FUZZ
@given(text=st.text(max_size=300))
def test_random_yaml_text_and_overrides_fail_clearly(tmp_path, text):
    path = tmp_path / "random.yaml"
    path.write_text(text, encoding="utf-8")
    for attempt in (lambda: load_config(path), lambda: load_config("quick", [text])):
        try:
            attempt()
        except ConfigError as err:
            assert str(err)
