"""The bad-input battery against ``brickwork serve``: more than 10,000 malformed infer requests
(generated with hypothesis, plus hand-written ones: malformed JSON, wrong datatype, data length
that disagrees with the shape, shapes claiming 10^12 elements, negative dims, NaN/inf, non-UTF-8
BYTES, a lying binary header length, unknown model and input names). Every one must be answered
4xx with an ``{"error": "..."}`` message: no 5xx, no dropped connection, and afterwards the
server is alive, still answers correctly, and its memory has not grown.

There is no OpenAPI document for the v2 endpoints, so schemathesis has nothing to read; the
strategies below are written against the protocol instead, each mutation one that makes a valid
request invalid (so a 200 is a bug too, not noise).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.e2e import serve_helpers as sh
from tests.e2e.fault_kit import RawClient, rss_bytes

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 2100  # per generated test below; five of them: > 10,000 requests in all
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))

VEC_YAML = """name: vec
bricks:
  vec: {fake: true, shape: [-1, 4], scale: 2.0, worker: inline, blocking: false}
graph: vec
"""

SENT: dict[str, int] = {"requests": 0, "malformed": 0}
JSON_HEADERS = {"Content-Type": "application/json"}
# datatypes that do NOT fit an FP32 input (BOOL, [U]INT8, [U]INT16 and FP16 cast losslessly)
WRONG_DATATYPES = ["FP64", "INT32", "INT64", "UINT32", "UINT64", "BYTES", "BF16"]


class Battery:
    def __init__(self, served: sh.Served) -> None:
        self.served = served
        self.conn = RawClient(served.port, timeout_s=30.0)
        self.rss_start = 0

    def send(self, path: str, body: bytes, headers: dict[str, str] | None = None,
             method: str = "POST") -> tuple[int, dict[str, Any]]:
        status, _, raw = self.conn.request(method, path, body, headers or JSON_HEADERS)
        SENT["requests"] += 1
        doc = orjson.loads(raw) if raw else {}
        return status, doc

    def bad(self, body: bytes, *, model: str = "vec", headers: dict[str, str] | None = None,
            path: str | None = None, method: str = "POST") -> str:
        """Send it; it must be a 4xx with a message. Returns the message."""
        status, doc = self.send(path or f"/v2/models/{model}/infer", body, headers, method)
        SENT["malformed"] += 1
        assert 400 <= status < 500, (status, doc, body[:300])
        message = doc.get("error")
        assert isinstance(message, str) and len(message) > 10, (status, doc)
        return message


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    files = sh.write_models(folder)
    (folder / "vec.yaml").write_text(VEC_YAML)
    served = sh.start([folder / "vec.yaml", files[1]], "--max-body-bytes", "1048576", cwd=folder)
    b = Battery(served)
    try:
        for _ in range(300):  # warm-up: allocator, caches, the first-request paths
            b.bad(b"{")
            b.send("/v2/models/vec/infer", _valid(2))
        b.rss_start = rss_bytes(served.proc.pid)
        yield b
    finally:
        b.conn.close()
        sh.stop(served.proc)


def _dumps(doc: Any) -> bytes:
    """JSON as any client might write it (the stdlib also writes integers past 64 bits)."""
    return json.dumps(doc).encode()


def _valid_doc(rows: int = 1) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4],
                        "data": [float(i) for i in range(rows * 4)]}]}


def _valid(rows: int = 1) -> bytes:
    return orjson.dumps(_valid_doc(rows))


# -- hand-written cases --------------------------------------------------------------------
HAND_WRITTEN: list[tuple[str, bytes]] = [
    ("empty body", b""),
    ("malformed JSON", b'{"inputs": [{"name": "x",'),
    ("JSON array", b"[1, 2, 3]"),
    ("NaN literal", b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[NaN,1,2,3]}]}'),
    ("Infinity literal",
     b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[Infinity,1,2,3]}]}'),
    ("-Infinity literal",
     b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[-Infinity,1,2,3]}]}'),
    ("1e999 overflows to inf", b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1e999,1,2,3]}]}'),
    ("invalid UTF-8 in JSON", b'{"inputs":[{"name":"\xff\xfe","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}'),
    ("no inputs", b'{"inputs": []}'),
    ("inputs not a list", b'{"inputs": {"x": [1, 2, 3, 4]}}'),
    ("unknown input", orjson.dumps({"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 4],
                                                "data": [1, 2, 3, 4]}]})),
    ("wrong datatype", orjson.dumps({"inputs": [{"name": "x", "datatype": "INT64", "shape": [1, 4],
                                                 "data": [1, 2, 3, 4]}]})),
    ("unknown datatype", orjson.dumps({"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1, 4],
                                                   "data": [1, 2, 3, 4]}]})),
    ("data shorter than shape", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                                                          "data": [1, 2, 3, 4]}]})),
    ("data longer than shape", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                                         "data": [1, 2, 3, 4, 5]}]})),
    ("10^12 elements claimed", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32",
                                                         "shape": [250_000_000_000, 4], "data": [1, 2, 3, 4]}]})),
    ("10^12 elements claimed, nested", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32",
                                                                 "shape": [1_000_000, 1_000_000],
                                                                 "data": [[1, 2, 3, 4]]}]})),
    ("negative dim", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4],
                                               "data": [1, 2, 3, 4]}]})),
    ("float dim", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1.0, 4],
                                            "data": [1, 2, 3, 4]}]})),
    ("wrong rank", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [4],
                                             "data": [1, 2, 3, 4]}]})),
    ("wrong inner dim", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2],
                                                  "data": [1, 2, 3, 4]}]})),
    ("ragged nested data", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                                                     "data": [[1, 2, 3, 4], [1, 2, 3]]}]})),
    ("strings as FP32", orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                                  "data": ["a", "b", "c", "d"]}]})),
    ("input given twice", orjson.dumps({"inputs": [_valid_doc()["inputs"][0]] * 2})),
    ("unknown output", orjson.dumps({**_valid_doc(), "outputs": [{"name": "nope"}]})),
    ("negative timeout", orjson.dumps({**_valid_doc(), "parameters": {"timeout_s": -1}})),
    ("id not a string", orjson.dumps({**_valid_doc(), "id": 7})),
]


def _binary(header: dict[str, Any], raw: bytes, claimed: int | None = None) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    length = len(head) if claimed is None else claimed
    return head + raw, {"Content-Type": "application/octet-stream",
                        "Inference-Header-Content-Length": str(length)}


def _binary_cases() -> list[tuple[str, bytes, dict[str, str], str]]:
    x = struct.pack("<4f", 1, 2, 3, 4)
    item = {"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}
    ok_header = {"inputs": [item]}
    cases = []
    for label, claimed in (("header length past the body", 10_000), ("header length cuts the JSON", 5),
                           ("header length negative", -3)):
        body, headers = _binary(ok_header, x, claimed)
        cases.append((label, body, headers, "vec"))
    body, headers = _binary({"inputs": [{**item, "parameters": {"binary_data_size": 1 << 40}}]}, x)
    cases.append(("binary_data_size past the body", body, headers, "vec"))
    body, headers = _binary({"inputs": [{**item, "parameters": {"binary_data_size": 12}}]}, x)
    cases.append(("binary size != shape", body, headers, "vec"))
    body, headers = _binary({"inputs": [{**item, "shape": [250_000_000_000, 4]}]}, x)
    cases.append(("binary 10^12 elements", body, headers, "vec"))
    body, headers = _binary(ok_header, x + b"trailing")
    cases.append(("bytes after the last tensor", body, headers, "vec"))
    bad_header = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "ten"}
    cases.append(("header length not a number", _valid(), bad_header, "vec"))
    text = {"name": "text", "datatype": "BYTES", "shape": [1]}
    for label, raw in (("non-UTF-8 BYTES", struct.pack("<I", 2) + b"\xff\xfe"),
                       ("BYTES element length lies", struct.pack("<I", 99) + b"ab"),
                       ("BYTES count lies", struct.pack("<I", 1) + b"a" + struct.pack("<I", 1))):
        body, headers = _binary({"inputs": [{**text, "parameters": {"binary_data_size": len(raw)}}]}, raw)
        cases.append((label, body, headers, "echo"))
    return cases


def test_hand_written_bad_requests_are_4xx_with_a_message(battery: Battery) -> None:
    seen = {}
    for label, body in HAND_WRITTEN:
        seen[label] = battery.bad(body)
    for label, body, headers, model in _binary_cases():
        seen[label] = battery.bad(body, model=model, headers=headers)
    seen["unknown model"] = battery.bad(_valid(), model="nope")
    seen["infer with GET"] = battery.bad(b"", method="GET")
    seen["body over the limit"] = battery.bad(b"[" + b"0," * 600_000 + b"0]")
    assert "10^12" not in seen["10^12 elements claimed"] and "250000000000" in seen["10^12 elements claimed"]
    assert "nope" in seen["unknown input"] and "nope" in seen["unknown model"]
    assert len(seen) >= 40


# -- generated cases -----------------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=20)


@SETTINGS
@given(body=st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(battery: Battery, body: bytes) -> None:
    battery.bad(body)


@SETTINGS
@given(doc=json_values)
def test_fuzz_arbitrary_json_documents(battery: Battery, doc: Any) -> None:
    battery.bad(_dumps(doc))


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    """A valid request with exactly one field made wrong."""
    rows = st.integers(1, 4)
    not_x = st.text(max_size=10).filter(lambda s: s != "x")
    wrong_dtype = st.sampled_from(WRONG_DATATYPES) | st.text(max_size=6).filter(
        lambda s: s not in ("FP32", "FP16", "BOOL", "INT8", "UINT8", "INT16", "UINT16"))
    bad_dim = st.integers(max_value=-1) | st.integers(min_value=10**6, max_value=10**13) \
        | st.floats(allow_nan=False) | st.text(max_size=3) | st.none()

    def base(n: int) -> dict[str, Any]:
        return _valid_doc(n)

    def with_tensor(n: int, **changes: Any) -> dict[str, Any]:
        doc = base(n)
        doc["inputs"][0].update(changes)
        return doc

    def wrong_length(n: int, extra: int) -> dict[str, Any]:
        data = [1.0] * (n * 4 + extra)
        return with_tensor(n, data=data)

    def wrong_shape(n: int, dim: Any, at: int) -> dict[str, Any]:
        shape: list[Any] = [n, 4]
        shape[at % 2] = dim
        return with_tensor(n, shape=shape)

    def wrong_rank(n: int, shape: list[int]) -> dict[str, Any]:
        return with_tensor(n, shape=shape)

    def wrong_data(n: int, value: Any) -> dict[str, Any]:
        data: list[Any] = [1.0] * (n * 4)
        data[n] = value
        return with_tensor(n, data=data)

    def drop(n: int, key: str) -> dict[str, Any]:
        doc = base(n)
        doc["inputs"][0].pop(key)
        return doc

    return st.one_of(
        st.builds(lambda n, name: with_tensor(n, name=name), rows, not_x),
        st.builds(lambda n, d: with_tensor(n, datatype=d), rows, wrong_dtype),
        st.builds(wrong_length, rows, st.integers(-3, 5).filter(lambda e: e != 0)),
        st.builds(wrong_shape, rows, bad_dim, st.integers(0, 1)),
        st.builds(wrong_rank, rows, st.lists(st.integers(0, 8), max_size=6).filter(
            lambda s: len(s) != 2)),
        st.builds(wrong_data, rows, st.text(max_size=4) | st.none() | st.dictionaries(st.text(max_size=2),
                                                                                       st.integers(), max_size=2)
                  | st.lists(st.integers(), min_size=1, max_size=3)),
        st.builds(drop, rows, st.sampled_from(["name", "datatype", "shape", "data"])),
        st.builds(lambda n, v: {**base(n), "inputs": v}, rows, json_values.filter(
            lambda v: not (isinstance(v, list) and v))),
        st.builds(lambda n, v: {**base(n), "parameters": v}, rows, json_values.filter(
            lambda v: v is not None and not isinstance(v, dict))),  # null = no parameters
        st.builds(lambda n, v: {**base(n), "outputs": v}, rows, json_values.filter(
            lambda v: v is not None and not (isinstance(v, list) and all(isinstance(o, dict) and o.get("name") in ("y",)
                                                       for o in v)))),
    )


@SETTINGS
@given(doc=_mutations())
def test_fuzz_valid_request_with_one_field_wrong(battery: Battery, doc: dict[str, Any]) -> None:
    battery.bad(_dumps(doc))


@SETTINGS
@given(rows=st.integers(1, 3), shape=st.lists(st.integers(0, 10**7), min_size=1, max_size=4),
       size=st.integers(-5, 1 << 41), claimed=st.integers(-(1 << 20), 1 << 20), trailing=st.binary(max_size=8))
def test_fuzz_binary_framing_that_lies(battery: Battery, rows: int, shape: list[int], size: int, claimed: int,
                                       trailing: bytes) -> None:
    raw = struct.pack(f"<{rows * 4}f", *range(rows * 4))
    header = {"inputs": [{"name": "x", "datatype": "FP32", "shape": shape,
                          "parameters": {"binary_data_size": size}}]}
    head = orjson.dumps(header)
    honest = shape == [rows, 4] and size == len(raw) and claimed == len(head) and not trailing
    if honest:  # the one valid combination: make it lie about the header length instead
        claimed += 1
    body = head + raw + trailing
    battery.bad(body, headers={"Content-Type": "application/octet-stream",
                               "Inference-Header-Content-Length": str(claimed)})


@SETTINGS
@given(items=st.lists(st.binary(max_size=6), min_size=1, max_size=4), lie=st.integers(-3, 3),
       count=st.integers(0, 6))
def test_fuzz_bytes_tensors_with_lying_lengths_or_bad_utf8(battery: Battery, items: list[bytes], lie: int,
                                                           count: int) -> None:
    """BYTES elements whose lengths or count lie, or that are not UTF-8 (the model takes str)."""
    raw = b"".join(struct.pack("<I", len(b)) + b for b in items)
    valid_utf8 = all(_utf8(b) for b in items)
    if lie == 0 and count == len(items) and valid_utf8:
        lie = 1  # make it a lie
    if lie:
        raw = raw[:-1] if lie < 0 and raw else raw + b"\0" * lie
    header = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [count],
                          "parameters": {"binary_data_size": len(raw)}}]}
    head = orjson.dumps(header)
    battery.bad(head + raw, model="echo", headers={"Content-Type": "application/octet-stream",
                                                   "Inference-Header-Content-Length": str(len(head))})


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_after_the_battery_the_server_is_alive_correct_and_its_memory_bounded(battery: Battery) -> None:
    assert SENT["malformed"] >= 10_000, SENT
    status, doc = battery.send("/v2/models/vec/infer", _valid(2))
    assert status == 200 and doc["outputs"][0]["data"] == [2.0 * i for i in range(8)]
    status, _ = battery.send("/v2/health/ready", b"", method="GET")
    assert status == 200
    rss = rss_bytes(battery.served.proc.pid)
    growth = rss - battery.rss_start
    print(f"\nfuzz: {SENT['malformed']} malformed requests (all 4xx), server RSS {battery.rss_start / 2**20:.1f} -> "
          f"{rss / 2**20:.1f} MiB")
    assert growth <= max(0.10 * battery.rss_start, 16 * 2**20), f"RSS grew {growth / 2**20:.1f} MiB"
    assert battery.served.proc.poll() is None and not math.isnan(rss)
