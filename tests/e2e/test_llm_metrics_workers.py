"""`brickwork serve --workers 2` with the local test LLM: the OpenAI front's usage counts, time to
first token and tokens/s per stream in /metrics are the sums over both workers. Each client
learns which worker its connection reached (a `who` model on the same keep-alive connection
answers the worker's PID), so the test knows both workers streamed; every scrape, whichever
worker answers it, must equal the sum of the usage the clients received."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e import serve_helpers as sh
from tests.integration.llm_kit import generator_dir

parser = pytest.importorskip("prometheus_client.parser")

WHO = '''
import os
from typing import Annotated

import numpy as np

import brickwork as bw


def who(x: Annotated[np.ndarray, bw.Tensor("FP32", (1,))]) -> Annotated[np.ndarray, bw.Tensor("INT64", ())]:
    return np.full(len(x), os.getpid(), dtype=np.int64)
'''
WHO_YAML = """name: who
bricks:
  who: {python: "models:who", batch: true, outputs: pid}
graph: who
"""
GEN_YAML = """name: gen
bricks:
  llm: {llm: {transformers: DIR, max_batch_size: 8, torch_threads: 1}}
graph: llm
"""
WHO_BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [0]}]}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in parser.text_string_to_metric_families(text) for s in f.samples}


def _one(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted({"model": "gen", **labels}.items())))
    assert key in samples, f"no {key} in {sorted(k for k in samples if 'llm' in k[0])}"
    return samples[key]


def _client(url: str, i: int) -> tuple[int, dict[str, int], str]:
    """One connection: which worker it reached, then one stream (or a plain completion) on it."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(timeout=120.0, limits=limits) as http:
        r = http.post(url + "/v2/models/who/infer", json=WHO_BODY)
        assert r.status_code == 200, r.text
        pid = int(r.json()["outputs"][0]["data"][0])
        body: dict[str, Any] = {"model": "gen", "prompt": "A brick is " * (1 + i % 4), "max_tokens": 8 + 3 * i,
                                "temperature": 1.0, "seed": i}
        if i % 3 == 2:  # a plain completion: usage, but no stream figures
            r = http.post(url + "/v1/completions", json=body)
            assert r.status_code == 200, r.text
            return pid, r.json()["usage"], "plain"
        usage = None
        with http.stream("POST", url + "/v1/completions",
                         json={**body, "stream": True, "stream_options": {"include_usage": True}}) as s:
            assert s.status_code == 200
            for line in s.iter_lines():
                if line.startswith("data: {"):
                    usage = json.loads(line[6:]).get("usage") or usage
        assert usage is not None
        return pid, usage, "stream"


def test_llm_usage_ttft_and_tokens_per_s_sum_over_workers(tmp_path: Path) -> None:
    (tmp_path / "models.py").write_text(WHO)
    (tmp_path / "who.yaml").write_text(WHO_YAML)
    (tmp_path / "gen.yaml").write_text(GEN_YAML.replace("DIR", str(generator_dir())))
    served = sh.start([tmp_path / "gen.yaml", tmp_path / "who.yaml"], "--workers", "2", cwd=tmp_path,
                      timeout_s=120)
    try:
        results: list[tuple[int, dict[str, int], str]] = []
        with ThreadPoolExecutor(6) as pool:  # rounds of 6 concurrent clients until both workers streamed
            while len({pid for pid, _, kind in results if kind == "stream"}) < 2 and len(results) < 60:
                results += pool.map(lambda i: _client(served.url, i), range(len(results), len(results) + 6))
        pids = {pid for pid, _, kind in results if kind == "stream"}
        assert len(pids) == 2, f"every stream landed on one worker ({pids}) in {len(results)} connections"
        streams = sum(kind == "stream" for _, _, kind in results)
        prompt = sum(u["prompt_tokens"] for _, u, _ in results)
        completion = sum(u["completion_tokens"] for _, u, _ in results)
        per_worker = {p: sum(u["completion_tokens"] for pid, u, _ in results if pid == p) for p in pids}
        assert all(0 < n < completion for n in per_worker.values())  # one worker's count is not the total
        for _ in range(6):  # new connections: whichever worker answers, the same sums
            with httpx.Client(timeout=10.0) as http:
                samples = _samples(http.get(served.url + "/metrics").text)
            assert _one(samples, "brickwork_llm_prompt_tokens_total") == prompt
            assert _one(samples, "brickwork_llm_completion_tokens_total") == completion
            assert _one(samples, "brickwork_llm_requests_total", endpoint="completions") == len(results)
            assert _one(samples, "brickwork_llm_time_to_first_token_seconds_count") == streams
            assert _one(samples, "brickwork_llm_time_to_first_token_seconds_bucket", le="+Inf") == streams
            assert _one(samples, "brickwork_llm_time_to_first_token_seconds_sum") > 0
            with_tps = sum(kind == "stream" and u["completion_tokens"] > 1 for _, u, kind in results)
            assert _one(samples, "brickwork_llm_stream_tokens_per_second_count") == with_tps
    finally:
        sh.stop(served.proc)
