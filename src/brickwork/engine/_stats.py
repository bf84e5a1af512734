"""What a stage measures about itself, and which stage of a pipeline is the bottleneck.

Per stage: requests and items served, queue time (enqueue → batch start), compute time (the
brick's own call), the batch-size histogram (items per call), utilisation (busy replica time
over wall time times replicas), items/s, errors by kind, and the bytes each hop copies (merging
requests into a batch, into and out of shared memory, pickled through a pipe).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["StageStats", "bottleneck"]

_WINDOW = 4096  # recent samples kept for percentiles


def _pcts(samples: deque[float]) -> dict[str, float]:
    if not samples:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0}
    arr = np.fromiter(samples, dtype=float, count=len(samples))
    p50, p99 = np.percentile(arr, (50, 99))
    return {"mean": float(arr.mean()), "p50": float(p50), "p99": float(p99)}


class StageStats:
    """Counters of one stage; cheap to update on the hot path, summarised by ``snapshot``."""

    def __init__(self, replicas: int, *, clock: Any = time.perf_counter) -> None:
        self.replicas = replicas
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.started = self.clock()
        self.requests = 0
        self.items = 0
        self.batches = 0
        self.busy_s = 0.0
        self.compute_s = 0.0
        self.queue_s: deque[float] = deque(maxlen=_WINDOW)
        self.compute: deque[float] = deque(maxlen=_WINDOW)
        self.batch_sizes: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.copied: Counter[str] = Counter()
        self.retries = 0
        self.crashes = 0

    def batch(self, items: int, requests: int, compute_s: float, busy_s: float) -> None:
        self.batches += 1
        self.items += items
        self.requests += requests
        self.compute_s += compute_s
        self.busy_s += busy_s
        self.compute.append(compute_s)
        self.batch_sizes[items] += 1

    def waited(self, queue_s: float) -> None:
        self.queue_s.append(queue_s)

    def waited_all(self, queue_s: list[float]) -> None:
        """``waited`` for each request of a batch."""
        self.queue_s.extend(queue_s)

    def error(self, kind: str, n: int = 1) -> None:
        self.errors[kind] += n

    def copy(self, kind: str, nbytes: int) -> None:
        self.copied[kind] += nbytes

    def items_per_s(self) -> float:
        elapsed = self.clock() - self.started
        return self.items / elapsed if elapsed > 0 else 0.0

    def snapshot(self, *, live_replicas: int, queued: int, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        elapsed = max(self.clock() - self.started, 1e-9)
        out: dict[str, Any] = {
            "requests": self.requests,
            "items": self.items,
            "batches": self.batches,
            "items_per_s": self.items / elapsed,
            "utilisation": min(self.busy_s / (elapsed * max(self.replicas, 1)), 1.0),
            "queue_s": _pcts(self.queue_s),
            "compute_s": _pcts(self.compute),
            "mean_batch_size": self.items / self.batches if self.batches else 0.0,
            "batch_sizes": dict(sorted(self.batch_sizes.items())),
            "errors": dict(self.errors),
            "copied_bytes": dict(self.copied),
            "retries": self.retries,
            "crashes": self.crashes,
            "replicas": self.replicas,
            "live_replicas": live_replicas,
            "queued": queued,
            "elapsed_s": elapsed,
        }
        if extra:
            out.update(extra)
        return out


def bottleneck(stages: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The stage that limits throughput: the busiest (highest utilisation), ties broken by the
    longer median queue time. None when nothing has run."""
    ran = [(name, s) for name, s in stages.items() if s.get("batches")]
    if not ran:
        return None
    name, _ = max(ran, key=lambda kv: (round(kv[1]["utilisation"], 3), kv[1]["queue_s"]["p50"]))
    return name
