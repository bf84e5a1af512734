"""The gRPC messages and codec: wire-compatible with tritonclient's generated classes, typed
contents and raw contents decoded strictly, errors mapped to status codes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("google.protobuf")
from brickwork.errors import (
    DeadlineExceeded,
    InvalidInput,
    ModelError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
    UpstreamError,
    WorkerCrashed,
)
from brickwork.protocol import _grpc_pb as pb
from brickwork.protocol._infer import InferRequest
from brickwork.protocol.grpc import decode_grpc_request, encode_grpc_response
from brickwork.spec import TensorSpec

MESSAGES = [n for n in pb.__all__ if n != "SERVICE"]


def _fields(d, prefix=""):
    out = {prefix + f.name: (f.number, f.type, str(f.message_type and f.message_type.full_name))
           for f in d.fields}
    for n in d.nested_types:
        out.update(_fields(n, prefix + n.name + "."))
    return out


@pytest.mark.parametrize("name", MESSAGES)
def test_messages_match_tritonclients_field_for_field(name):
    theirs = pytest.importorskip("tritonclient.grpc.service_pb2")
    assert _fields(getattr(pb, name).DESCRIPTOR) == _fields(getattr(theirs, name).DESCRIPTOR)
    assert getattr(pb, name).DESCRIPTOR.full_name == getattr(theirs, name).DESCRIPTOR.full_name


def test_service_methods_match_tritonclients():
    theirs = pytest.importorskip("tritonclient.grpc.service_pb2")
    ours = pb.ModelInferRequest.DESCRIPTOR.file.services_by_name["GRPCInferenceService"]
    full = theirs.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert f"{ours.file.package}.{ours.name}" == pb.SERVICE
    for m in ours.methods:
        t = full.methods_by_name[m.name]
        assert (m.input_type.full_name, m.output_type.full_name, m.client_streaming, m.server_streaming) == (
            t.input_type.full_name, t.output_type.full_name, t.client_streaming, t.server_streaming)
    assert len(ours.methods) == 7


def test_bytes_round_trip_between_our_classes_and_tritonclients():
    theirs = pytest.importorskip("tritonclient.grpc.service_pb2")
    req = theirs.ModelInferRequest(model_name="m", id="7")
    t = req.inputs.add(name="x", datatype="FP32", shape=[2])
    t.contents.fp32_contents.extend([1.0, 2.0])
    req.raw_input_contents.append(b"\x00" * 4)
    req.parameters["timeout"].int64_param = 5
    ours = pb.ModelInferRequest.FromString(req.SerializeToString())
    assert ours.inputs[0].contents.fp32_contents == [1.0, 2.0]
    assert ours.parameters["timeout"].int64_param == 5
    back = theirs.ModelInferRequest.FromString(ours.SerializeToString())
    assert back == req


SPECS = {"a": TensorSpec("a", "INT8", (-1,)), "b": TensorSpec("b", "BYTES", (-1,))}
OUTS = {"y": TensorSpec("y", "FP32", (-1,))}


def _request(**over):
    msg = pb.ModelInferRequest(model_name="m")
    a = msg.inputs.add(name="a", datatype="INT8", shape=[3])
    a.contents.int_contents.extend(over.get("a", [1, -2, 3]))
    b = msg.inputs.add(name="b", datatype="BYTES", shape=[1])
    b.contents.bytes_contents.append(b"hi")
    return msg


def test_typed_contents_decode_to_the_declared_dtype():
    req = decode_grpc_request(_request(), SPECS, OUTS, "m")
    assert req.inputs["a"].dtype == np.int8 and req.inputs["a"].tolist() == [1, -2, 3]
    assert req.inputs["b"].tolist() == [b"hi"]
    assert req.outputs is None and req.id is None and req.timeout_s is None


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda m: m.inputs[0].contents.int_contents.append(4), r"shape \[3\] has 3 elements, contents.int_contents has 4"),
    (lambda m: m.inputs[0].contents.int_contents.__setitem__(0, 300), "300 is out of range for INT8"),
    (lambda m: m.inputs.add(name="a", datatype="INT8"), "given twice"),
    (lambda m: m.inputs.add(name="zz", datatype="INT8"), "unknown input 'zz'"),
    (lambda m: m.inputs.pop(), r"missing input\(s\) \['b'\]"),
    (lambda m: m.raw_input_contents.append(b"x"), "raw_input_contents has 1 entries for 2 inputs"),
    (lambda m: m.outputs.add(name="nope"), "unknown output 'nope'"),
    (lambda m: setattr(m.inputs[0], "datatype", "FP8"), "unknown datatype 'FP8'"),
    (lambda m: m.parameters["timeout"].CopyFrom(pb.InferParameter(string_param="soon")), "timeout"),
])
def test_bad_requests_are_invalid_input(mutate, match):
    msg = _request()
    mutate(msg)
    with pytest.raises(InvalidInput, match=match):
        decode_grpc_request(msg, SPECS, OUTS, "m")


def test_raw_contents_checked_against_the_shape():
    msg = pb.ModelInferRequest(model_name="m", raw_input_contents=[b"\x00" * 8])
    msg.inputs.add(name="y", datatype="FP32", shape=[3])
    with pytest.raises(InvalidInput, match="needs 12 bytes of FP32, got 8"):
        decode_grpc_request(msg, OUTS, OUTS, "m")
    msg.raw_input_contents[0] = np.arange(3, dtype=np.float32).tobytes()
    assert decode_grpc_request(msg, OUTS, OUTS, "m").inputs["y"].tolist() == [0.0, 1.0, 2.0]


def test_response_is_raw_in_requested_order_with_rungs():
    req = InferRequest({}, [("n", True), ("y", True)], True, "7", None)
    result = {"y": np.array([1.5], np.float32), "n": np.array([b"ab"], dtype=object)}
    msg = encode_grpc_response("m", req, result, ("y", "n"), {"ladder": "cheap"})
    assert [o.name for o in msg.outputs] == ["n", "y"]
    assert msg.raw_output_contents[0] == b"\x02\x00\x00\x00ab"
    assert np.frombuffer(msg.raw_output_contents[1], np.float32).tolist() == [1.5]
    assert msg.id == "7" and msg.parameters["rung.ladder"].string_param == "cheap"


def test_errors_map_to_grpc_status_codes():
    grpc = pytest.importorskip("grpc")
    from brickwork.server._grpc import grpc_status

    sc = grpc.StatusCode
    cases = [(InvalidInput("x"), sc.INVALID_ARGUMENT), (NotFound("x"), sc.NOT_FOUND),
             (Unauthorized("x"), sc.UNAUTHENTICATED), (PayloadTooLarge("x"), sc.RESOURCE_EXHAUSTED),
             (ModelError("x"), sc.INTERNAL), (Overloaded("x"), sc.UNAVAILABLE),
             (WorkerCrashed("x"), sc.UNAVAILABLE), (DeadlineExceeded("x"), sc.DEADLINE_EXCEEDED),
             (UpstreamError("x"), sc.UNAVAILABLE), (UpstreamError("x", 503), sc.UNAVAILABLE),
             (UpstreamError("x", 400), sc.INTERNAL), (ValueError("x"), sc.INTERNAL)]
    for exc, want in cases:
        got, _message, _kind, _status = grpc_status(exc)
        assert got == want, exc
    assert grpc_status(ValueError("secret"))[1] == "internal server error: ValueError"
    assert grpc_status(Overloaded("busy"))[1:] == ("busy", "Overloaded", 503)


def test_committed_descriptor_is_what_protoc_makes_of_the_proto(tmp_path):
    """`make grpc-proto` was run after the last edit of grpc_service.proto."""
    protoc = pytest.importorskip("grpc_tools.protoc")
    from pathlib import Path

    from google.protobuf import descriptor_pb2

    from brickwork.protocol._grpc_descriptor import SERIALIZED

    folder = Path(pb.__file__).parent
    out = tmp_path / "set.pb"
    assert protoc.main(["protoc", f"-I{folder}", f"--descriptor_set_out={out}", "grpc_service.proto"]) == 0
    (made,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    assert made == descriptor_pb2.FileDescriptorProto.FromString(SERIALIZED)


def test_response_names_the_members_of_deadline_ensembles():
    from brickwork.engine import InferResult

    req = InferRequest({}, None, True, None, None)
    result = InferResult({"y": np.array([1.5], np.float32)}, {})
    result.members = {"sensors": ("camera", "radar")}
    msg = encode_grpc_response("m", req, result, ("y",), {})
    assert msg.parameters["members.sensors"].string_param == "camera,radar"
