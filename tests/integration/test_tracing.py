"""OpenTelemetry tracing across two chained servers, with the SDK's in-memory exporter: a
client's traceparent → the front server's request span → the batch span of its v2 brick →
(traceparent on the wire) → the upstream server's request span → its stage's batch span: one
trace. A batch span links to the requests in it. Off, nothing is recorded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

import httpx
import numpy as np
import pytest

import brickwork as bw
from brickwork import tracing
from brickwork.server import ServerThread

sdk = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def double(x: Vec) -> Vec:
    return x * 2


@pytest.fixture()
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


def _body(rows: int) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": [1.0] * 4 * rows}]}


def test_one_trace_across_two_chained_servers(spans: InMemorySpanExporter) -> None:
    upstream_pipe = bw.graph(bw.function(double, batch=True), name="calc").compile()
    with ServerThread(upstream_pipe) as upstream:
        with ServerThread(_front(upstream.url)) as front:
            r = httpx.post(f"{front.url}/v2/models/front/infer", json=_body(2),
                           headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["outputs"][0]["data"][:4] == [2.0] * 4
    finished = spans.get_finished_spans()
    by_name: dict[str, list] = {}
    for s in finished:
        by_name.setdefault(s.name, []).append(s)
    assert {"infer front", "infer calc"} <= set(by_name), sorted(by_name)
    assert len({format(s.context.trace_id, "032x") for s in finished}) == 1  # one trace
    assert format(finished[0].context.trace_id, "032x") == TRACE_ID  # the client's

    (front_req,) = by_name["infer front"]
    assert format(front_req.parent.span_id, "016x") == PARENT_ID
    (front_batch,) = by_name["stage calc"]  # the front's v2 brick, named calc
    assert front_batch.parent.span_id == front_req.context.span_id
    assert [link.context.span_id for link in front_batch.links] == [front_req.context.span_id]
    (up_req,) = by_name["infer calc"]
    assert up_req.parent.span_id == front_batch.context.span_id  # carried by the traceparent header
    (up_batch,) = by_name["stage double"]  # the upstream's stage: a function named double
    assert up_batch.parent.span_id == up_req.context.span_id
    assert up_batch.attributes["brickwork.rows"] == 2 and up_batch.attributes["brickwork.requests"] == 1


def _front(upstream_url: str) -> bw.Pipeline:
    from brickwork.graph import parse_pipeline

    text = f'name: front\nbricks:\n  calc: {{v2: "{upstream_url}", model: calc, call_timeout_s: 10}}\ngraph: calc\n'
    return parse_pipeline(text).compile()


def slow_double(x: Vec) -> Vec:
    time.sleep(0.2)
    return x * 2


def test_a_batch_links_every_request_in_it(spans: InMemorySpanExporter) -> None:
    import concurrent.futures as cf

    # a brick busy for 0.2 s a call, on a worker thread: the requests that arrive while the first
    # computes form the next batch (a free stage runs a lone request at once, by design)
    slow = bw.graph(bw.function(slow_double, batch=True, blocking=True, name="double",
                                batching=bw.Batching(max_batch_size=64, max_delay_s=0.05)),
                    name="calc").compile()
    with ServerThread(slow) as srv, cf.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: httpx.post(f"{srv.url}/v2/models/calc/infer", json=_body(1),
                                                   timeout=30).status_code, range(8)))
    assert codes == [200] * 8
    finished = spans.get_finished_spans()
    requests = {s.context.span_id for s in finished if s.name == "infer calc"}
    batches = [s for s in finished if s.name == "stage double"]
    assert len(requests) == 8
    linked = {link.context.span_id for b in batches for link in b.links}
    assert linked == requests  # every request is linked from the batch it ran in
    assert max(len(b.links) for b in batches) > 1  # and some ran together
    assert sum(b.attributes["brickwork.requests"] for b in batches) == 8


def test_off_records_nothing() -> None:
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.TRACER is None
    with ServerThread(bw.graph(bw.function(double, batch=True), name="calc").compile()) as srv:
        assert httpx.post(f"{srv.url}/v2/models/calc/infer", json=_body(1)).status_code == 200
    assert exporter.get_finished_spans() == ()
    assert tracing.outgoing() == {}


def test_the_request_log_is_sampled_and_carries_the_trace_id(spans: InMemorySpanExporter,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="brickwork.access")
    pipe = bw.graph(bw.function(double, batch=True), name="calc").compile()
    with ServerThread(pipe, access_log=True, access_log_sample=0.0) as srv:
        for _ in range(5):  # successes: sampled at 0, none written
            assert httpx.post(f"{srv.url}/v2/models/calc/infer", json=_body(1)).status_code == 200
        bad = httpx.post(f"{srv.url}/v2/models/calc/infer", json={"inputs": []},
                         headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert bad.status_code == 400  # an error: always written
    records = [r for r in caplog.records if r.name == "brickwork.access"]
    assert len(records) == 1, [r.getMessage() for r in records]
    (rec,) = records
    assert rec.status == 400 and rec.model == "calc" and rec.trace_id == TRACE_ID
    assert rec.latency_ms >= 0 and rec.rungs == {}
