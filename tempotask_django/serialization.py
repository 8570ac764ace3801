"""JSON codec for job data and results. JSON only: no pickle, ever.

``normalize()`` walks a value once at enqueue time and turns what Django's JSON encoder knows
(datetime, date, time, timedelta, Decimal, UUID, Promise) into plain JSON types. Anything else is a
TypeError naming the value and where it sits, raised in the producer, never in the worker.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import re
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.functional import Promise

_ENCODER = DjangoJSONEncoder()
# Built once: json.dumps with non-default options builds a new encoder on every call.
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_SPECIAL_TYPES = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    uuid.UUID,
    Promise,
)


def _where(path: str) -> str:
    return f" at {path}" if path != "data" else ""


# Deeper than any real payload, far below the recursion limit: a value that contains itself is
# refused here instead of walking into RecursionError, which fails in odd places (a worker thread,
# an unraisable hook) once the stack is that deep.
MAX_NESTING = 200


def normalize(value: Any, path: str = "data", depth: int = 0) -> Any:
    """Return ``value`` as plain JSON types; raise TypeError/ValueError naming the first bad value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r}{_where(path)} is not valid JSON (NaN and infinity are not allowed)")
        return value
    if isinstance(value, dict | list | tuple):
        depth += 1
        if depth > MAX_NESTING:
            raise ValueError(
                f"the value{_where(path)} is nested too deeply: more than {MAX_NESTING} levels "
                "(does it contain itself?)"
            )
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"dict key {key!r} ({type(key).__name__}){_where(path)} is not a string; "
                    "JSON objects only have string keys"
                )
            result[key] = normalize(item, f"{path}[{key!r}]", depth)
        return result
    if isinstance(value, list | tuple):
        return [normalize(item, f"{path}[{index}]", depth) for index, item in enumerate(value)]
    if isinstance(value, _SPECIAL_TYPES):
        return _ENCODER.default(value)
    raise TypeError(
        f"{value!r} ({type(value).__module__}.{type(value).__qualname__}){_where(path)} is not JSON-serializable; "
        "use str, int, float, bool, None, list, dict, or datetime/date/Decimal/UUID"
    )


def dumps(value: Any) -> str:
    """Compact JSON text of an already-normalized value, always encodable as UTF-8.

    Text stays as it is, except when a string holds a lone surrogate (such as U+D800, which
    ``json.loads`` happily returns but UTF-8 cannot encode): then the JSON uses escapes,
    so the value still round-trips exactly instead of failing when it is sent to Redis.
    """
    text = _DUMPS(value)
    if text.isascii():  # constant time in CPython: the common case costs nothing more
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text


def encode(value: Any, *, max_bytes: int | None = None, what: str = "job data") -> str:
    """Normalize and serialize ``value``; enforce ``max_bytes`` (ValueError when larger)."""
    try:
        text = dumps(normalize(value))
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to be stored as JSON") from None
    if max_bytes is not None:
        size = len(text.encode())
        if size > max_bytes:
            raise ValueError(
                f"{what} is {size} bytes of JSON, more than MAX_PAYLOAD_BYTES ({max_bytes}); "
                "store large data elsewhere and pass a reference"
            )
    return text


def encode_result(value: Any) -> str:
    """Serialize a handler's return value; a value JSON cannot hold is stored as its repr."""
    if value is None:  # most handlers return nothing
        return "null"
    try:
        return dumps(normalize(value, "result"))
    except (TypeError, ValueError, RecursionError):
        return dumps({"repr": repr(value)[:10_000], "note": "the return value was not JSON-serializable"})


def decode(text: str | bytes | None, default: Any = None) -> Any:
    """The value of JSON ``text`` (``default`` when empty); ValueError when it is not JSON or is
    nested more than MAX_NESTING levels deep."""
    if text is None or text == "" or text == b"":
        return default
    if isinstance(text, bytes):
        text = text.decode()
    _refuse_deep_nesting(text)
    return json.loads(text)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")


def _refuse_deep_nesting(text: str) -> None:
    """Raise ValueError for JSON nested more than MAX_NESTING levels, measured without recursion.

    ``json.loads`` would walk it to the recursion limit, where anything else that needs the stack
    (a collected object's ``__del__`` in the same thread) fails too.
    """
    if text.count("[") + text.count("{") <= MAX_NESTING:  # the common case: a count in C
        return
    depth = 0
    for bracket in _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_NESTING:
            raise ValueError(f"the JSON is nested too deeply: more than {MAX_NESTING} levels")
