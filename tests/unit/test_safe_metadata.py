"""`safe_metadata`: any user metadata becomes a value orjson can write and the engine can parse."""

from __future__ import annotations

import math

import orjson
from latechunk.index.actions import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, TRUNCATED, safe_metadata


def test_values_json_cannot_carry_are_replaced():
    cleaned = safe_metadata({
        "big": 2**64, "unsigned": 2**64 - 1, "small": -(2**63), "smaller": -(2**63) - 1, "nan": math.nan,
        "inf": -math.inf, "tuple": (1, 2), "set": {3}, "text": "a\udc80b", 7: "int key",
    })  # fmt: skip
    assert cleaned == {
        "big": str(2**64), "unsigned": 2**64 - 1, "small": -(2**63), "smaller": str(-(2**63) - 1), "nan": None,
        "inf": None, "tuple": [1, 2], "set": "{3}", "text": "a?b", "7": "int key",
    }  # fmt: skip
    orjson.dumps(cleaned)


def test_nesting_is_cut_at_the_depth_bound_in_lists_too():
    value: list = []
    node = value
    for _ in range(400):
        node.append([])
        node = node[0]
    cleaned = safe_metadata({"nested": value})
    orjson.dumps(cleaned)
    depth, node = 0, cleaned["nested"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert depth == MAX_METADATA_DEPTH - 1 and node is None


def test_the_whole_is_bounded_and_says_what_it_lost():
    cleaned = safe_metadata({"a": "x" * 100, "b": "y" * MAX_METADATA_BYTES, "c": 3})
    assert cleaned == {"a": "x" * 100, "c": 3, TRUNCATED: True}
    assert len(orjson.dumps(safe_metadata({f"k{i}": "z" * 100 for i in range(1000)}))) <= MAX_METADATA_BYTES + 20
    assert safe_metadata({}) == {}
