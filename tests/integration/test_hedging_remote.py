"""Hedged requests to a remote model served by two real servers, one of them stalling."""

from __future__ import annotations

import time

import numpy as np

import brickwork as bw
from brickwork.server import ServerThread
from brickwork.testing import FakeBrick


def test_a_hedged_copy_reaches_the_other_url_and_wins():
    slow = bw.brick(FakeBrick("m", delay_s=1.5)).compile(name="m")
    fast = bw.brick(FakeBrick("m")).compile(name="m")
    with ServerThread(slow) as a, ServerThread(fast) as b:
        node = bw.http([a.url, b.url], model="m", name="remote", replicas=2, hedge_after_s=0.1)
        with node.compile() as pipe:
            t0 = time.perf_counter()
            out = pipe.infer({"x": np.asarray([3.0], np.float32)})
            took = time.perf_counter() - t0
            stats = pipe.stats()["stages"]["remote"]
        assert out["y"].tolist() == [3.0]
        assert took < 1.0, took  # not the slow server's 1.5 s
        assert (stats["hedges"], stats["hedge_wins"]) == (1, 1)
        spec = node.brick.spec()
        assert spec.config["v2"] == [a.url, b.url]


def test_without_hedging_the_slow_url_is_waited_for():
    slow = bw.brick(FakeBrick("m", delay_s=0.6)).compile(name="m")
    fast = bw.brick(FakeBrick("m")).compile(name="m")
    with ServerThread(slow) as a, ServerThread(fast) as b:
        with bw.http([a.url, b.url], model="m", name="remote", replicas=2).compile() as pipe:
            t0 = time.perf_counter()
            pipe.infer({"x": np.asarray([3.0], np.float32)})
            assert time.perf_counter() - t0 >= 0.5  # the first replica's thread keeps to the slow url
