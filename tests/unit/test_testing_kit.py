from __future__ import annotations

import numpy as np
import pytest

import brickwork as bw
from brickwork.bricks import brick_from_spec
from brickwork.testing import FakeBrick


def test_fake_brick_passes_through_and_fails_on_request():
    fake = FakeBrick(fail_on=3.0, scale=2.0)
    assert fake({"x": np.array([1.0, 2.0], np.float32)})["y"].tolist() == [2.0, 4.0]
    with bw.brick(fake).compile() as pipe, pytest.raises(bw.ModelError, match="fails on 3.0"):
        pipe.infer({"x": [3.0]})


def test_fake_brick_crash_is_machinery_in_process():
    with bw.brick(FakeBrick(crash_on=1.0)).fallback(default={"y": [0.0]}).compile() as pipe:
        out = pipe.infer({"x": [1.0, 5.0]})
    assert out["y"].tolist() == [0.0, 0.0] and out.rungs == {"fake": "default"}


def test_fake_brick_rebuilds_from_its_spec():
    fake = FakeBrick("f", delay_s=0.0, fail_on=9.0, shape=(-1, 2), scale=3.0)
    again = brick_from_spec(fake.spec())
    assert again.signature == fake.signature and again.config == fake.config
    assert again({"x": np.ones((1, 2), np.float32)})["y"].tolist() == [[3.0, 3.0]]
