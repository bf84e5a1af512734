"""A tracker stage: keeps tracks across the requests of one stream (a Kalman filter per track,
constant velocity in the plane), keyed by a stream id each request item carries.

State is per stream and bounded: at most ``max_streams`` streams (the least recently seen is
evicted), at most ``max_tracks`` tracks per stream (the weakest new detections do not start a
track when full), a stream not seen for ``ttl_s`` is forgotten, and a track unmatched for
``max_misses`` frames ends. Two streams never share a track: every lookup is by stream id.

Run it with one replica: replicas would each keep their own state.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..bricks import BaseBrick, BrickSpec, ConfigKey
from ..errors import ConfigError
from ..spec import Signature, Tensors, TensorSpec
from ._associate import assign

__all__ = ["Track", "TrackBrick", "Tracker"]


@dataclass(slots=True)
class Track:
    id: int
    x: np.ndarray  # state: px, py, vx, vy
    p: np.ndarray  # 4x4 covariance
    label: int
    score: float
    hits: int = 1
    misses: int = 0


@dataclass(slots=True)
class _Stream:
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1
    seen: float = 0.0  # clock time of the last request
    t: float | None = None  # the stream's own timestamp of the last frame


class Tracker:
    """The per-stream state and the Kalman filter, without the tensor plumbing (unit-testable)."""

    def __init__(self, *, max_streams: int = 1024, max_tracks: int = 64, ttl_s: float | None = 60.0,
                 max_misses: int = 3, gate: float = 3.0, min_score: float = 0.3,
                 process_noise: float = 1.0, measurement_noise: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for key, value in (("max_streams", max_streams), ("max_tracks", max_tracks)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"tracker {key}={value!r} must be a count >= 1")
        if ttl_s is not None and not ttl_s > 0:
            raise ConfigError(f"tracker ttl_s={ttl_s!r} must be seconds > 0 (or None: never expire)")
        self.max_streams, self.max_tracks, self.ttl_s = max_streams, max_tracks, ttl_s
        self.max_misses, self.gate, self.min_score = max_misses, gate, min_score
        self.q, self.r = process_noise, measurement_noise
        self.clock = clock
        self.streams: OrderedDict[str, _Stream] = OrderedDict()
        self.evicted = 0
        self.expired = 0

    def reset(self) -> None:
        self.streams.clear()

    def _stream(self, key: str) -> _Stream:
        now = self.clock()
        if self.ttl_s is not None:
            while self.streams:
                oldest_key, oldest = next(iter(self.streams.items()))
                if now - oldest.seen <= self.ttl_s:
                    break
                del self.streams[oldest_key]
                self.expired += 1
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = _Stream()
            while len(self.streams) > self.max_streams:
                self.streams.popitem(last=False)
                self.evicted += 1
        else:
            self.streams.move_to_end(key)
        stream.seen = now
        return stream

    def step(self, stream_id: str, points: np.ndarray, scores: np.ndarray, labels: np.ndarray,
             t: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One frame of one stream: predict, associate (Hungarian on distance, within ``gate``),
        update, start and end tracks. Returns per detection: track id (-1: none), filtered
        position (2,) and velocity (2,)."""
        stream = self._stream(stream_id)
        dt = 1.0 if t is None or stream.t is None else max(float(t) - stream.t, 1e-3)
        if t is not None:
            stream.t = float(t)
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q = self.q * np.diag([dt ** 3 / 3, dt ** 3 / 3, dt, dt])
        for tr in stream.tracks:
            tr.x = f @ tr.x
            tr.p = f @ tr.p @ f.T + q
        n = len(scores)
        ids = np.full(n, -1, np.int64)
        pos = points[:, :2].astype(np.float32).copy()
        vel = np.zeros((n, 2), np.float32)
        live = np.flatnonzero(scores > 0)
        pairs: list[tuple[int, int]] = []
        if stream.tracks and len(live):
            centres = np.stack([tr.x[:2] for tr in stream.tracks])
            cost = np.linalg.norm(centres[:, None, :] - points[live][None, :, :2], axis=-1)
            pairs = assign(cost, self.gate)
        h = np.eye(2, 4)
        r = self.r * np.eye(2)
        matched_tracks, matched_dets = set(), set()
        for ti, di in pairs:
            tr, d = stream.tracks[ti], int(live[di])
            y = points[d, :2] - h @ tr.x
            s = h @ tr.p @ h.T + r
            gain = tr.p @ h.T @ np.linalg.inv(s)
            tr.x = tr.x + gain @ y
            tr.p = (np.eye(4) - gain @ h) @ tr.p
            tr.hits += 1
            tr.misses = 0
            tr.label, tr.score = int(labels[d]), float(scores[d])
            ids[d], pos[d], vel[d] = tr.id, tr.x[:2], tr.x[2:]
            matched_tracks.add(ti)
            matched_dets.add(d)
        for ti, tr in enumerate(stream.tracks):
            if ti not in matched_tracks:
                tr.misses += 1
        stream.tracks = [tr for tr in stream.tracks if tr.misses <= self.max_misses]
        fresh = [int(d) for d in live if int(d) not in matched_dets and scores[d] >= self.min_score]
        fresh.sort(key=lambda d: -float(scores[d]))  # when full, the strongest start tracks
        for d in fresh[: max(self.max_tracks - len(stream.tracks), 0)]:
            x = np.array([points[d, 0], points[d, 1], 0.0, 0.0])
            p0 = np.diag([self.r, self.r, 10.0, 10.0])
            stream.tracks.append(Track(stream.next_id, x, p0, int(labels[d]), float(scores[d])))
            ids[d] = stream.next_id
            stream.next_id += 1
        return ids, pos, vel


class TrackBrick(BaseBrick):
    """A :class:`Tracker` as a brick. Reads ``stream`` (BYTES, one id per item), ``points``
    (-1, M, D >= 2: the first two are the plane position), ``scores`` and ``labels`` (-1, M),
    and ``t`` (FP64 seconds, the frame time) when ``time_input`` is set; publishes ``track_ids``
    (-1, M; -1 for no track), ``track_points`` and ``track_velocity`` (-1, M, 2). Items of one
    batch are applied in order. Options are :class:`Tracker`'s."""

    kind = "track"
    blocking = False
    config_keys = (
        ConfigKey("track", {"type": "boolean"}, "true: a tracker brick", required=True),
        ConfigKey("dims", {"type": "integer", "minimum": 2}, "coordinates per detection; default 2"),
        ConfigKey("time_input", {"type": "string"}, "an FP64 input with each frame's time (s); default: wall clock"),
        ConfigKey("max_streams", {"type": "integer", "minimum": 1}, "streams kept (least recent evicted)"),
        ConfigKey("max_tracks", {"type": "integer", "minimum": 1}, "tracks kept per stream"),
        ConfigKey("ttl_s", {"type": "number", "exclusiveMinimum": 0}, "a stream unseen this long expires (s)"),
        ConfigKey("max_misses", {"type": "integer", "minimum": 0}, "frames a track may go unseen"),
        ConfigKey("gate", {"type": "number", "exclusiveMinimum": 0}, "the largest distance that associates"),
        ConfigKey("min_score", {"type": "number"}, "detections below this score start no track"),
        ConfigKey("process_noise", {"type": "number", "exclusiveMinimum": 0}, "the Kalman filter's process noise"),
        ConfigKey("measurement_noise", {"type": "number", "exclusiveMinimum": 0},
                  "the Kalman filter's measurement noise"),
    )

    def __init__(self, name: str = "track", *, dims: int = 2, time_input: str | None = None,
                 **options: Any) -> None:
        self.options = dict(options)
        self.tracker = Tracker(**options)
        self.time_input = time_input
        self.dims = dims
        ins = [TensorSpec("stream", "BYTES", (-1,)), TensorSpec("points", "FP32", (-1, -1, dims)),
               TensorSpec("scores", "FP32", (-1, -1)), TensorSpec("labels", "INT64", (-1, -1))]
        if time_input:
            ins.append(TensorSpec(time_input, "FP64", (-1,)))
        outs = [TensorSpec("track_ids", "INT64", (-1, -1)), TensorSpec("track_points", "FP32", (-1, -1, 2)),
                TensorSpec("track_velocity", "FP32", (-1, -1, 2))]
        super().__init__(name, Signature(ins, outs))

    def warmup(self) -> None:
        super().warmup()
        self.tracker.reset()  # the sample call must not leave a stream behind

    def _call(self, inputs: Tensors) -> Tensors:
        streams, points = inputs["stream"], inputs["points"]
        scores, labels = inputs["scores"], inputs["labels"]
        times = inputs[self.time_input] if self.time_input else None
        n, m = scores.shape[0], scores.shape[1]
        ids = np.full((n, m), -1, np.int64)
        pos = np.zeros((n, m, 2), np.float32)
        vel = np.zeros((n, m, 2), np.float32)
        for i in range(n):
            key = streams[i]
            key = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
            ids[i], pos[i], vel[i] = self.tracker.step(
                key, points[i], scores[i], labels[i], None if times is None else float(times[i]))
        return {"track_ids": ids, "track_points": pos, "track_velocity": vel}

    def spec(self) -> BrickSpec:
        return BrickSpec(self.kind, self.name, {"track": True, "dims": self.dims,
                                                "time_input": self.time_input, **self.options})

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> TrackBrick:
        config = {k: v for k, v in config.items() if k != "track"}
        known = {"dims", "time_input", "max_streams", "max_tracks", "ttl_s", "max_misses", "gate",
                 "min_score", "process_noise", "measurement_noise"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"brick {name!r}: unknown track option(s) {unknown}; known: {sorted(known)}")
        return cls(name, **config)
