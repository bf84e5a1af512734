"""The autoscaling rule on an injectable clock: wanted count from the load, hysteresis up and
down, bounds, and the YAML/Python forms of ``replicas: {min, max}``."""

from __future__ import annotations

import pytest

from brickwork.engine import ScaleDecision
from brickwork.errors import ConfigError
from brickwork.options import Autoscale, StageOptions


def test_wanted_follows_waiting_and_running_batches_within_bounds():
    d = ScaleDecision(Autoscale(min=1, max=4, target_batches=2))
    assert d.wanted(waiting_items=0, max_batch_size=32, inflight_batches=0) == 1
    assert d.wanted(waiting_items=0, max_batch_size=32, inflight_batches=2) == 1
    assert d.wanted(waiting_items=64, max_batch_size=32, inflight_batches=2) == 2
    assert d.wanted(waiting_items=320, max_batch_size=32, inflight_batches=2) == 4  # capped at max


def test_up_only_after_the_load_stayed_high_for_up_after_s():
    d = ScaleDecision(Autoscale(min=1, max=4, up_after_s=1.0, down_after_s=10.0))
    assert d.decide(0.0, current=1, wanted=3) == 1
    assert d.decide(0.5, current=1, wanted=3) == 1
    assert d.decide(0.9, current=1, wanted=1) == 1  # a dip resets the clock
    assert d.decide(1.5, current=1, wanted=3) == 1
    assert d.decide(2.6, current=1, wanted=3) == 3


def test_down_one_step_at_a_time_after_down_after_s():
    d = ScaleDecision(Autoscale(min=1, max=4, up_after_s=1.0, down_after_s=10.0))
    assert d.decide(0.0, current=3, wanted=1) == 3
    assert d.decide(9.0, current=3, wanted=1) == 3
    assert d.decide(10.0, current=3, wanted=1) == 2
    assert d.decide(15.0, current=2, wanted=1) == 2  # waits out down_after_s again
    assert d.decide(20.0, current=2, wanted=1) == 1


def test_replicas_range_in_options():
    opts = StageOptions().updated(replicas={"min": 2, "max": 6, "down_after_s": 5.0})
    assert opts.replicas == 2 and opts.autoscale == Autoscale(min=2, max=6, down_after_s=5.0)
    assert opts.updated(replicas=3).autoscale is None
    with pytest.raises(ConfigError, match="min <= max"):
        StageOptions().updated(replicas={"min": 4, "max": 2})
    with pytest.raises(ConfigError, match="unknown replicas field"):
        StageOptions().updated(replicas={"min": 1, "maximum": 2})
