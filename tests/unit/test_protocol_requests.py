"""The infer-request envelope: any JSON value in any field is a 400 (InvalidInput) that names
the field — never another exception (a TypeError or ValueError there was a 500)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brickwork.errors import InvalidInput
from brickwork.protocol import decode_request
from brickwork.spec import TensorSpec

INPUTS = {"x": TensorSpec("x", "FP32", (-1, 4)), "t": TensorSpec("t", "BYTES", (-1,))}
OUTPUTS = {"y": TensorSpec("y", "FP32", (-1, 4)), "n": TensorSpec("n", "INT64", (-1,))}


def valid() -> dict[str, Any]:
    return {"id": "r", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                                  {"name": "t", "datatype": "BYTES", "shape": [1], "data": ["a"]}],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "n"}],
            "parameters": {"timeout_s": 1.0, "binary_data_output": False}}


def decode(doc: Any) -> Any:
    return decode_request(json.dumps(doc).encode(), None, INPUTS, OUTPUTS, "m")


json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=6)
                | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)

# (path into the valid request, the word the 400 must name)
FIELDS = [
    (("id",), "id"),
    (("inputs",), "inputs"),
    (("inputs", 0), "input"),
    (("inputs", 0, "name"), "name"),
    (("inputs", 0, "datatype"), "datatype"),
    (("inputs", 0, "shape"), "shape"),
    (("inputs", 0, "data"), "data"),
    (("inputs", 0, "parameters"), "parameters"),
    (("inputs", 1, "data"), "data"),
    (("outputs",), "outputs"),
    (("outputs", 0), "outputs"),
    (("outputs", 0, "name"), "output"),
    (("outputs", 0, "parameters"), "parameters"),
    (("outputs", 0, "parameters", "binary_data"), "binary_data"),
    (("parameters",), "parameters"),
    (("parameters", "timeout_s"), "timeout"),
    (("parameters", "binary_data_output"), "binary_data_output"),
]


def put(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_any_json_value_in_any_field_is_a_400_naming_the_field_or_is_accepted(field, value):
    path, word = field
    doc = put(valid(), path, value)
    try:
        decode(doc)
    except InvalidInput as exc:
        assert word in exc.message or "input" in exc.message, (path, value, exc.message)
        assert len(exc.message) < 2000


@pytest.mark.parametrize("path, value, needle", [
    (("inputs", 0, "datatype"), ["FP32"], "datatype"),            # was TypeError (unhashable)
    (("inputs", 0, "datatype"), {"a": 1}, "datatype"),
    (("inputs", 0, "shape"), [0, 2**63], "shape"),                # was ValueError in numpy
    (("inputs", 0, "shape"), [0, 2**62, 4], "shape"),
    (("inputs", 1, "shape"), [0, 2**40, 2**40], "shape"),
    (("inputs", 0, "parameters"), [1], "parameters"),
    (("outputs", 0, "parameters", "binary_data"), "yes", "binary_data"),
    (("parameters", "binary_data_output"), 1, "binary_data_output"),
    (("parameters", "timeout"), "1", "timeout"),
])
def test_type_confusion_is_a_400_naming_the_field(path, value, needle):
    doc = put(valid(), path, value)
    if path == ("parameters", "timeout"):
        del doc["parameters"]["timeout_s"]
    with pytest.raises(InvalidInput, match=needle):
        decode(doc)


@pytest.mark.parametrize("binary", [False, True])
def test_a_shape_with_a_zero_dim_and_dims_past_int64_is_a_400(binary):
    item = {"name": "t", "datatype": "BYTES", "shape": [0, 2**63], "data": []}
    if binary:
        item = {**item, "datatype": "BYTES", "parameters": {"binary_data_size": 0}}
        del item["data"]
    doc = valid()
    doc["inputs"][1] = item
    with pytest.raises(InvalidInput, match="shape"):
        decode(doc)


def test_a_duplicate_requested_output_is_a_400():
    doc = valid()
    doc["outputs"] = [{"name": "y"}, {"name": "y"}]
    with pytest.raises(InvalidInput, match="requested twice"):
        decode(doc)


def test_names_datatypes_and_fixed_dims_are_checked_before_any_value_is_decoded():
    # data that would take long to decode (and is wrong anyway) is never looked at
    big = ["not a number"] * 100_000
    for item, needle in [({"name": "zz", "datatype": "FP32", "shape": [25_000, 4], "data": big}, "unknown input"),
                         ({"name": "x", "datatype": "FP64", "shape": [25_000, 4], "data": big}, "expected datatype"),
                         ({"name": "x", "datatype": "FP32", "shape": [100_000], "data": big}, "expected rank"),
                         ({"name": "x", "datatype": "FP32", "shape": [50_000, 2], "data": big}, "expected shape")]:
        with pytest.raises(InvalidInput, match=needle):
            decode({"inputs": [item]})
