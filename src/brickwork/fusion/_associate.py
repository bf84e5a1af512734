"""Late fusion of detections by association: Hungarian assignment on a cost you choose,
each source weighted by its own reported confidence.

Detections travel as fixed-size padded tensors per item: ``points`` (M, D) (a position, e.g.
metres in the ground plane, or a box x1, y1, x2, y2), ``scores`` (M,) in [0, 1] with 0 marking
an empty slot, ``labels`` (M,) class ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bricks import BaseBrick, BrickSpec, ConfigKey, import_object
from ..errors import ConfigError
from ..spec import Signature, Tensors, TensorSpec

__all__ = ["Detections", "FuseBrick", "assign", "fuse", "pair_cost"]

Cost = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class Detections:
    """One item's detections (only the filled slots): points (n, D), scores (n,), labels (n,),
    and ``sources`` (n,), a bit per source that contributed."""

    points: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    sources: np.ndarray


def pair_cost(kind: str | Cost) -> Cost:
    """The cost between every pair of two point sets, (n, D) x (m, D) -> (n, m):
    ``"euclidean"`` (distance between points), ``"iou"`` (1 - IoU of x1, y1, x2, y2 boxes),
    or any callable (or ``"module:function"``) with that contract."""
    if callable(kind):
        return kind
    if kind == "euclidean":
        return _euclidean
    if kind == "iou":
        return _one_minus_iou
    if ":" in kind:
        fn = import_object(kind)
        if not callable(fn):
            raise ConfigError(f"fusion cost {kind!r} is not callable")
        return fn
    raise ConfigError(f"unknown fusion cost {kind!r}; use 'euclidean', 'iou' or 'module:function'")


def _euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)


def _one_minus_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return 1.0 - inter / np.maximum(union, 1e-9)


def assign(cost: np.ndarray, gate: float) -> list[tuple[int, int]]:
    """Pairs (row, column) of the minimum-cost one-to-one assignment, keeping only pairs whose
    cost is at most ``gate`` (Hungarian method, scipy's ``linear_sum_assignment``)."""
    if cost.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    big = gate * 1e3 + 1e6  # a gated pair costs more than any admissible assignment
    rows, cols = linear_sum_assignment(np.where(cost <= gate, cost, big))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= gate]


def fuse(sources: Sequence[Detections], *, weights: Sequence[float] | None = None,
         cost: str | Cost = "euclidean", gate: float = 1.0,
         position_weights: Sequence[float] | None = None,
         absence: Sequence[float] | None = None, quality: Sequence[float] | None = None) -> Detections:
    """Associate the sources' detections one source at a time (Hungarian on ``cost`` with
    ``gate``) and merge each associated group: position = mean weighted by weight x score
    (x ``position_weights``: how far to trust each source's *position*, e.g. a camera's poor
    range), score = 1 - prod(1 - weight x score) (agreeing sources raise the confidence),
    label = the label of the most confident member. Unmatched detections keep weight x score.

    Negative evidence: a group that source s did not see is discounted by
    ``1 - absence[s] x quality[s]``, where ``quality[s]`` (0..1, default 1) is how well source s
    can see now, as it reports it (a camera at night reports less): a sensor that sees well
    and saw nothing counts against a detection, a blinded one does not. ``absence`` defaults
    to 0 (off)."""
    fn = pair_cost(cost)
    weights = tuple(weights) if weights is not None else (1.0,) * len(sources)
    trust = tuple(position_weights) if position_weights is not None else (1.0,) * len(sources)
    absent = tuple(absence) if absence is not None else (0.0,) * len(sources)
    seeing = tuple(quality) if quality is not None else (1.0,) * len(sources)
    # running groups: weighted point sums, weight sums, miss products, best (conf, label), bits
    sums: list[np.ndarray] = []
    wsum: list[float] = []
    miss: list[float] = []
    best: list[tuple[float, int]] = []
    bits: list[int] = []
    for s, (det, w, pw) in enumerate(zip(sources, weights, trust, strict=True)):
        conf = np.clip(det.scores.astype(np.float64) * w, 0.0, 1.0)
        pairs: list[tuple[int, int]] = []
        if sums and len(det.scores):
            centres = np.stack([p / max(ws, 1e-12) for p, ws in zip(sums, wsum, strict=True)])
            pairs = assign(np.asarray(fn(centres, det.points.astype(np.float64)), np.float64), gate)
        matched = {c: r for r, c in pairs}
        for j in range(len(conf)):
            c, point = float(conf[j]), det.points[j].astype(np.float64)
            pc = c * pw + 1e-9  # this detection's say in the group's position
            r = matched.get(j)
            if r is None:
                sums.append(point * pc)
                wsum.append(pc)
                miss.append(1.0 - c)
                best.append((c, int(det.labels[j])))
                bits.append(1 << s)
            else:
                sums[r] = sums[r] + point * pc
                wsum[r] += pc
                miss[r] *= 1.0 - c
                if c > best[r][0]:
                    best[r] = (c, int(det.labels[j]))
                bits[r] |= 1 << s
    d = sources[0].points.shape[1] if sources else 0
    if not sums:
        return Detections(np.zeros((0, d), np.float32), np.zeros(0, np.float32),
                          np.zeros(0, np.int64), np.zeros(0, np.int64))
    points = np.stack([p / max(ws, 1e-12) for p, ws in zip(sums, wsum, strict=True)])
    scores = 1.0 - np.asarray(miss)
    if any(absent):
        group_bits = np.asarray(bits, np.int64)
        for s, (a, q) in enumerate(zip(absent, seeing, strict=True)):
            scores = np.where(group_bits & (1 << s), scores, scores * (1.0 - a * float(np.clip(q, 0, 1))))
    return Detections(points.astype(np.float32), scores.astype(np.float32),
                      np.asarray([b[1] for b in best], np.int64), np.asarray(bits, np.int64))


class FuseBrick(BaseBrick):
    """A brick that fuses the detections of several sources, item by item.

    Reads ``<source>_points`` (-1, M, D), ``<source>_scores`` (-1, M) and ``<source>_labels``
    (-1, M) for each source; publishes ``points``, ``scores``, ``labels`` and ``sources`` (a bit
    per contributing source, in ``sources`` order) padded to ``max_detections`` rows, most
    confident first. Options: ``weights`` (per source, default 1), ``position_weights`` (per
    source, default 1: trust in its positions), ``absence`` (per source, default 0: how much a
    detection this source did not see is discounted, see :func:`fuse`), ``qualities``
    (the sources that also publish ``<source>_quality`` (-1,) FP32: their reported 0..1 ability
    to see now, see :func:`fuse`),
    ``cost`` (``"euclidean"``,
    ``"iou"`` or ``"module:function"``), ``gate`` (the largest cost that still associates, in
    the cost's unit), ``dims`` (D), ``max_detections`` (M out)."""

    kind = "fuse"
    blocking = False  # a few small matrices per item: cheaper on the loop than a thread hop
    config_keys = (
        ConfigKey("fuse", {"type": "array", "minItems": 1, "items": {"type": "string"}},
                  "the sources, e.g. [camera, radar]: each publishes <source>_points, _scores, _labels",
                  required=True),
        ConfigKey("dims", {"type": "integer", "minimum": 1}, "coordinates per detection (D); default 2"),
        ConfigKey("weights", {"type": "array", "items": {"type": "number"}}, "one weight per source; default 1 each"),
        ConfigKey("cost", {"type": "string"}, "euclidean (default), iou or module:function"),
        ConfigKey("gate", {"type": "number", "exclusiveMinimum": 0},
                  "the largest cost that still associates, in the cost's unit; default 1.0"),
        ConfigKey("max_detections", {"type": "integer", "minimum": 1}, "detections out per item; default 32"),
        ConfigKey("prefix", {"type": "string"}, "a prefix of every tensor name; default none"),
        ConfigKey("position_weights", {"type": "array", "items": {"type": "number"}},
                  "per source: trust in its positions; default 1 each"),
        ConfigKey("absence", {"type": "array", "items": {"type": "number"}},
                  "per source: how much a detection it did not see is discounted; default 0 each"),
        ConfigKey("qualities", {"type": "array", "items": {"type": "string"}},
                  "sources that also publish <source>_quality (their 0..1 ability to see now)"),
    )

    def __init__(self, name: str = "fuse", *, sources: Sequence[str], dims: int = 2,
                 weights: Sequence[float] | None = None, cost: str = "euclidean", gate: float = 1.0,
                 max_detections: int = 32, prefix: str = "",
                 position_weights: Sequence[float] | None = None,
                 absence: Sequence[float] | None = None, qualities: Sequence[str] = ()) -> None:
        if len(sources) < 1:
            raise ConfigError("fuse needs at least one source, e.g. sources=['camera', 'radar']")
        if weights is not None and len(weights) != len(sources):
            raise ConfigError(f"fuse weights {list(weights)} must give one weight per source {list(sources)}")
        if position_weights is not None and (len(position_weights) != len(sources)
                                             or any(not w > 0 for w in position_weights)):
            raise ConfigError(f"fuse position_weights {list(position_weights)} must give one weight > 0 "
                              f"per source {list(sources)}")
        if absence is not None and (len(absence) != len(sources) or any(not 0 <= a <= 1 for a in absence)):
            raise ConfigError(f"fuse absence {list(absence)} must give one value in [0, 1] per source {list(sources)}")
        unknown_q = sorted(set(qualities) - set(sources))
        if unknown_q:
            raise ConfigError(f"fuse qualities {unknown_q} are not sources {list(sources)}")
        if not gate > 0:
            raise ConfigError(f"fuse gate={gate!r} must be > 0 (the largest cost that associates)")
        self.sources = tuple(sources)
        self.weights = tuple(float(w) for w in weights) if weights is not None else None
        self.position_weights = (tuple(float(w) for w in position_weights)
                                 if position_weights is not None else None)
        self.absence = tuple(float(a) for a in absence) if absence is not None else None
        self.qualities = tuple(qualities)
        self.cost = cost
        self._cost = pair_cost(cost)
        self.gate = float(gate)
        self.dims = dims
        self.max_detections = max_detections
        self.prefix = prefix
        ins = []
        for s in self.sources:
            ins += [TensorSpec(f"{s}_points", "FP32", (-1, -1, dims)), TensorSpec(f"{s}_scores", "FP32", (-1, -1)),
                    TensorSpec(f"{s}_labels", "INT64", (-1, -1))]
            if s in self.qualities:
                ins.append(TensorSpec(f"{s}_quality", "FP32", (-1,)))
        m = max_detections
        outs = [TensorSpec(f"{prefix}points", "FP32", (-1, m, dims)), TensorSpec(f"{prefix}scores", "FP32", (-1, m)),
                TensorSpec(f"{prefix}labels", "INT64", (-1, m)), TensorSpec(f"{prefix}sources", "INT64", (-1, m))]
        super().__init__(name, Signature(ins, outs))

    def _call(self, inputs: Tensors) -> Tensors:
        n = inputs[f"{self.sources[0]}_scores"].shape[0]
        m, p = self.max_detections, self.prefix
        out_points = np.zeros((n, m, self.dims), np.float32)
        out_scores = np.zeros((n, m), np.float32)
        out_labels = np.zeros((n, m), np.int64)
        out_sources = np.zeros((n, m), np.int64)
        for i in range(n):
            dets = []
            for s in self.sources:
                scores = inputs[f"{s}_scores"][i]
                keep = scores > 0
                dets.append(Detections(inputs[f"{s}_points"][i][keep], scores[keep],
                                       inputs[f"{s}_labels"][i][keep], np.zeros(0, np.int64)))
            quality = ([float(inputs[f"{s}_quality"][i]) if s in self.qualities else 1.0
                        for s in self.sources] if self.qualities else None)
            fused = fuse(dets, weights=self.weights, cost=self._cost, gate=self.gate,
                         position_weights=self.position_weights, absence=self.absence, quality=quality)
            order = np.argsort(-fused.scores, kind="stable")[:m]
            k = len(order)
            out_points[i, :k] = fused.points[order]
            out_scores[i, :k] = fused.scores[order]
            out_labels[i, :k] = fused.labels[order]
            out_sources[i, :k] = fused.sources[order]
        return {f"{p}points": out_points, f"{p}scores": out_scores, f"{p}labels": out_labels,
                f"{p}sources": out_sources}

    def spec(self) -> BrickSpec:
        if callable(self.cost):
            return super().spec()
        return BrickSpec(self.kind, self.name, self._config())

    def _config(self) -> dict[str, Any]:
        return {"fuse": list(self.sources), "dims": self.dims, "weights": list(self.weights) if self.weights else None,
                "cost": self.cost, "gate": self.gate, "max_detections": self.max_detections, "prefix": self.prefix,
                "position_weights": list(self.position_weights) if self.position_weights else None,
                "absence": list(self.absence) if self.absence else None, "qualities": list(self.qualities)}

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> FuseBrick:
        config = dict(config)
        sources = config.pop("fuse")
        if not isinstance(sources, list) or not sources:
            raise ConfigError(f"brick {name!r}: 'fuse' takes the list of sources, e.g. fuse: [camera, radar]")
        known = {"dims", "weights", "cost", "gate", "max_detections", "prefix", "position_weights", "absence",
                 "qualities"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"brick {name!r}: unknown fuse option(s) {unknown}; known: {sorted(known)}")
        config = {k: v for k, v in config.items() if v is not None}
        return cls(name, sources=sources, **config)
