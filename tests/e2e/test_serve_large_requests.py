"""Legitimate requests through ``brickwork serve`` (uvloop) that used to fail: the quickstart
with ``--backend process`` answering 1,000 and 10,000 texts in one request (before: 503
"poison" in 4 of 5 and 5 of 5), and zero texts (before: a 400 blaming the internal brick
'scorer'), on both backends."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from tests.e2e import serve_helpers as sh

pytestmark = pytest.mark.timeout(240)

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def _texts(n: int) -> list[str]:
    words = ("I love it, great!", "terrible and awful", "an ordinary day", "best thing ever!!")
    return [f"{words[i % 4]} #{i}" for i in range(n)]


@pytest.mark.parametrize("backend", ["local", "process"])
def test_quickstart_answers_large_and_empty_requests(tmp_path: Path, backend: str) -> None:
    for name in ("pipeline.yaml", "steps.py", "scorer.onnx"):
        shutil.copy(QUICKSTART / name, tmp_path / name)
    url = "/v2/models/quickstart/infer"
    with sh.served([tmp_path / "pipeline.yaml"], "--backend", backend, cwd=tmp_path) as served, \
            httpx.Client(base_url=served.url, timeout=60.0) as http:
        for n in (1_000, 10_000, 1_000, 10_000):
            body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [n], "data": _texts(n)}]}
            r = http.post(url, json=body)
            assert r.status_code == 200, (n, r.status_code, r.text[:500])
            outs = {o["name"]: o for o in r.json()["outputs"]}
            assert outs["probability"]["shape"] == [n, 1] and outs["decision"]["shape"] == [n]
            assert outs["decision"]["data"][:2] == ["positive", "negative"]
        r = http.post(url, json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [0], "data": []}]})
        assert r.status_code == 200, r.text
        outs = {o["name"]: o for o in r.json()["outputs"]}
        assert outs["probability"]["shape"] == [0, 1] and outs["probability"]["data"] == []
        assert outs["decision"]["shape"] == [0] and outs["decision"]["data"] == []
