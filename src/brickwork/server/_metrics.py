"""Prometheus text exposition for ``GET /metrics``, summed over the server's worker processes.

Every family is named in one table (:data:`REQUEST_FAMILIES`, :data:`STAGE_FAMILIES`, and
the two pipeline families), with its ``# HELP`` and ``# TYPE``; a figure the engine reports
that no table names is not exported.

Per model, on the hot path (both fronts, HTTP and gRPC): requests by status code, failed
requests by error kind, requests in flight, and a latency histogram. These live in a flat
float64 array (:class:`ModelMetrics`), a few slot increments per request. With ``workers`` >
1 each worker's array is a file in a directory the parent creates and removes
(:class:`SharedMetrics`), mapped into memory: a scrape answered by any worker sums every
worker's array, so counters are exact at scrape time (requests in flight: the answering
worker's now, the others' as of their last snapshot, at most about a second old).

The OpenAI/generate front's figures per model (requests by endpoint, prompt and completion
tokens, histograms of time to first token and of tokens/s per stream) live in the same array,
so they sum over workers the same way; they are exported once the front has served the model.

Per stage, ``pipeline.stats()``: read at scrape time from the answering worker, and from the
snapshot every other worker writes to the same directory each second (so another worker's
stage figures are at most about a second old). Counters and count-like gauges are summed over
workers; latency quantiles (the engine reports p50/p99/mean, not buckets) take the worst
worker's value; utilisation and mean batch size the mean over workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
from bisect import bisect_left
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["LATENCY_BUCKETS_S", "LLM_ENDPOINTS", "LLM_FAMILIES", "REQUEST_FAMILIES", "STAGE_FAMILIES",
           "STREAM_FAMILIES", "ModelMetrics", "SharedMetrics", "render"]

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 5.0, 10.0)

# -- the fixed slot layout of one model's request figures ------------------------------
CODES = (200, 400, 401, 404, 405, 413, 500, 502, 503, 504)  # every status errors.py maps to
KINDS = ("InvalidInput", "Unauthorized", "NotFound", "PayloadTooLarge", "ModelError", "UpstreamError",
         "Overloaded", "WorkerCrashed", "DeadlineExceeded", "InternalError")
_CODE_SLOT = {c: i for i, c in enumerate(CODES)}
_OTHER_CODE = len(CODES)
_KIND0 = _OTHER_CODE + 1
_KIND_SLOT = {k: _KIND0 + i for i, k in enumerate(KINDS)}
_OTHER_KIND = _KIND0 + len(KINDS)
_IN_FLIGHT = _OTHER_KIND + 1
_BUCKET0 = _IN_FLIGHT + 1
_SUM = _BUCKET0 + len(LATENCY_BUCKETS_S) + 1
_COUNT = _SUM + 1
# the OpenAI/generate front's figures (``_openai.py``), in the same array so workers sum them
LLM_ENDPOINTS = ("chat", "completions", "embeddings", "generate", "generate_stream")
TTFT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TPS_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
_LLM_REQ0 = _COUNT + 1
_PROMPT = _LLM_REQ0 + len(LLM_ENDPOINTS)
_COMPLETION = _PROMPT + 1
_TTFT0 = _COMPLETION + 1  # buckets, +Inf, sum, count
_TPS0 = _TTFT0 + len(TTFT_BUCKETS_S) + 3
SLOTS = _TPS0 + len(TPS_BUCKETS) + 3

# name, type, help
REQUEST_FAMILIES = {
    "requests": ("brickwork_requests_total", "counter",
                 "Infer requests answered (HTTP and gRPC), by model and HTTP status (a gRPC "
                 "request counts under the HTTP status its outcome maps to)."),
    "errors": ("brickwork_request_errors_total", "counter", "Failed infer requests, by model and error kind."),
    "in_flight": ("brickwork_requests_in_flight", "gauge", "Infer requests being served now."),
    "duration": ("brickwork_request_duration_seconds", "histogram",
                 "Infer latency inside the server, request read to response built."),
}

# stats key -> (name, type, help, how workers combine: sum | max | mean, label of a {k: n} map)
STAGE_FAMILIES: dict[str, tuple[str, str, str, str, str | None]] = {
    "requests": ("brickwork_stage_requests_total", "counter", "Calls into the stage.", "sum", None),
    "items": ("brickwork_stage_items_total", "counter", "Rows the stage processed.", "sum", None),
    "batches": ("brickwork_stage_batches_total", "counter", "Batches the stage ran.", "sum", None),
    "retries": ("brickwork_stage_retries_total", "counter",
                "Re-runs: the engine's (a crashed worker's batch, a failed batch split) and the policy's.",
                "sum", None),
    "policy_retries": ("brickwork_stage_policy_retries_total", "counter", "Re-runs by the fault policy.",
                       "sum", None),
    "retries_denied": ("brickwork_stage_retries_denied_total", "counter",
                       "Retries the fault policy's retry budget refused.", "sum", None),
    "crashes": ("brickwork_stage_crashes_total", "counter", "Worker deaths while holding a batch.", "sum", None),
    "restarts": ("brickwork_stage_restarts_total", "counter", "Workers restarted after a death.", "sum", None),
    "hangs": ("brickwork_stage_hangs_total", "counter", "Workers killed as hung.", "sum", None),
    "timeouts": ("brickwork_stage_timeouts_total", "counter", "Calls past the stage's timeout_s.", "sum", None),
    "rejected_open_circuit": ("brickwork_stage_rejected_open_circuit_total", "counter",
                              "Calls refused because the stage's circuit was open.", "sum", None),
    "hedges": ("brickwork_stage_hedges_total", "counter", "Hedged copies sent (hedge_after_s).", "sum", None),
    "hedge_wins": ("brickwork_stage_hedge_wins_total", "counter", "Hedged copies that answered first.",
                   "sum", None),
    "hedges_denied": ("brickwork_stage_hedges_denied_total", "counter",
                      "Hedges the stage's hedge_budget refused.", "sum", None),
    "items_per_s": ("brickwork_stage_items_per_second", "gauge",
                    "Rows per second since the stage started (or its stats were reset).", "sum", None),
    "utilisation": ("brickwork_stage_utilisation", "gauge",
                    "Share of replica time spent computing, 0..1 (mean over workers).", "mean", None),
    "mean_batch_size": ("brickwork_stage_mean_batch_size", "gauge", "Rows per batch (mean over workers).",
                        "mean", None),
    "replicas": ("brickwork_stage_replicas", "gauge", "Replicas the stage runs.", "sum", None),
    "live_replicas": ("brickwork_stage_live_replicas", "gauge", "Replicas alive now.", "sum", None),
    "queued": ("brickwork_stage_queued", "gauge", "Requests waiting in the stage's queue.", "sum", None),
    "latency_limit": ("brickwork_stage_latency_limit", "gauge",
                      "Queue limit the latency profile sets (worst worker).", "max", None),
    "queue_s": ("brickwork_stage_queue_seconds", "gauge",
                "Time waiting in the queue: quantile (p50, p99) or stat=mean; the worst worker's.", "max",
                "quantile"),
    "compute_s": ("brickwork_stage_compute_seconds", "gauge",
                  "Time computing a batch: quantile (p50, p99) or stat=mean; the worst worker's.", "max",
                  "quantile"),
    "batch_sizes": ("brickwork_stage_batch_sizes_total", "counter", "Batches run, by size.", "sum", "size"),
    "errors": ("brickwork_stage_errors_total", "counter", "Failed calls, by error kind.", "sum", "kind"),
    "copied_bytes": ("brickwork_stage_copied_bytes_total", "counter",
                     "Bytes copied into the stage, by how (pickled, shared memory).", "sum", "edge"),
}
# pipeline.stats()["streams"] key -> family (per streaming stage; summed over workers)
STREAM_FAMILIES: dict[str, tuple[str, str, str]] = {
    "active": ("brickwork_llm_active_sequences", "gauge", "Sequences decoding now."),
    "waiting": ("brickwork_llm_waiting_sequences", "gauge", "Sequences waiting for a batch row."),
    "kv_reserved_tokens": ("brickwork_llm_kv_reserved_tokens", "gauge",
                           "KV tokens the admitted sequences reserved (prompt + max_tokens, summed)."),
    "kv_bound_tokens": ("brickwork_llm_kv_bound_tokens", "gauge",
                        "KV tokens the padded cache can reach with the admitted sequences (what the budget checks)."),
    "kv_cached_tokens": ("brickwork_llm_kv_cached_tokens", "gauge", "KV cache columns x rows held now."),
}
LLM_FAMILIES = {
    "requests": ("brickwork_llm_requests_total", "counter", "OpenAI/generate front requests, by endpoint."),
    "prompt": ("brickwork_llm_prompt_tokens_total", "counter", "Prompt tokens read."),
    "completion": ("brickwork_llm_completion_tokens_total", "counter", "Tokens generated."),
    "ttft": ("brickwork_llm_time_to_first_token_seconds", "histogram",
             "Time from request to the first streamed token."),
    "tps": ("brickwork_llm_stream_tokens_per_second", "histogram", "Tokens/s of each stream."),
}
_BREAKER_STATE = ("brickwork_stage_breaker_state", "gauge",
                  "1 when the stage's circuit breaker is in this state (with workers: how many are).")
_BREAKER_OPENED = ("brickwork_stage_breaker_opened_total", "counter", "Times the circuit breaker opened.")
_FALLBACKS = ("brickwork_fallback_answers_total", "counter", "Answers by fallback ladder and rung.")
_ENSEMBLE = ("brickwork_ensemble_total", "counter",
             "Deadline ensembles: answers, answers at the deadline, short (504), stragglers, failed.")
_ENSEMBLE_MEMBERS = ("brickwork_ensemble_member_answers_total", "counter",
                     "Deadline ensembles: answers each member contributed.")
_BOTTLENECK = ("brickwork_bottleneck", "gauge",
               "1 on the stage that limits the pipeline's throughput (with workers: how many say so).")
_QUANTILES = {"p50": "0.5", "p90": "0.9", "p95": "0.95", "p99": "0.99"}
_BREAKER_STATES = ("closed", "open", "half_open")


class ModelMetrics:
    """One model's request figures in :data:`SLOTS` float64 slots (exact integers to 2**53).
    ``in_flight`` is a plain attribute (the hot path changes it twice per request); it reaches
    its slot when this worker is scraped or publishes its snapshot."""

    __slots__ = ("in_flight", "shared", "values")

    def __init__(self, values: Any = None, shared: SharedMetrics | None = None) -> None:
        self.values: Any = values if values is not None else memoryview(bytearray(8 * SLOTS)).cast("d")
        self.shared = shared  # the workers' metrics directory these slots live in, if any
        self.in_flight = 0

    def sync(self) -> None:
        self.values[_IN_FLIGHT] = self.in_flight

    def observe(self, code: int, seconds: float, error_kind: str | None = None) -> None:
        v = self.values
        v[_CODE_SLOT.get(code, _OTHER_CODE)] += 1
        v[_BUCKET0 + bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        v[_SUM] += seconds
        v[_COUNT] += 1
        if error_kind is not None:
            v[_KIND_SLOT.get(error_kind, _OTHER_KIND)] += 1

    def llm_request(self, endpoint: str) -> None:
        self.values[_LLM_REQ0 + LLM_ENDPOINTS.index(endpoint)] += 1

    def llm_usage(self, prompt: int, completion: int) -> None:
        self.values[_PROMPT] += prompt
        self.values[_COMPLETION] += completion

    def llm_stream(self, ttft_s: float | None, tokens: int, seconds: float) -> None:
        """One finished stream: its time to first token, and its tokens/s after the first."""
        if ttft_s is not None:
            _observe(self.values, _TTFT0, TTFT_BUCKETS_S, ttft_s)
        if tokens > 1 and seconds > 0:
            _observe(self.values, _TPS0, TPS_BUCKETS, tokens / seconds)

    def array(self) -> np.ndarray:
        self.sync()
        return np.frombuffer(self.values, dtype=np.float64)


def _observe(v: Any, first: int, buckets: tuple[float, ...], value: float) -> None:
    v[first + bisect_left(buckets, value)] += 1  # the slot after the buckets is +Inf's own
    v[first + len(buckets) + 1] += value
    v[first + len(buckets) + 2] += 1


class SharedMetrics:
    """The metrics directory of a server with several workers: worker ``i`` maps
    ``w<i>.metrics`` (its models' slots) and writes ``w<i>.stats.json`` each ``period_s``."""

    def __init__(self, directory: str | Path, index: int, models: list[str], *, period_s: float = 1.0) -> None:
        self.dir = Path(directory)
        self.index = index
        self.models = models
        self.period_s = period_s
        path = self.dir / f"w{index}.metrics"
        size = 8 * SLOTS * max(len(models), 1)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        view = memoryview(self._map).cast("d")
        self.metrics = {m: ModelMetrics(view[i * SLOTS:(i + 1) * SLOTS], self) for i, m in enumerate(models)}

    def totals(self) -> dict[str, np.ndarray]:
        """Every worker's slots, summed, per model."""
        total = np.zeros((len(self.models), SLOTS))
        for path in self.dir.glob("w*.metrics"):
            data = np.fromfile(path, dtype=np.float64)
            if data.size == total.size:
                total += data.reshape(total.shape)
        return {m: total[i] for i, m in enumerate(self.models)}

    def others_stats(self) -> list[Mapping[str, Mapping[str, Any]]]:
        out = []
        for path in self.dir.glob("w*.stats.json"):
            if path.name != f"w{self.index}.stats.json":
                with contextlib.suppress(OSError, orjson.JSONDecodeError):
                    out.append(orjson.loads(path.read_bytes()))
        return out

    def write_stats(self, stats: Mapping[str, Any]) -> None:
        tmp = self.dir / f".w{self.index}.stats.tmp"
        tmp.write_bytes(orjson.dumps(stats, option=orjson.OPT_NON_STR_KEYS, default=str))
        os.replace(tmp, self.dir / f"w{self.index}.stats.json")

    async def publish(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        """Write this worker's stage figures (and requests in flight) every ``period_s`` until
        cancelled."""
        while True:
            for m in self.metrics.values():
                m.sync()
            with contextlib.suppress(OSError, TypeError):
                self.write_stats(stats())
            await asyncio.sleep(self.period_s)


# -- rendering -------------------------------------------------------------------------
def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**kv: Any) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in kv.items()) + "}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class _Families:
    def __init__(self) -> None:
        self.meta: dict[str, tuple[str, str]] = {}
        self.lines: dict[str, list[str]] = {}

    def add(self, family: tuple[str, ...], line: str) -> None:
        name, kind, help_ = family[:3]
        self.meta.setdefault(name, (kind, help_))
        self.lines.setdefault(name, []).append(line)

    def declare(self, family: tuple[str, ...]) -> None:
        name, kind, help_ = family[:3]
        self.meta.setdefault(name, (kind, help_))
        self.lines.setdefault(name, [])

    def text(self) -> bytes:
        out: list[str] = []
        for name, (kind, help_) in self.meta.items():
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(self.lines[name])
        return ("\n".join(out) + "\n").encode()


def render(models: Mapping[str, ModelMetrics], stats: Mapping[str, Mapping[str, Any]]) -> bytes:
    """``stats``: model name -> this worker's ``pipeline.stats()``. When the models' slots
    are shared (several workers), every worker's figures are summed in."""
    shared = next((m.shared for m in models.values() if m.shared is not None), None)
    if shared is not None:
        for m in models.values():
            m.sync()
        arrays = shared.totals()
        every = [stats, *shared.others_stats()]
    else:
        arrays = {m: mm.array() for m, mm in models.items()}
        every = [stats]
    fam = _Families()
    _render_requests(fam, arrays)
    _render_stages(fam, every)
    _render_llm(fam, arrays)
    return fam.text()


def _render_requests(fam: _Families, arrays: Mapping[str, np.ndarray]) -> None:
    for key in ("requests", "errors", "in_flight", "duration"):
        fam.declare(REQUEST_FAMILIES[key])
    requests, errors, in_flight, duration = (REQUEST_FAMILIES[k] for k in ("requests", "errors", "in_flight",
                                                                         "duration"))
    for model, a in arrays.items():
        for code, slot in [*_CODE_SLOT.items(), ("other", _OTHER_CODE)]:
            if a[slot]:
                fam.add(requests, f"{requests[0]}{_labels(model=model, code=code)} {_num(a[slot])}")
        for kind, slot in [*_KIND_SLOT.items(), ("other", _OTHER_KIND)]:
            if a[slot]:
                fam.add(errors, f"{errors[0]}{_labels(model=model, kind=kind)} {_num(a[slot])}")
        fam.add(in_flight, f"{in_flight[0]}{_labels(model=model)} {_num(a[_IN_FLIGHT])}")
        name = duration[0]
        running = 0.0
        for i, le in enumerate(LATENCY_BUCKETS_S):
            running += a[_BUCKET0 + i]
            fam.add(duration, f"{name}_bucket{_labels(model=model, le=repr(float(le)))} {_num(running)}")
        fam.add(duration, f"{name}_bucket{_labels(model=model, le='+Inf')} {_num(a[_COUNT])}")
        fam.add(duration, f"{name}_sum{_labels(model=model)} {float(a[_SUM])!r}")
        fam.add(duration, f"{name}_count{_labels(model=model)} {_num(a[_COUNT])}")


def _histogram(fam: _Families, family: tuple[str, ...], model: str, a: np.ndarray, first: int,
               buckets: tuple[float, ...]) -> None:
    name = family[0]
    running = 0.0
    for i, le in enumerate(buckets):
        running += a[first + i]
        fam.add(family, f"{name}_bucket{_labels(model=model, le=repr(float(le)))} {_num(running)}")
    count = a[first + len(buckets) + 2]
    fam.add(family, f"{name}_bucket{_labels(model=model, le='+Inf')} {_num(count)}")
    fam.add(family, f"{name}_sum{_labels(model=model)} {float(a[first + len(buckets) + 1])!r}")
    fam.add(family, f"{name}_count{_labels(model=model)} {_num(count)}")


def _render_llm(fam: _Families, arrays: Mapping[str, np.ndarray]) -> None:
    """The OpenAI/generate front's families, for the models it has served (summed over workers)."""
    served = {m: a for m, a in arrays.items() if a[_LLM_REQ0:_PROMPT].any()}
    if not served:
        return
    requests, prompt, completion, ttft, tps = (LLM_FAMILIES[k] for k in ("requests", "prompt", "completion",
                                                                        "ttft", "tps"))
    for model, a in served.items():
        for i, endpoint in enumerate(LLM_ENDPOINTS):
            if a[_LLM_REQ0 + i]:
                fam.add(requests, f"{requests[0]}{_labels(model=model, endpoint=endpoint)} "
                                  f"{_num(a[_LLM_REQ0 + i])}")
        fam.add(prompt, f"{prompt[0]}{_labels(model=model)} {_num(a[_PROMPT])}")
        fam.add(completion, f"{completion[0]}{_labels(model=model)} {_num(a[_COMPLETION])}")
        if a[_TTFT0 + len(TTFT_BUCKETS_S) + 2]:
            _histogram(fam, ttft, model, a, _TTFT0, TTFT_BUCKETS_S)
        if a[_TPS0 + len(TPS_BUCKETS) + 2]:
            _histogram(fam, tps, model, a, _TPS0, TPS_BUCKETS)


def _combine(how: str, values: list[float]) -> float:
    if how == "sum":
        return sum(values)
    if how == "max":
        return max(values)
    return sum(values) / len(values)


def _render_stages(fam: _Families, every: list[Mapping[str, Mapping[str, Any]]]) -> None:
    """``every``: one ``{model: pipeline.stats()}`` per worker."""
    # (family, labels) -> values over workers, in first-seen order
    series: dict[tuple[tuple[str, ...], tuple[tuple[str, Any], ...]], list[float]] = {}
    how: dict[str, str] = {}

    def put(family: tuple[str, ...], combine: str, value: Any, **labels: Any) -> None:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float):
            how[family[0]] = combine
            series.setdefault((family, tuple(labels.items())), []).append(float(value))

    for stats in every:
        for model, pstats in stats.items():
            for stage, figures in (pstats.get("stages") or {}).items():
                for key, value in figures.items():
                    _stage_figure(put, model, stage, str(key), value)
            for stage, figures in (pstats.get("streams") or {}).items():
                for key, gauge in STREAM_FAMILIES.items():
                    put(gauge, "sum", figures.get(key), model=model, stage=stage)
            for ladder, rungs in (pstats.get("fallbacks") or {}).items():
                for rung, n in (rungs or {}).items():
                    put(_FALLBACKS, "sum", n, model=model, ladder=ladder, rung=rung)
            for ens, counts in (pstats.get("ensembles") or {}).items():
                for key, n in (counts or {}).items():
                    if key.startswith("member."):
                        put(_ENSEMBLE_MEMBERS, "sum", n, model=model, ensemble=ens, member=key[7:])
                    else:
                        put(_ENSEMBLE, "sum", n, model=model, ensemble=ens, outcome=key)
            if pstats.get("bottleneck"):
                put(_BOTTLENECK, "sum", 1, model=model, stage=pstats["bottleneck"])
    for (family, labels), values in series.items():
        fam.add(family, f"{family[0]}{_labels(**dict(labels))} {_num(_combine(how[family[0]], values))}")


def _stage_figure(put: Callable[..., None], model: str, stage: str, key: str, value: Any) -> None:
    if key == "breaker" and isinstance(value, Mapping):  # {"state": ..., "opened": n}
        for state in _BREAKER_STATES:
            put(_BREAKER_STATE, "sum", int(value.get("state") == state), model=model, stage=stage, state=state)
        put(_BREAKER_OPENED, "sum", value.get("opened", 0), model=model, stage=stage)
        return
    family = STAGE_FAMILIES.get(key)
    if family is None:
        return
    combine, label = family[3], family[4]
    if label is None:
        put(family, combine, value, model=model, stage=stage)
    elif isinstance(value, Mapping):
        for k, v in sorted(value.items(), key=lambda kv: _sort_key(kv[0])):
            if label == "quantile":
                extra = {"quantile": _QUANTILES[k]} if k in _QUANTILES else {"stat": k}
            else:
                extra = {label: k}
            put(family, combine, v, model=model, stage=stage, **extra)


def _sort_key(k: Any) -> tuple[int, Any]:
    try:
        return (0, float(k))
    except (TypeError, ValueError):
        return (1, str(k))
