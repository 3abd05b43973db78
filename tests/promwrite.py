"""Push samples into a test Prometheus through its remote-write receiver.

Tests need Prometheus to hold exact, known samples, including samples in the past, and scraping
cannot produce those. Prometheus accepts them on `POST /api/v1/write` when started with
`--web.enable-remote-write-receiver` (canarist/demo/stack.py does). The wire format is small enough
to write by hand, which keeps protobuf and snappy libraries out of the test dependencies:

    WriteRequest { 1: repeated TimeSeries }
    TimeSeries   { 1: repeated Label, 2: repeated Sample }
    Label        { 1: string name, 2: string value }
    Sample       { 1: double value (64-bit little endian), 2: int64 timestamp in ms }

The body is compressed with the snappy *block* format (not the framed stream format). A snappy
block is the varint of the uncompressed length followed by elements, each either a literal (raw
bytes) or a copy (a back-reference). Finding back-references is the compressor's optional work:
the format never requires one, and the reference encoder itself emits literals for input it
cannot compress. A block of literals only is therefore valid snappy that any decoder, including
the Go decoder inside Prometheus, accepts; it is merely not smaller than its input.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator, Mapping, Sequence

import httpx

Labels = Mapping[str, str]
Samples = Sequence[tuple[float, float]]  # (unix seconds, value)
Series = tuple[Labels, Samples]

MAX_SAMPLES_PER_REQUEST = 10_000
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SNAPPY_LITERAL_CHUNK = 65_536
_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "canarist-tests/promwrite",
}


class RemoteWriteError(RuntimeError):
    """Prometheus refused a remote-write request; the message carries Prometheus' own text."""


def write_samples(
    prometheus_url: str,
    series: Sequence[Series],
    *,
    max_samples_per_request: int = MAX_SAMPLES_PER_REQUEST,
    timeout: float = 30.0,
) -> int:
    """Write every sample of `series` to Prometheus; return the number of samples written.

    Labels must include `__name__`. Samples of one series are sent oldest first. Prometheus
    rejects a whole request when one sample is refused, so an error may leave earlier batches
    written and later ones not. What Prometheus 2.42 refuses, with the out-of-order window the
    test stack configures: samples older than the window ("too old sample", status 500, not
    400) and, for in-order samples, another value at an existing timestamp ("duplicate sample
    for timestamp", 400). Out of order, another value at an existing timestamp is dropped
    silently (first write wins). `math.nan` is stored as a value; only Prometheus' staleness
    marker (bits 0x7ff0000000000002) would mean "series ended".
    """
    written = 0
    with httpx.Client(base_url=prometheus_url, trust_env=False, timeout=timeout) as client:
        for batch in _batches(series, max_samples_per_request):
            body = snappy_literal_block(encode_write_request(batch))
            response = client.post("/api/v1/write", content=body, headers=_HEADERS)
            if not response.is_success:
                raise RemoteWriteError(
                    f"Prometheus at {prometheus_url} refused remote write "
                    f"({response.status_code}): {response.text.strip()}"
                )
            written += sum(len(samples) for _, samples in batch)
    return written


def _batches(series: Sequence[Series], limit: int) -> Iterator[list[Series]]:
    """Split into requests of at most `limit` samples; a long series spans several requests."""
    if limit < 1:
        raise ValueError(f"max_samples_per_request must be positive, got {limit}")
    batch: list[Series] = []
    room = limit
    for labels, samples in series:
        checked = _checked_labels(labels)
        ordered = sorted(samples, key=lambda sample: sample[0])
        while ordered:
            head, ordered = ordered[:room], ordered[room:]
            batch.append((checked, head))
            room -= len(head)
            if room == 0:
                yield batch
                batch, room = [], limit
    if batch:
        yield batch


def _checked_labels(labels: Labels) -> dict[str, str]:
    if "__name__" not in labels:
        raise ValueError(f"series labels need a __name__: {dict(labels)}")
    for name, value in labels.items():
        if not _LABEL_NAME.match(name):
            raise ValueError(f"invalid Prometheus label name {name!r} in {dict(labels)}")
        if value == "":
            # Prometheus treats an empty label as an absent one; writing it invites confusion.
            raise ValueError(f"label {name!r} has an empty value in {dict(labels)}")
    return dict(sorted(labels.items()))  # Prometheus requires labels sorted by name


def encode_write_request(series: Sequence[Series]) -> bytes:
    """The protobuf encoding of a prometheus.WriteRequest with these series."""
    out = bytearray()
    for labels, samples in series:
        body = bytearray()
        for name, label_value in sorted(labels.items()):
            label = _bytes_field(1, name.encode()) + _bytes_field(2, label_value.encode())
            body += _bytes_field(1, label)
        for timestamp_s, value in samples:
            if not math.isfinite(timestamp_s):
                raise ValueError(f"sample timestamp must be finite, got {timestamp_s}")
            sample = _tag(1, 1) + struct.pack("<d", value)
            sample += _tag(2, 0) + _varint(round(timestamp_s * 1000) & 0xFFFF_FFFF_FFFF_FFFF)
            body += _bytes_field(2, sample)
        out += _bytes_field(1, body)
    return bytes(out)


def snappy_literal_block(data: bytes) -> bytes:
    """`data` as a valid snappy block made of literal elements only (see module docstring)."""
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), _SNAPPY_LITERAL_CHUNK):
        chunk = data[start : start + _SNAPPY_LITERAL_CHUNK]
        size_minus_one = len(chunk) - 1
        if size_minus_one < 60:
            out.append(size_minus_one << 2)  # tag low bits 00 = literal, length in the tag
        else:
            width = (size_minus_one.bit_length() + 7) // 8  # 1..4 length bytes follow
            out.append((59 + width) << 2)
            out += size_minus_one.to_bytes(width, "little")
        out += chunk
    return bytes(out)


def _varint(number: int) -> bytes:
    if number < 0:
        raise ValueError(f"varint of a negative number: {number}")
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _bytes_field(field: int, payload: bytes | bytearray) -> bytes:
    return _tag(field, 2) + _varint(len(payload)) + bytes(payload)
