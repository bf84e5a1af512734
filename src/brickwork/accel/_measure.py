"""Speed and quality of one variant, measured the way a brick runs it.

Every variant runs as an :class:`~brickwork.bricks.onnx.OnnxBrick` with the same options
as the original brick. Speed: latency at batch 1 (median) and throughput at the stage's batch
size, in rounds that alternate between variants so a noisy neighbour on the machine hits them
all alike; each variant keeps its best round. Quality: every output on the evaluation rows,
against the labels when there are labels and against FP32 always.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import Tensors
from ._data import Dataset

__all__ = ["Quality", "Speed", "compare", "outputs_of", "speed_round"]


@dataclass(frozen=True, slots=True)
class Speed:
    """latency_s: median wall seconds per call at batch 1. throughput: items per wall second at
    batch_size. cpu_throughput: items per CPU second of this process (all its threads), which
    neighbours on a shared machine disturb far less than the wall clock."""

    latency_s: float
    throughput: float
    batch_size: int
    cpu_throughput: float


@dataclass(frozen=True, slots=True)
class Quality:
    """accuracy: fraction of eval items whose predicted class equals the label (None without labels).
    agreement: fraction of items that agree with FP32 (integer outputs equal, float outputs with
    cosine >= min_cosine). min_cosine / mean_cosine: per-item cosine to FP32 over float outputs.
    max_abs_dev: the largest |variant - FP32| in any float output. finite: no inf/NaN where FP32
    had none."""

    accuracy: float | None
    agreement: float
    min_cosine: float
    mean_cosine: float
    max_abs_dev: float
    finite: bool
    nonfinite_output: str | None = None


def outputs_of(brick: Any, data: Dataset, batch_size: int) -> Tensors:
    parts = [brick(b) for b in data.batches(batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = (a * b).sum(axis=1) / np.maximum(na * nb, 1e-30)
    return np.where(both_zero, 1.0, cos)


def predicted_class(outputs: Tensors, output: str | None) -> np.ndarray:
    """The class per item: the named output, else ``label``, else the argmax of the first
    (N, C) float output."""
    if output is not None:
        value = outputs[output]
    elif "label" in outputs:
        value = outputs["label"]
    else:
        floats = [v for v in outputs.values() if v.ndim == 2 and v.dtype.kind == "f"]
        if not floats:
            raise ValueError(f"no output to read a class from among {list(outputs)}; name one with output=")
        value = floats[0]
    value = np.asarray(value)
    return value.argmax(axis=-1) if value.dtype.kind == "f" and value.ndim >= 2 else value


def compare(got: Tensors, ref: Tensors, labels: np.ndarray | None, *, min_cosine: float,
            output: str | None) -> Quality:
    n = len(next(iter(ref.values())))
    agree = np.ones(n, dtype=bool)
    cos_all = np.ones(n)
    max_dev = 0.0
    for name, want in ref.items():
        have = np.asarray(got[name]).reshape(want.shape)
        if want.dtype.kind == "f":
            bad = ~np.isfinite(have) & np.isfinite(want)
            if bad.any():
                return Quality(None, 0.0, float("nan"), float("nan"), float("inf"), False, name)
            cos = _cosines(have, want)
            cos_all = np.minimum(cos_all, cos)
            agree &= cos >= min_cosine
            if want.size:
                max_dev = max(max_dev, float(np.abs(have.astype(np.float64) - want).max()))
        else:
            agree &= (have.reshape(n, -1) == want.reshape(n, -1)).all(axis=1)
    accuracy = None
    if labels is not None:
        accuracy = float((predicted_class(got, output).astype(labels.dtype) == labels).mean())
    return Quality(accuracy, float(agree.mean()), float(cos_all.min()), float(cos_all.mean()), max_dev, True)


def speed_round(brick: Any, data: Dataset, batch_size: int, budget_s: float) -> Speed:
    """One round: half the time at batch 1, half at ``batch_size``."""
    singles = [data.rows(i, i + 1) for i in range(min(len(data), 64))]
    batches = data.batches(batch_size)
    full = [b for b in batches if len(next(iter(b.values()))) == batch_size] or batches[:1]
    brick(singles[0])
    brick(full[0])
    times: list[float] = []
    stop = time.perf_counter() + budget_s / 2
    i = 0
    while time.perf_counter() < stop or len(times) < 5:
        t0 = time.perf_counter()
        brick(singles[i % len(singles)])
        times.append(time.perf_counter() - t0)
        i += 1
    items = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    stop = t0 + budget_s / 2
    i = 0
    while time.perf_counter() < stop or i < 3:
        batch = full[i % len(full)]
        brick(batch)
        items += len(next(iter(batch.values())))
        i += 1
    elapsed = time.perf_counter() - t0
    cpu = max(time.process_time() - c0, 1e-9)
    size = len(next(iter(full[0].values())))
    return Speed(float(np.median(times)), items / elapsed, size, items / cpu)


def best(speeds: Sequence[Speed]) -> Speed:
    """Each figure's best round: the one the neighbours disturbed least."""
    return Speed(min(s.latency_s for s in speeds), max(s.throughput for s in speeds), speeds[0].batch_size,
                 max(s.cpu_throughput for s in speeds))
