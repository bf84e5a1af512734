"""One trace across two chained `brickwork serve --trace` processes: the front's v2 brick calls
the upstream server, the W3C traceparent crosses the wire, and the spans both processes print
(OTEL_TRACES_EXPORTER=console, JSON on stderr) share the client's trace id, the upstream's
request span being the child of the front's batch span."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.e2e import serve_helpers as sh

pytest.importorskip("opentelemetry.sdk.trace")

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def _spans(text: str) -> list[dict]:
    """The JSON objects in ``text`` that look like spans (ConsoleSpanExporter's output)."""
    dec, out, i = json.JSONDecoder(), [], 0
    while (i := text.find("{\n", i)) >= 0:
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        if isinstance(obj, dict) and "context" in obj and "name" in obj:
            out.append(obj)
        i = end
    return out


def test_one_trace_across_two_serve_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    calc, _ = sh.write_models(tmp_path)
    up = sh.start([calc], "--trace", cwd=tmp_path)
    try:
        front = tmp_path / "front.yaml"
        front.write_text(f'name: front\nbricks:\n  remote: {{v2: "{up.url}", model: calc, call_timeout_s: 10}}\n'
                         "graph: remote\n")
        fr = sh.start([front], "--trace", cwd=tmp_path)
        try:
            r = httpx.post(f"{fr.url}/v2/models/front/infer", timeout=30,
                           headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"},
                           json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
            assert r.status_code == 200, r.text
        finally:
            sh.stop(fr.proc)
    finally:
        sh.stop(up.proc)
    front_spans = _spans(fr.proc.stderr.read() if fr.proc.stderr else "")
    up_spans = _spans(up.proc.stderr.read() if up.proc.stderr else "")
    names = sorted(s["name"] for s in front_spans + up_spans)
    assert names == ["infer calc", "infer front", "stage calc", "stage remote"], names
    assert {s["context"]["trace_id"] for s in front_spans + up_spans} == {"0x" + TRACE_ID}
    by = {s["name"]: s for s in front_spans + up_spans}
    assert by["infer front"]["parent_id"] == "0x" + PARENT
    assert by["stage remote"]["parent_id"] == by["infer front"]["context"]["span_id"]
    assert by["infer calc"]["parent_id"] == by["stage remote"]["context"]["span_id"]  # across processes
    assert by["stage calc"]["parent_id"] == by["infer calc"]["context"]["span_id"]
