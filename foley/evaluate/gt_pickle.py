"""The official DCASE 2023 Task 7 evaluator's statistics pickles, read and written without TensorFlow.

The evaluator (dcase2023_task7_eval_fad) stores each set's statistics as a pickled dict
{name: tensorflow.core.example.feature_pb2.Feature} with the names
    embedding_count   Int64List [number of embeddings]
    embedding_length  Int64List [D]
    mu                FloatList, D values
    sigma             FloatList, D * D values (row-major)
Each Feature pickles as `Feature()` followed by the state {"serialized": <protobuf wire bytes>}.

Reading uses an unpickler that resolves exactly one global, that Feature class, to a local stand-in
and refuses every other one, so a hostile file cannot run code; the stand-in decodes the protobuf
wire format (Feature: bytes_list = 1, float_list = 2, int64_list = 3; each list: repeated value = 1,
packed or not). Writing produces the same structure, for tests and for exchanging statistics with
users of the official tool.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from foley.evaluate.fad import GaussianStats
from foley.util.atomic import write_bytes_atomic
from foley.util.errors import DataError

FEATURE_MODULE = "tensorflow.core.example.feature_pb2"
FEATURE_CLASS = "Feature"
FEATURE_NAMES = ("embedding_count", "embedding_length", "mu", "sigma")

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
BYTES_LIST, FLOAT_LIST, INT64_LIST = 1, 2, 3


class ProtobufError(ValueError):
    """Bytes that are not a well-formed protobuf message of the expected kind."""


# ---------------------------------------------------------------------------------------------
# Protobuf wire format


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def message_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Split a message into (field number, wire type, value): ints for varints, bytes otherwise."""
    fields: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            value, pos = buf[pos : pos + size], pos + size
        elif wire == LENGTH:
            size, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ProtobufError(f"unsupported wire type {wire} in field {number}")
        if pos > len(buf) or number == 0:
            raise ProtobufError("truncated or malformed message")
        fields.append((number, wire, value))
    return fields


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _float_list(buf: bytes) -> np.ndarray:
    parts: list[bytes] = []
    for number, wire, value in message_fields(buf):
        if number != 1 or wire not in (LENGTH, FIXED32):
            continue
        if wire == LENGTH and len(value) % 4:
            raise ProtobufError("packed FloatList whose length is not a multiple of 4")
        parts.append(value)
    return np.frombuffer(b"".join(parts), dtype="<f4").astype(np.float32)


def _int64_list(buf: bytes) -> np.ndarray:
    values: list[int] = []
    for number, wire, value in message_fields(buf):
        if number != 1:
            continue
        if wire == VARINT:
            values.append(_signed64(value))
        elif wire == LENGTH:
            pos = 0
            while pos < len(value):
                item, pos = _read_varint(value, pos)
                values.append(_signed64(item))
    return np.array(values, dtype=np.int64)


def decode_feature(buf: bytes) -> np.ndarray | list[bytes]:
    """A serialized tf.train.Feature -> float32 array, int64 array or list of bytes."""
    kinds = [(number, value) for number, wire, value in message_fields(buf) if wire == LENGTH]
    if not kinds:
        return np.zeros(0, dtype=np.float32)
    number, value = kinds[-1]
    if number == FLOAT_LIST:
        return _float_list(value)
    if number == INT64_LIST:
        return _int64_list(value)
    if number == BYTES_LIST:
        return [item for n, w, item in message_fields(value) if n == 1 and w == LENGTH]
    raise ProtobufError(f"Feature with unknown kind field {number}")


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | LENGTH) + _varint(len(payload)) + payload


def encode_float_feature(values: np.ndarray) -> bytes:
    """tf.train.Feature(float_list=FloatList(value=values)) as protobuf serializes it (packed)."""
    packed = np.asarray(values, dtype="<f4").tobytes()
    return _length_field(FLOAT_LIST, _length_field(1, packed))


def encode_int64_feature(values: np.ndarray) -> bytes:
    """tf.train.Feature(int64_list=Int64List(value=values)) as protobuf serializes it (packed)."""
    packed = b"".join(_varint(int(v)) for v in np.asarray(values, dtype=np.int64).ravel())
    return _length_field(INT64_LIST, _length_field(1, packed))


# ---------------------------------------------------------------------------------------------
# Pickle


class _PickledFeature:
    """Stand-in for tensorflow's Feature class: receives the pickled state and decodes it."""

    def __init__(self) -> None:
        self.value: np.ndarray | list[bytes] | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("serialized"), bytes):
            raise ProtobufError("a pickled Feature without its 'serialized' bytes")
        self.value = decode_feature(state["serialized"])


class _FeatureUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == (FEATURE_MODULE, FEATURE_CLASS):
            return _PickledFeature
        raise pickle.UnpicklingError(f"refusing global {module}.{name}: only {FEATURE_MODULE}.{FEATURE_CLASS} is allowed")


def read_features(path: str | Path) -> dict[str, np.ndarray | list[bytes]]:
    """The {name: values} dict of an official statistics pickle; DataError names what is wrong."""
    path = Path(path)
    try:
        data = _FeatureUnpickler(io.BytesIO(path.read_bytes())).load()
    except OSError as err:
        raise DataError(f"cannot read '{path}': {err.strerror or err}") from None
    except (pickle.UnpicklingError, ProtobufError, EOFError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"'{path}' is not an official gt_embedding.pkl statistics file ({err})") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, _PickledFeature) and v.value is not None for k, v in data.items()
    ):
        raise DataError(f"'{path}' does not hold a dict of tf.train.Feature objects")
    return {name: feature.value for name, feature in data.items()}


def read_official_stats(path: str | Path) -> GaussianStats:
    """mu (D,), sigma (D, D) in float64 and the embedding count from an official statistics pickle."""
    features = read_features(path)
    missing = [name for name in FEATURE_NAMES if name not in features]
    if missing:
        raise DataError(f"'{path}' lacks the feature(s) {', '.join(missing)} (an empty set has no mu/sigma)")
    dim = int(features["embedding_length"][0])
    mu = np.asarray(features["mu"], dtype=np.float64)
    sigma = np.asarray(features["sigma"], dtype=np.float64)
    if mu.shape != (dim,) or sigma.shape != (dim * dim,):
        raise DataError(
            f"'{path}': embedding_length {dim} but mu has {mu.size} and sigma {sigma.size} values"
        )
    return GaussianStats(mu=mu, sigma=sigma.reshape(dim, dim), count=int(features["embedding_count"][0]))


def _pickle_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _pickle_bytes(raw: bytes) -> bytes:
    if len(raw) < 256:
        return b"C" + bytes([len(raw)]) + raw  # SHORT_BINBYTES
    return b"B" + struct.pack("<I", len(raw)) + raw  # BINBYTES


def official_pickle_bytes(stats: GaussianStats) -> bytes:
    """The official pickle of stats: protocol 4, values stored as float32 as the evaluator does."""
    dim = stats.mu.shape[0]
    serialized = {
        "embedding_count": encode_int64_feature(np.array([stats.count])),
        "embedding_length": encode_int64_feature(np.array([dim])),
        "mu": encode_float_feature(stats.mu),
        "sigma": encode_float_feature(stats.sigma.reshape(-1)),
    }
    out = [b"\x80\x04", b"}", b"("]  # PROTO 4, EMPTY_DICT, MARK
    for name, payload in serialized.items():
        out += [_pickle_str(name), _pickle_str(FEATURE_MODULE), _pickle_str(FEATURE_CLASS), b"\x93"]
        out += [b")", b"R", b"}", _pickle_str("serialized"), _pickle_bytes(payload), b"s", b"b"]
    out += [b"u", b"."]  # SETITEMS, STOP
    return b"".join(out)


def write_official_stats(path: str | Path, stats: GaussianStats) -> None:
    """Write stats as an official gt_embedding.pkl (atomically)."""
    write_bytes_atomic(path, official_pickle_bytes(stats))
