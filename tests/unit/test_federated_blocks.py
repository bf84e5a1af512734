"""Federated building blocks without processes: masks, privacy accounting, strategies, sampling,
config and checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from brickwork.errors import ConfigError
from brickwork.federated import FedAdam, FedAvg, FedProx, FedYogi, epsilon, make_strategy, parse_config, sample_clients
from brickwork.federated._checkpoint import latest, save
from brickwork.federated._privacy import clip_update
from brickwork.federated._secagg import KeyPair, decode, encode, mask, pair_seed, unmask_dropped


def _masked_round(n: int, size: int, round_: int = 3) -> tuple[list[np.ndarray], list[np.ndarray], dict, dict]:
    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(n)]
    keys = {c: KeyPair() for c in ids}
    public = {c: k.public for c, k in keys.items()}
    updates = [rng.normal(0, 1, size) for _ in ids]
    masked = [mask(encode(u), me=c, keys=keys[c], peers=public, round_=round_) for c, u in zip(ids, updates)]
    return updates, masked, keys, public


def test_pairwise_masks_cancel_in_the_sum() -> None:
    updates, masked, _, _ = _masked_round(4, 1000)
    total = np.zeros(1000, dtype=np.uint64)
    for m in masked:
        total += m
    np.testing.assert_allclose(decode(total), np.sum(updates, axis=0), rtol=0, atol=1e-8)
    # no single masked vector decodes to anything near its update
    assert np.abs(decode(masked[0]) - updates[0]).min() > 1.0


def test_dropout_recovery_removes_the_masks_of_a_client_lost_after_masking() -> None:
    updates, masked, keys, public = _masked_round(4, 500)
    lost = "c2"
    total = np.zeros(500, dtype=np.uint64)
    for i, m in enumerate(masked):
        if f"c{i}" != lost:
            total += m
    assert np.abs(decode(total) - (np.sum(updates, axis=0) - updates[2])).max() > 1.0  # still masked
    revealed = {c: {lost: pair_seed(keys[c].shared(public[lost]), 3)} for c in public if c != lost}
    recovered = decode(unmask_dropped(total, revealed))
    np.testing.assert_allclose(recovered, np.sum(updates, axis=0) - updates[2], rtol=0, atol=1e-8)


def test_both_ends_of_a_pair_derive_the_same_seed_and_rounds_differ() -> None:
    a, b = KeyPair(), KeyPair()
    assert pair_seed(a.shared(b.public), 1) == pair_seed(b.shared(a.public), 1)
    assert pair_seed(a.shared(b.public), 1) != pair_seed(a.shared(b.public), 2)
    with pytest.raises(ValueError):
        a.shared(1)


def test_encode_refuses_values_that_would_overflow() -> None:
    with pytest.raises(ValueError, match="too large"):
        encode(np.array([1e12]))


def test_clip_bounds_the_update_norm() -> None:
    clipped, norm = clip_update([np.full(4, 3.0), np.full(3, 4.0)], 1.0)
    assert norm == pytest.approx(math.sqrt(4 * 9 + 3 * 16))
    assert math.sqrt(sum(float(np.sum(c**2)) for c in clipped)) == pytest.approx(1.0)
    small, _ = clip_update([np.full(2, 0.1)], 1.0)
    np.testing.assert_allclose(small[0], 0.1)


def test_epsilon_grows_with_rounds_and_shrinks_with_noise() -> None:
    assert epsilon(0, 1.0, 1e-5) == 0.0
    assert epsilon(1, 0.0, 1e-5) == math.inf
    e1, e10 = epsilon(1, 1.0, 1e-5), epsilon(10, 1.0, 1e-5)
    assert 0 < e1 < e10
    assert epsilon(10, 4.0, 1e-5) < e10
    # the Gaussian mechanism at z=1 for one step: RDP gives about 5.3 at delta=1e-5
    assert 4.0 < e1 < 6.0


def test_strategies() -> None:
    w = [np.zeros(3, dtype=np.float32)]
    d = [np.array([1.0, -2.0, 0.5])]
    np.testing.assert_allclose(FedAvg().apply(w, d)[0], d[0])
    assert FedAvg().apply(w, d)[0].dtype == np.float32
    assert FedProx(mu=0.1).fit_config() == {"proximal_mu": 0.1}
    for opt in (FedAdam(lr=0.1), FedYogi(lr=0.1)):
        moved = opt.apply(w, d)[0]
        assert np.all(np.sign(moved) == np.sign(d[0]))  # a step along the mean update
        restored = type(opt)(lr=0.1)
        restored.load_state(opt.state())
        np.testing.assert_allclose(restored.apply(w, d)[0], opt.apply(w, d)[0])
    assert isinstance(make_strategy({"name": "fedyogi", "lr": 0.5}), FedYogi)
    with pytest.raises(ConfigError, match="unknown name"):
        make_strategy("fedsgd")


def test_sampling_is_seeded_and_respects_the_quorum() -> None:
    ids = [f"s{i}" for i in range(10)]
    a = sample_clients(ids, fraction=0.3, min_clients=2, rng=np.random.default_rng([0, 1]))
    b = sample_clients(ids, fraction=0.3, min_clients=2, rng=np.random.default_rng([0, 1]))
    assert a == b and len(a) == 3 and len(set(a)) == 3
    assert len(sample_clients(ids, fraction=0.1, min_clients=4, rng=np.random.default_rng(0))) == 4
    assert sample_clients(ids, fraction=1.0, min_clients=1, rng=np.random.default_rng(0)) == ids


def test_config_errors_name_the_field() -> None:
    base = {"name": "x", "client": "m:f", "clients": [{"data": "a.npz"}, "b.npz"]}
    cfg = parse_config(base)
    assert [c.id for c in cfg.clients] == ["site0", "site1"] and cfg.rounds == 10
    with pytest.raises(ConfigError, match="unknown field"):
        parse_config({**base, "roundz": 3})
    with pytest.raises(ConfigError, match="min_clients"):
        parse_config({**base, "sampling": {"min_clients": 3}})
    with pytest.raises(ConfigError, match="missing field 'client'"):
        parse_config({"name": "x", "clients": []})
    with pytest.raises(ConfigError, match="unique"):
        parse_config({**base, "clients": [{"id": "a", "data": "1"}, {"id": "a", "data": "2"}]})


def test_checkpoint_round_trip_keeps_the_newest(tmp_path: Path) -> None:
    for r in range(1, 5):
        save(tmp_path, r, [np.full(2, float(r))], {"m0": np.ones(2) * r}, [{"round": i} for i in range(1, r + 1)])
    ck = latest(tmp_path)
    assert ck is not None and ck.round == 4
    np.testing.assert_array_equal(ck.weights[0], [4.0, 4.0])
    np.testing.assert_array_equal(ck.strategy_state["m0"], [4.0, 4.0])
    assert len(ck.history) == 4
    assert len(list(tmp_path.glob("round-*.npz"))) == 2  # older ones are pruned
    (tmp_path / "round-0004.npz").write_bytes(b"torn")  # a torn write falls back to the previous round
    assert latest(tmp_path).round == 3  # type: ignore[union-attr]
