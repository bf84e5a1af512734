"""The /metrics exposition: fixed names with HELP and TYPE, a histogram, and how several
workers' figures combine (a directory of per-worker files, no processes needed)."""

from __future__ import annotations

import pytest

from brickwork.server._metrics import STAGE_FAMILIES, ModelMetrics, SharedMetrics, render

parser = pytest.importorskip("prometheus_client.parser")

STATS = {"m": {"stages": {"s": {"requests": 3, "items": 5, "utilisation": 0.5, "queue_s": {"p50": 0.1, "mean": 0.2},
                                "batch_sizes": {"2": 1, "1": 3}, "breaker": {"state": "open", "opened": 1},
                                "some_new_figure": 7, "replica_info": [{"pid": 1}]}},
               "bottleneck": "s", "fallbacks": {"lad": {"cheap": 2}}}}


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in parser.text_string_to_metric_families(text) for s in f.samples}


def test_every_family_has_help_and_type_and_unknown_keys_are_not_exported():
    m = ModelMetrics()
    m.observe(200, 0.003)
    m.observe(400, 0.0001, "InvalidInput")
    text = render({"m": m}, STATS).decode()
    lines = text.splitlines()
    helps = [ln.split()[2] for ln in lines if ln.startswith("# HELP")]
    types = [ln.split()[2] for ln in lines if ln.startswith("# TYPE")]
    assert helps == types and len(set(helps)) == len(helps)
    assert "some_new_figure" not in text and "replica_info" not in text
    s = _samples(text)
    assert s[("brickwork_requests_total", (("code", "200"), ("model", "m")))] == 1
    assert s[("brickwork_request_errors_total", (("kind", "InvalidInput"), ("model", "m")))] == 1
    assert s[("brickwork_request_duration_seconds_bucket", (("le", "0.005"), ("model", "m")))] == 2
    assert s[("brickwork_request_duration_seconds_bucket", (("le", "0.0005"), ("model", "m")))] == 1
    assert s[("brickwork_request_duration_seconds_count", (("model", "m"),))] == 2
    assert s[("brickwork_stage_breaker_state", (("model", "m"), ("stage", "s"), ("state", "open")))] == 1
    assert s[("brickwork_stage_queue_seconds", (("model", "m"), ("quantile", "0.5"), ("stage", "s")))] == 0.1
    assert s[("brickwork_fallback_answers_total", (("ladder", "lad"), ("model", "m"), ("rung", "cheap")))] == 2
    assert all(name.startswith("brickwork_stage_") for name, *_ in STAGE_FAMILIES.values())


def test_workers_combine_sum_mean_and_max(tmp_path):
    a = SharedMetrics(tmp_path, 0, ["m"])
    b = SharedMetrics(tmp_path, 1, ["m"])
    for _ in range(3):
        a.metrics["m"].observe(200, 0.01)
    b.metrics["m"].observe(200, 0.02)
    b.metrics["m"].in_flight += 1
    b.metrics["m"].sync()  # as worker 1 does with each snapshot
    a.metrics["m"].in_flight = 2  # worker 0 answers the scrape: its own count, live
    other = {"m": {"stages": {"s": {"requests": 10, "utilisation": 1.0, "queue_s": {"p50": 0.4}}}}}
    b.write_stats(other)
    s = _samples(render(a.metrics, STATS).decode())  # worker 0 answers the scrape
    assert s[("brickwork_requests_total", (("code", "200"), ("model", "m")))] == 4
    assert s[("brickwork_requests_in_flight", (("model", "m"),))] == 3
    assert s[("brickwork_stage_requests_total", (("model", "m"), ("stage", "s")))] == 13
    assert s[("brickwork_stage_utilisation", (("model", "m"), ("stage", "s")))] == 0.75
    assert s[("brickwork_stage_queue_seconds", (("model", "m"), ("quantile", "0.5"), ("stage", "s")))] == 0.4
    assert s[("brickwork_request_duration_seconds_sum", (("model", "m"),))] == pytest.approx(0.05)
