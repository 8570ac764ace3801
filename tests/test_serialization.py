"""JSON normalization at enqueue time. No Redis needed."""

from __future__ import annotations

import datetime
import decimal
import json
import sys
import uuid

import pytest

from tempotask_django import serialization


def test_django_types_become_json():
    value = {
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 1, 2),
        "amount": decimal.Decimal("1.50"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "items": (1, 2),
    }
    assert serialization.normalize(value) == {
        "when": "2026-01-02T03:04:05Z",
        "day": "2026-01-02",
        "amount": "1.50",
        "id": "12345678-1234-5678-1234-567812345678",
        "items": [1, 2],
    }


def test_unserializable_value_is_named_with_its_path():
    with pytest.raises(TypeError, match=r"\{1, 2\}.*builtins.set.* at data\['user'\]\['tags'\]"):
        serialization.normalize({"user": {"tags": {1, 2}}})


def test_non_string_keys_are_rejected():
    with pytest.raises(TypeError, match="dict key 1"):
        serialization.normalize({1: "a"})


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_infinity_are_rejected(bad):
    with pytest.raises(ValueError, match="not valid JSON"):
        serialization.normalize([bad])


def test_payload_size_limit():
    assert serialization.encode("x" * 10, max_bytes=12) == '"xxxxxxxxxx"'
    with pytest.raises(ValueError, match="MAX_PAYLOAD_BYTES"):
        serialization.encode("x" * 11, max_bytes=12)


def test_unserializable_result_is_stored_as_repr():
    assert "repr" in serialization.decode(serialization.encode_result(object()))


def test_a_value_that_contains_itself_is_refused_without_walking_to_the_recursion_limit():
    """Hitting the recursion limit in a worker thread made pytest's (and any) unraisable hook fail too."""
    cyclic: list = []
    cyclic.append(cyclic)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(serialization.MAX_NESTING + 300)  # a walk that follows the cycle fails here
    try:
        with pytest.raises(ValueError, match="more than 200 levels"):
            serialization.normalize({"a": cyclic})
        assert serialization.decode(serialization.encode_result(cyclic)) == {
            "repr": "[[...]]",
            "note": "the return value was not JSON-serializable",
        }
    finally:
        sys.setrecursionlimit(limit)


def test_nesting_up_to_the_limit_is_accepted():
    value: list = []
    for _ in range(serialization.MAX_NESTING - 1):
        value = [value]
    assert serialization.normalize(value) == value
    with pytest.raises(ValueError, match="more than 200 levels"):
        serialization.normalize([value, [value]])


def test_decoding_json_nested_deeper_than_the_limit_is_a_value_error_before_any_deep_walk():
    """json.loads walked such text to the recursion limit, where a collected object's __del__
    (a Redis client's, in a worker) failed in turn and was reported as an unraisable exception."""
    deep = "[" * 5000 + "]" * 5000
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(serialization.MAX_NESTING + 300)
    try:
        for text in (deep, deep.encode(), '{"a":' * 5000 + "1" + "}" * 5000):
            with pytest.raises(ValueError, match="more than 200 levels"):
                serialization.decode(text)
    finally:
        sys.setrecursionlimit(limit)
    brackets_in_strings = json.dumps(["[" * 1000, {"k": "{" * 1000}])
    assert serialization.decode(brackets_in_strings) == ["[" * 1000, {"k": "{" * 1000}]
    wide = [[n] for n in range(1000)]  # many containers, shallow
    assert serialization.decode(json.dumps(wide)) == wide
