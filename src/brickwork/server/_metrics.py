"""Prometheus text exposition for ``GET /metrics``.

Server side, per model: requests by status code, a latency histogram, errors by kind, requests
in flight. Per stage: whatever the engine reports in ``pipeline.stats()`` — numbers become
gauges/counters named after their key (``_s`` becomes ``_seconds``), ``{p50, p99, mean}``
maps become quantile gauges (queue vs compute time), ``{value: count}`` maps become labelled
counters (batch sizes, errors by kind) — so new engine figures appear without a change here.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["LATENCY_BUCKETS_S", "ModelMetrics", "render"]

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0, 10.0)
_NAME = re.compile(r"[^a-zA-Z0-9_]")


class ModelMetrics:
    """Counters one model's requests update on the hot path (a few dict/list operations)."""

    __slots__ = ("by_code", "errors", "in_flight", "latency_buckets", "latency_count", "latency_sum")

    def __init__(self) -> None:
        self.by_code: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.in_flight = 0
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def observe(self, code: int, seconds: float, error_kind: str | None = None) -> None:
        self.by_code[code] = self.by_code.get(code, 0) + 1
        self.latency_buckets[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum += seconds
        self.latency_count += 1
        if error_kind is not None:
            self.errors[error_kind] = self.errors.get(error_kind, 0) + 1


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kv: Any) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in kv.items()) + "}"


def _histogram(out: list[str], name: str, labels: dict[str, Any], bounds: Iterable[float],
               counts: list[int], total: float, count: int) -> None:
    running = 0
    for le, c in zip(bounds, counts, strict=False):
        running += c
        out.append(f"{name}_bucket{_labels(**labels, le=repr(float(le)))} {running}")
    out.append(f"{name}_bucket{_labels(**labels, le='+Inf')} {count}")
    out.append(f"{name}_sum{_labels(**labels)} {total!r}")
    out.append(f"{name}_count{_labels(**labels)} {count}")


def render(models: Mapping[str, ModelMetrics], stats: Mapping[str, Mapping[str, Any]]) -> bytes:
    """``stats``: model name -> ``pipeline.stats()``."""
    out: list[str] = [
        "# HELP brickwork_requests_total Infer requests answered, by model and HTTP status.",
        "# TYPE brickwork_requests_total counter",
    ]
    for model, m in models.items():
        for code, n in sorted(m.by_code.items()):
            out.append(f"brickwork_requests_total{_labels(model=model, code=code)} {n}")
    out += ["# HELP brickwork_request_errors_total Failed infer requests, by model and error kind.",
            "# TYPE brickwork_request_errors_total counter"]
    for model, m in models.items():
        for kind, n in sorted(m.errors.items()):
            out.append(f"brickwork_request_errors_total{_labels(model=model, kind=kind)} {n}")
    out += ["# HELP brickwork_requests_in_flight Infer requests being served now.",
            "# TYPE brickwork_requests_in_flight gauge"]
    for model, m in models.items():
        out.append(f"brickwork_requests_in_flight{_labels(model=model)} {m.in_flight}")
    out += ["# HELP brickwork_request_duration_seconds Infer latency inside the server, body read "
            "to response built.", "# TYPE brickwork_request_duration_seconds histogram"]
    for model, m in models.items():
        _histogram(out, "brickwork_request_duration_seconds", {"model": model}, LATENCY_BUCKETS_S,
                   m.latency_buckets, m.latency_sum, m.latency_count)
    _render_stages(out, stats)
    return ("\n".join(out) + "\n").encode()


_MAP_LABEL = {"batch_sizes": "size", "errors": "kind", "copied_bytes": "edge"}
_QUANTILES = {"p50": "0.5", "p90": "0.9", "p95": "0.95", "p99": "0.99"}


def _metric_name(key: str) -> str:
    name = _NAME.sub("_", key)
    if name.endswith("_per_s"):  # items_per_s -> items_per_second
        name = name[:-1] + "second"
    elif name.endswith("_s"):
        name = name[:-2] + "_seconds"
    return "brickwork_stage_" + name


def _render_stages(out: list[str], stats: Mapping[str, Mapping[str, Any]]) -> None:
    families: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}

    def add(name: str, kind: str, line: str) -> None:
        kinds.setdefault(name, kind)
        families.setdefault(name, []).append(line)

    for model, pstats in stats.items():
        for stage, figures in (pstats.get("stages") or {}).items():
            labels = {"model": model, "stage": stage}
            for key, value in figures.items():
                key = str(key)
                name = _metric_name(key)
                if isinstance(value, bool):
                    value = int(value)
                if key == "breaker" and isinstance(value, Mapping):  # {"state": ..., "opened": n}
                    for state in ("closed", "open", "half_open"):
                        add(name + "_state", "gauge", f"{name}_state{_labels(**labels, state=state)} "
                                                      f"{int(value.get('state') == state)}")
                    add(name + "_opened_total", "counter",
                        f"{name}_opened_total{_labels(**labels)} {value.get('opened', 0)!r}")
                    continue
                if isinstance(value, int | float):
                    if key in _COUNTERS:
                        add(name + "_total", "counter", f"{name}_total{_labels(**labels)} {value!r}")
                    else:
                        add(name, "gauge", f"{name}{_labels(**labels)} {value!r}")
                elif isinstance(value, Mapping) and value and all(
                        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()):
                    if set(value) <= {"mean", *_QUANTILES}:  # a latency summary
                        for k, v in value.items():
                            q = {"quantile": _QUANTILES[k]} if k in _QUANTILES else {"stat": k}
                            add(name, "gauge", f"{name}{_labels(**labels, **q)} {v!r}")
                    else:
                        label = _MAP_LABEL.get(key, "key")
                        counter = key in _MAP_LABEL
                        full = name + ("_total" if counter else "")
                        for k, v in sorted(value.items(), key=lambda kv: _sort_key(kv[0])):
                            add(full, "counter" if counter else "gauge",
                                f"{full}{_labels(**labels, **{label: k})} {v!r}")
        for ladder, rungs in (pstats.get("fallbacks") or {}).items():
            for rung, n in rungs.items():
                if isinstance(n, int | float):
                    add("brickwork_fallback_answers_total", "counter",
                        f"brickwork_fallback_answers_total{_labels(model=model, ladder=ladder, rung=rung)} {n!r}")
        if pstats.get("bottleneck"):
            add("brickwork_bottleneck", "gauge",
                f"brickwork_bottleneck{_labels(model=model, stage=pstats['bottleneck'])} 1")
    for name, lines in families.items():
        out.append(f"# TYPE {name} {kinds[name]}")
        out.extend(lines)


_COUNTERS = frozenset({"requests", "items", "batches", "retries", "crashes", "calls", "busy_s",
                       "timeouts", "rejected", "restarts", "hangs", "retries_denied", "policy_retries",
                       "rejected_open_circuit"})


def _sort_key(k: Any) -> tuple[int, Any]:
    try:
        return (0, float(k))
    except (TypeError, ValueError):
        return (1, str(k))
