"""Faults through ``brickwork serve`` (a subprocess on loopback, real worker processes):

* every fault figure in /metrics after inducing it: worker restarts and hangs, breaker state,
  retries, timeouts, open-circuit rejections, fallback answers per rung (the static default too);
* a poison request fails after two worker deaths with a clear error, and no policy retries it;
* a model that raised on its input is reported (500), neither retried nor sent to the fallback;
  `retry_on: any` and a ladder ending in `{on: any}` change that;
* bulkheads: a hung stage does not delay another pipeline, nor another branch of its own;
* a replacement worker warms up before it takes traffic, and readiness says 503 while a
  required stage has no live replica and no fallback, 200 again once it is back.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e import serve_helpers as sh
from tests.e2e.fault_kit import assert_gone, metrics, workers

pytestmark = pytest.mark.timeout(180)

FAULTMODS = '''
import os
import time
from typing import Annotated, TypedDict

import numpy as np

import brickwork as bw

WARM_S = 1.0
_calls = 0

F32 = Annotated[np.ndarray, bw.Tensor("FP32")]
I64 = Annotated[np.ndarray, bw.Tensor("INT64")]


class Warm(TypedDict):
    y: F32
    calls_before: I64
    pid: I64


def slow_to_warm(x: F32) -> Warm:
    """y = 2x. The first call in a process (the warm-up, if the engine warms before traffic)
    takes WARM_S; every answer says how many calls this process made before it."""
    global _calls
    before, _calls = _calls, _calls + 1
    if before == 0:
        time.sleep(WARM_S)
    n = x.shape[0]
    return {"y": x * 2, "calls_before": np.full(n, before, np.int64), "pid": np.full(n, os.getpid(), np.int64)}


def rules(x: F32) -> Warm:
    n = x.shape[0]
    return {"y": -x, "calls_before": np.zeros(n, np.int64), "pid": np.zeros(n, np.int64)}
'''

# crash_on 13: the worker process dies (os._exit); hang_on 7: it blocks; fail_on 500: the model raises
LADDER_YAML = """name: ladder
bricks:
  primary: {fake: true, scale: 2.0, crash_on: 13.0, hang_on: 7.0, worker: process, timeout_s: 3.0,
            retries: 1, breaker: {failures: 2, reset_after_s: 1.0},
            fallback: [backup, {default: {y: 0.0}}]}
  backup:  {fake: true, scale: -2.0, crash_on: 13.0, worker: inline, blocking: false}
graph: primary
"""

STRICT_YAML = """name: strict
bricks:
  model:  {fake: true, scale: 2.0, fail_on: 500.0, worker: process, retries: 3,
           breaker: {failures: 1, reset_after_s: 60.0}, fallback: [backup]}
  backup: {fake: true, scale: -2.0, worker: inline, blocking: false}
graph: model
"""

LENIENT_YAML = """name: lenient
bricks:
  model:  {fake: true, scale: 2.0, fail_on: 500.0, worker: process, retries: 1, retry_on: any}
  backup: {fake: true, scale: -2.0, worker: inline, blocking: false}
graph: {fallback: [model, backup, {on: any}]}
"""

FRAGILE_YAML = """name: fragile
bricks:
  model: {fake: true, scale: 2.0, crash_on: 13.0, worker: process, retries: 2}
graph: model
"""

STUCK_YAML = """name: stuck
bricks:
  model: {fake: true, hang_on: 7.0, worker: process, timeout_s: 2.0, batching: {max_queue_size: 4}}
graph: model
"""

FAST_YAML = """name: fast
bricks:
  model: {fake: true, scale: 3.0, worker: inline, blocking: false}
graph: model
"""

LANES_YAML = """name: lanes
inputs:
  - {name: lane, datatype: BYTES, shape: [-1]}
  - {name: x, datatype: FP32, shape: [-1]}
bricks:
  slow: {fake: true, hang_on: 7.0, worker: process, timeout_s: 2.0}
  quick: {fake: true, scale: 3.0, worker: inline, blocking: false}
graph: {switch: {on: lane, cases: {slow: slow, quick: quick}}}
outputs: [y]
"""

LONE_YAML = """name: lone
bricks:
  warm: {python: "faultmods:slow_to_warm", batch: true, worker: process}
graph: warm
"""

COVERED_YAML = """name: covered
bricks:
  warm:  {python: "faultmods:slow_to_warm", batch: true, worker: process, timeout_s: 0.5,
          fallback: [rules]}
  rules: {python: "faultmods:rules", batch: true}
graph: warm
"""


def _body(x: list[float], **extra: Any) -> dict[str, Any]:
    inputs = [{"name": "x", "datatype": "FP32", "shape": [len(x)], "data": x}]
    for name, values in extra.items():
        inputs.append({"name": name, "datatype": "BYTES", "shape": [len(values)], "data": values})
    return {"inputs": inputs}


def infer(http: httpx.Client, model: str, x: list[float], **extra: Any) -> tuple[int, dict[str, Any]]:
    r = http.post(f"/v2/models/{model}/infer", json=_body(x, **extra))
    return r.status_code, r.json()


def _out(doc: dict[str, Any], name: str = "y") -> list[Any]:
    return next(o["data"] for o in doc["outputs"] if o["name"] == name)


def _serve(folder: Path, texts: dict[str, str]) -> sh.Served:
    (folder / "faultmods.py").write_text(FAULTMODS)
    files = []
    for name, text in texts.items():
        files.append(folder / f"{name}.yaml")
        files[-1].write_text(text)
    return sh.start(files, cwd=folder)


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[sh.Served]:
    served = _serve(tmp_path, request.param)
    pids = workers(served.proc.pid)
    try:
        yield served
    finally:
        pids += workers(served.proc.pid)
        sh.stop(served.proc)
        assert_gone(pids)


def _wait(cond: Any, what: str, within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not cond():
        assert time.monotonic() < deadline, f"{what} not within {within_s} s"
        time.sleep(0.02)


def _stage(m: dict[str, float], model: str, stage: str, name: str, **labels: str) -> float:
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return m.get(f'brickwork_stage_{name}{{model="{model}",stage="{stage}"{extra}}}', 0.0)


def _rung(m: dict[str, float], model: str, ladder: str, rung: str) -> float:
    return m.get(f'brickwork_fallback_answers_total{{model="{model}",ladder="{ladder}",rung="{rung}"}}', 0.0)


@pytest.mark.parametrize("server", [{"ladder": LADDER_YAML}], indirect=True)
def test_every_fault_shows_in_metrics_and_every_answer_names_its_rung(server: sh.Served) -> None:
    url = server.url

    def live() -> bool:
        return _stage(metrics(url), "ladder", "primary", "live_replicas") == 1

    with httpx.Client(base_url=url, timeout=30.0) as http:
        status, doc = infer(http, "ladder", [1.0])
        assert (status, _out(doc), doc["parameters"]) == (200, [2.0], {"rung.primary": "primary"})

        # poison: two worker deaths, then neither the stage nor the policy (retries: 1) retries
        # it; the backup crashes on it too, so the static default answers
        status, doc = infer(http, "ladder", [13.0])
        assert (status, _out(doc), doc["parameters"]) == (200, [0.0], {"rung.primary": "default"})
        _wait(live, "the primary's worker back after the poison request")
        m = metrics(url)
        assert _stage(m, "ladder", "primary", "crashes_total") == 2
        assert _stage(m, "ladder", "primary", "restarts_total") == 2
        assert _stage(m, "ladder", "primary", "retries_total") == 1  # the stage's retry alone
        assert _stage(m, "ladder", "primary", "policy_retries_total") == 0
        assert _rung(m, "ladder", "primary", "default") == 1
        assert _stage(m, "ladder", "primary", "breaker_state", state="closed") == 1

        # a hang: 504 from the stage after timeout_s, the policy retries once, but that second
        # failure has opened the breaker (failures: 2), so the backup answers
        t0 = time.monotonic()
        status, doc = infer(http, "ladder", [7.0])
        took = time.monotonic() - t0
        assert (status, _out(doc), doc["parameters"]) == (200, [-14.0], {"rung.primary": "backup"})
        assert 3.0 <= took <= 3.0 + 0.5, took
        status, doc = infer(http, "ladder", [2.0])  # open: rejected without touching the stage
        assert (status, _out(doc), doc["parameters"]) == (200, [-4.0], {"rung.primary": "backup"})
        m = metrics(url)
        assert _stage(m, "ladder", "primary", "timeouts_total") == 1
        assert _stage(m, "ladder", "primary", "policy_retries_total") == 1
        assert _stage(m, "ladder", "primary", "retries_total") == 2
        assert _stage(m, "ladder", "primary", "breaker_state", state="open") == 1
        assert _stage(m, "ladder", "primary", "breaker_opened_total") == 1
        assert _stage(m, "ladder", "primary", "rejected_open_circuit_total") == 2
        assert _rung(m, "ladder", "primary", "backup") == 2
        assert http.get("/v2/health/ready").status_code == 200  # degraded, but a rung answers

        # the hung worker was killed and replaced; after reset_after_s a probe closes the breaker
        _wait(lambda: _stage(metrics(url), "ladder", "primary", "hangs_total") == 1 and live(),
              "the hung worker replaced")
        time.sleep(1.0)
        status, doc = infer(http, "ladder", [3.0])
        assert (status, _out(doc), doc["parameters"]) == (200, [6.0], {"rung.primary": "primary"})
        m = metrics(url)
        assert _stage(m, "ladder", "primary", "restarts_total") == 3
        assert _stage(m, "ladder", "primary", "breaker_state", state="closed") == 1
        assert _stage(m, "ladder", "primary", "breaker_state", state="open") == 0
        assert [_rung(m, "ladder", "primary", r) for r in ("primary", "backup", "default")] == [2, 2, 1]


@pytest.mark.parametrize("server", [{"strict": STRICT_YAML, "lenient": LENIENT_YAML,
                                     "fragile": FRAGILE_YAML}], indirect=True)
def test_model_errors_are_reported_not_retried_and_poison_fails_clearly(server: sh.Served) -> None:
    url = server.url
    with httpx.Client(base_url=url, timeout=30.0) as http:
        # the model raised on its input: 500 with its message; not retried (retries: 3), not
        # sent to the fallback, and not counted against the breaker (failures: 1)
        status, doc = infer(http, "strict", [500.0])
        assert status == 500 and "fails on 500.0" in doc["error"], doc
        status, doc = infer(http, "strict", [1.0])
        assert (status, _out(doc), doc["parameters"]) == (200, [2.0], {"rung.model": "model"})
        m = metrics(url)
        assert _stage(m, "strict", "model", "errors_total", kind="ModelError") == 1
        assert _stage(m, "strict", "model", "retries_total") == 0
        assert _stage(m, "strict", "model", "breaker_state", state="closed") == 1
        assert _rung(m, "strict", "model", "backup") == 0
        assert m['brickwork_request_errors_total{model="strict",kind="ModelError"}'] == 1

        # retry_on: any and a ladder ending in {on: any}: retried once, then the backup answers
        status, doc = infer(http, "lenient", [500.0])
        assert (status, _out(doc), doc["parameters"]) == (200, [-1000.0], {"rung.model": "backup"})
        m = metrics(url)
        assert _stage(m, "lenient", "model", "policy_retries_total") == 1
        assert _stage(m, "lenient", "model", "errors_total", kind="ModelError") == 2

        # a poison request without a fallback: two workers die, then a clear 503; retries: 2
        # does not feed it more workers
        t0 = time.monotonic()
        status, doc = infer(http, "fragile", [13.0])
        assert status == 503, doc
        assert "took down a worker twice" in doc["error"] and "poison request" in doc["error"], doc
        assert time.monotonic() - t0 < 10
        m = metrics(url)
        assert _stage(m, "fragile", "model", "crashes_total") == 2
        assert _stage(m, "fragile", "model", "policy_retries_total") == 0
        _wait(lambda: _stage(metrics(url), "fragile", "model", "live_replicas") == 1, "fragile back")
        status, doc = infer(http, "fragile", [4.0])
        assert (status, _out(doc)) == (200, [8.0])


@pytest.mark.parametrize("server", [{"stuck": STUCK_YAML, "fast": FAST_YAML, "lanes": LANES_YAML}],
                         indirect=True)
def test_a_hung_stage_does_not_delay_other_pipelines_or_other_branches(server: sh.Served) -> None:
    url = server.url
    stuck: list[tuple[int, float, str]] = []

    def hang(model: str, **extra: Any) -> None:
        with httpx.Client(base_url=url, timeout=30.0) as http:
            t0 = time.monotonic()
            status, doc = infer(http, model, [7.0], **extra)
            stuck.append((status, time.monotonic() - t0, doc.get("error", "")))

    threads = [threading.Thread(target=hang, args=("stuck",)) for _ in range(8)]
    threads += [threading.Thread(target=hang, args=("lanes",), kwargs={"lane": ["slow"]}) for _ in range(2)]
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for t in threads:
            t.start()
        _wait(lambda: _stage(metrics(url), "stuck", "model", "queued") >= 3, "the stuck queue filling")
        took: list[float] = []
        t_end = time.monotonic() + 1.2  # well inside the 2 s the stuck calls wait
        i = 0
        while time.monotonic() < t_end:
            i += 1
            t0 = time.monotonic()
            status, doc = infer(http, "fast", [float(i)])
            assert (status, _out(doc)) == (200, [3.0 * i])
            status, doc = infer(http, "lanes", [float(i)], lane=["quick"])
            assert (status, _out(doc)) == (200, [3.0 * i])
            took.append(time.monotonic() - t0)
        assert http.get("/v2/health/live").status_code == 200
        busy = _stage(metrics(url), "stuck", "model", "queued")
        for t in threads:
            t.join(30)
    took.sort()
    print(f"\nbulkhead: {len(took)} pairs of requests while a stage hung, p50 "
          f"{took[len(took) // 2] * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms")
    assert busy >= 1, "the stuck stage had drained before the measurement ended"
    assert len(took) >= 10 and took[len(took) // 2] < 0.05 and took[-1] < 0.5, took
    # the stuck callers: 504 after timeout_s (2 s), or a fast 503 once its queue (4) was full
    assert len(stuck) == 10
    for status, secs, error in stuck:
        assert (status == 504 and secs <= 2.0 + 0.3) or (status == 503 and "queue" in error), (status, secs, error)
    assert sum(s == 504 for s, _, _ in stuck) >= 3


@pytest.mark.parametrize("server", [{"lone": LONE_YAML, "covered": COVERED_YAML}], indirect=True)
def test_a_new_worker_warms_up_before_traffic_and_readiness_is_honest(server: sh.Served) -> None:
    url = server.url
    with httpx.Client(base_url=url, timeout=30.0) as http:
        status, doc = infer(http, "covered", [1.0])
        assert status == 200 and doc["parameters"] == {"rung.warm": "warm"}
        old = _out(doc, "pid")[0]

        # covered: its primary's worker is killed; while the new one warms (1 s), the rules
        # answer, labelled; the model and the server stay ready
        os.kill(old, signal.SIGKILL)
        rungs: list[str] = []
        deadline = time.monotonic() + 20
        while True:
            assert http.get("/v2/models/covered/ready").status_code == 200
            assert http.get("/v2/health/ready").status_code == 200
            status, doc = infer(http, "covered", [2.0])
            assert status == 200
            rung = doc["parameters"]["rung.warm"]
            rungs.append(rung)
            if rung == "warm":
                break
            assert _out(doc) == [-2.0] and rung == "rules"
            assert time.monotonic() < deadline, "covered's worker never came back"
        assert rungs.count("rules") >= 1
        assert _out(doc) == [4.0] and _out(doc, "pid")[0] != old
        assert _out(doc, "calls_before")[0] >= 1  # its warm-up ran before this request

        # lone: no fallback. Kill its worker: 503 (with the reason) while the new one spawns and
        # warms, a request sent meanwhile waits and is served by the warmed worker, then 200
        status, doc = infer(http, "lone", [1.0])
        old = _out(doc, "pid")[0]
        answer: list[tuple[int, dict[str, Any]]] = []

        def wait_for_lone() -> None:
            with httpx.Client(base_url=url, timeout=30.0) as other:
                answer.append(infer(other, "lone", [5.0]))

        waiting = threading.Thread(target=wait_for_lone)
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        unready_seen: list[float] = []
        reasons: set[str] = set()
        model_codes: list[int] = []
        started = False
        while True:
            r = http.get("/v2/health/ready")
            model = http.get("/v2/models/lone/ready")
            assert http.get("/v2/models/covered/ready").status_code == 200  # no bulkhead breach
            if r.status_code == 503:
                model_codes.append(model.status_code)  # asked just after: 200 if it came back between
                unready_seen.append(time.monotonic() - t0)
                reasons.add(r.json()["error"])
                if not started:
                    waiting.start()
                    started = True
            elif unready_seen:
                assert model.status_code == 200
                break
            assert time.monotonic() - t0 < 20, "lone never became ready again"
            time.sleep(0.01)
        waiting.join(30)
        assert unready_seen and unready_seen[-1] - unready_seen[0] >= 0.8, unready_seen  # >= the warm-up
        assert any("stage 'warm' has no live replica" in why for why in reasons), reasons
        assert model_codes[:-1].count(503) == len(model_codes) - 1, model_codes
        status, doc = answer[0]
        assert status == 200 and _out(doc) == [10.0] and _out(doc, "pid")[0] != old
        assert _out(doc, "calls_before")[0] >= 1, "a request reached the new worker before its warm-up"
        print(f"\nreadiness: 503 for {unready_seen[-1] - unready_seen[0]:.2f} s while lone's worker "
              f"respawned and warmed; covered answered from 'rules' {rungs.count('rules')} times meanwhile")
