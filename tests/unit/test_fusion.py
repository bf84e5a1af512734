"""Fusion combinators: association by Hungarian assignment, confidence-weighted merging, and the
per-stream tracker (bounded, expiring, streams never mixing)."""

from __future__ import annotations

import numpy as np
import pytest

import brickwork as bw
from brickwork.errors import ConfigError
from brickwork.fusion import Detections, FuseBrick, TrackBrick, Tracker, assign, fuse
from brickwork.graph import parse_pipeline


def dets(points, scores, labels=None) -> Detections:
    points = np.asarray(points, np.float32).reshape(-1, 2)
    n = len(points)
    return Detections(points, np.asarray(scores, np.float32),
                      np.asarray(labels if labels is not None else [0] * n, np.int64), np.zeros(0, np.int64))


def test_assign_is_the_minimum_cost_matching_within_the_gate():
    cost = np.array([[1.0, 2.0], [1.5, 9.0]])
    # greedy would take (0, 0) then (1, 1) at 10.0; the optimum is (0, 1) + (1, 0) at 3.5
    assert sorted(assign(cost, gate=5.0)) == [(0, 1), (1, 0)]
    assert assign(cost, gate=1.2) == [(0, 0)]  # pairs over the gate are not associations
    assert assign(np.zeros((0, 3)), gate=1.0) == []


def test_fuse_merges_by_confidence_and_keeps_the_unmatched():
    camera = dets([[10.0, 0.0], [30.0, 5.0]], [0.9, 0.6], [1, 2])
    radar = dets([[10.6, 0.2], [50.0, -3.0]], [0.3, 0.5], [2, 1])
    out = fuse([camera, radar], gate=2.0)
    assert len(out.scores) == 3
    i = int(np.argmin(np.abs(out.points[:, 0] - 10.15)))
    # the associated pair: position pulled toward the more confident camera, score noisy-OR
    np.testing.assert_allclose(out.points[i], [(10 * 0.9 + 10.6 * 0.3) / 1.2, 0.2 * 0.3 / 1.2], rtol=1e-5)
    assert out.scores[i] == pytest.approx(1 - 0.1 * 0.7)
    assert out.labels[i] == 1 and out.sources[i] == 0b11  # camera's label (more confident)
    assert sorted(out.sources.tolist()) == [0b01, 0b10, 0b11]
    # source weights scale each source's confidence
    weighted = fuse([camera, radar], gate=2.0, weights=[0.5, 1.0])
    assert weighted.scores.max() == pytest.approx(1 - (1 - 0.45) * 0.7)


def test_fuse_with_iou_cost_on_boxes():
    a = Detections(np.array([[0, 0, 10, 10]], np.float32), np.array([0.8], np.float32),
                   np.array([1]), np.zeros(0, np.int64))
    b = Detections(np.array([[1, 1, 11, 11], [50, 50, 60, 60]], np.float32), np.array([0.8, 0.4], np.float32),
                   np.array([1, 1]), np.zeros(0, np.int64))
    out = fuse([a, b], cost="iou", gate=0.5)
    assert len(out.scores) == 2 and sorted(out.sources.tolist()) == [0b10, 0b11]


def test_fuse_brick_in_a_graph_from_yaml():
    f = parse_pipeline(
        "name: f\n"
        "bricks:\n"
        "  fuse: {fuse: [camera, radar], gate: 2.0, max_detections: 4, weights: [1.0, 0.8]}\n"
        "graph: fuse\n")
    with f.compile() as pipe:
        out = pipe.infer({
            "camera_points": np.array([[[10, 0], [0, 0]]], np.float32),
            "camera_scores": np.array([[0.9, 0.0]], np.float32),  # slot 1 is padding
            "camera_labels": np.array([[1, 0]], np.int64),
            "radar_points": np.array([[[10.5, 0]]], np.float32),
            "radar_scores": np.array([[0.5]], np.float32),
            "radar_labels": np.array([[2]], np.int64),
        })
    assert out["scores"].shape == (1, 4) and out["points"].shape == (1, 4, 2)
    assert out["scores"][0, 0] == pytest.approx(1 - 0.1 * 0.6) and out["scores"][0, 1:].tolist() == [0, 0, 0]
    assert out["sources"][0].tolist() == [3, 0, 0, 0] and out["labels"][0, 0] == 1
    with pytest.raises(ConfigError, match="one weight per source"):
        FuseBrick(sources=["a", "b"], weights=[1.0])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frame(*xy: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pts = np.asarray(xy, np.float32).reshape(-1, 2)
    return pts, np.full(len(pts), 0.9, np.float32), np.zeros(len(pts), np.int64)


def test_tracker_keeps_ids_and_estimates_velocity():
    tr = Tracker(gate=2.0)
    ids = [tr.step("car", *frame((float(x), 0.0)), t=float(x))[0][0] for x in range(6)]
    assert len(set(ids)) == 1 and ids[0] >= 1  # one track across the frames
    ids2, _pos, vel = tr.step("car", *frame((6.0, 0.0)), t=6.0)
    assert ids2[0] == ids[0] and vel[0, 0] == pytest.approx(1.0, abs=0.2)  # 1 m per second


def test_two_streams_never_mix():
    tr = Tracker(gate=5.0)
    a = tr.step("a", *frame((0.0, 0.0)))[0][0]
    b = tr.step("b", *frame((0.0, 0.0)))[0][0]  # same place, other stream: its own track
    assert (a, b) == (1, 1)  # each stream numbers its own tracks
    assert tr.step("a", *frame((0.5, 0.0)))[0][0] == a
    assert tr.step("b", *frame((100.0, 0.0)))[0][0] == 2  # b's object far away: a new track in b
    assert [t.id for t in tr.streams["a"].tracks] == [1]
    assert [t.x[0] < 50 for t in tr.streams["b"].tracks] == [True, False]


def test_tracker_state_is_bounded_and_expires():
    clock = Clock()
    tr = Tracker(max_streams=2, max_tracks=3, ttl_s=10.0, max_misses=1, clock=clock)
    tr.step("s1", *frame(*[(float(10 * i), 0.0) for i in range(5)]))
    assert len(tr.streams["s1"].tracks) == 3  # max_tracks caps the state
    tr.step("s2", *frame((0.0, 0.0)))
    tr.step("s3", *frame((0.0, 0.0)))
    assert list(tr.streams) == ["s2", "s3"] and tr.evicted == 1  # least recently seen goes
    clock.now = 5.0
    tr.step("s3", *frame((0.0, 0.0)))
    clock.now = 11.0
    tr.step("s3", *frame((0.0, 0.0)))
    assert list(tr.streams) == ["s3"] and tr.expired == 1  # s2 idle for 11 s > ttl_s, s3 for 6
    assert tr.streams["s3"].tracks[0].hits == 3  # s3 kept its track
    empty = (np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    tr.step("s3", *empty)
    tr.step("s3", *empty)
    assert tr.streams["s3"].tracks == []  # unmatched for more than max_misses frames: ended


def test_track_brick_batches_items_of_several_streams_in_order():
    brick = TrackBrick(gate=2.0, time_input="t")
    with bw.brick(brick).compile() as pipe:
        def call(streams, xs, ts):
            return pipe.infer({
                "stream": np.asarray(streams, object),
                "points": np.asarray([[[x, 0.0]] for x in xs], np.float32),
                "scores": np.full((len(xs), 1), 0.9, np.float32),
                "labels": np.zeros((len(xs), 1), np.int64),
                "t": np.asarray(ts, np.float64)})

        first = call(["a", "b"], [0.0, 50.0], [0.0, 0.0])
        assert first["track_ids"].tolist() == [[1], [1]]  # warm-up left no stream behind
        second = call(["a", "a", "b"], [1.0, 2.0, 51.0], [1.0, 2.0, 1.0])
        assert second["track_ids"].tolist() == [[1], [1], [1]]
        assert second["track_velocity"][1, 0, 0] > 0.3  # the second "a" item saw the first
    with pytest.raises(ConfigError, match="max_streams=0"):
        TrackBrick(max_streams=0)


def test_position_weights_quality_and_negative_evidence():
    camera = dets([[10.0, 20.0]], [0.8])
    radar = dets([[10.0, 24.0], [-5.0, 30.0]], [0.6, 0.6])
    # the camera's range is poor: trust its position little, the pair sits near the radar's
    out = fuse([camera, radar], gate=5.0, position_weights=[0.01, 1.0])
    pair = int(np.argmax(out.sources == 0b11))
    assert out.points[pair, 1] == pytest.approx(24.0, abs=0.1)  # not 21.7, the plain weighted mean
    # a camera that sees well and saw nothing counts against the radar's lone detection ...
    seeing = fuse([camera, radar], gate=5.0, absence=[0.5, 0.0], quality=[1.0, 1.0])
    lone = int(np.argmax(seeing.sources == 0b10))
    assert seeing.scores[lone] == pytest.approx(0.6 * 0.5)
    # ... a blinded one (quality 0.1) hardly does; what it did see still confirms
    blind = fuse([camera, radar], gate=5.0, absence=[0.5, 0.0], quality=[0.1, 1.0])
    assert blind.scores[int(np.argmax(blind.sources == 0b10))] == pytest.approx(0.6 * 0.95)
    assert blind.scores[int(np.argmax(blind.sources == 0b11))] == pytest.approx(1 - 0.2 * 0.4)
    brick = FuseBrick(sources=["camera", "radar"], qualities=["camera"], absence=[0.5, 0.0])
    assert "camera_quality" in brick.signature.input_names
    assert "radar_quality" not in brick.signature.input_names
    with pytest.raises(ConfigError, match="qualities"):
        FuseBrick(sources=["camera"], qualities=["lidar"])
