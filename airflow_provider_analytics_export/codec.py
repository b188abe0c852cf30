"""JSON in and out through msgspec: a fast C codec Airflow itself already depends on.

Every response body is decoded here and every jsonl row encoded here, so the cost per row is
the codec's, not the standard library's (about 2x faster to decode, 10x+ to encode lines).
msgspec keeps integers of any size exactly and writes non-ASCII text as UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec

_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_SORTED_ENCODER = msgspec.json.Encoder(order="sorted")


def loads(data: bytes | str) -> Any:
    """Decode a JSON document; raises ``ValueError`` when it is not one.

    UTF-8 is what the APIs send; a body msgspec refuses (a BOM, UTF-16) gets one more try with
    the standard library, which detects those encodings, before it counts as undecodable.
    """
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


def dumps_lines(rows: Sequence[Any]) -> bytes:
    """Rows as JSON lines (compact, keys in the order the API sent them), in one C call."""
    return _ENCODER.encode_lines(rows)


def dumps_sorted(value: Any) -> bytes:
    """``value`` as compact, key-sorted JSON: how nested values become one string cell."""
    return _SORTED_ENCODER.encode(value)
