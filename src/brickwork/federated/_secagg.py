"""Secure aggregation with pairwise additive masks (Bonawitz et al., 2017, without double masking).

Every client holds a Diffie-Hellman key pair (RFC 3526 group 14, 2048 bits). For a round, clients
``i`` and ``j`` derive the same seed ``s_ij = SHA-256(g^(a_i a_j) mod p, round)`` without the
server learning it. Client ``i`` encodes its update in fixed point in the ring of ``uint64``
(wrap-around arithmetic) and adds ``PRG(s_ij)`` for every peer ``j`` ordered after it and
subtracts it for every peer ordered before it. In the sum over all clients each mask appears
once with ``+`` and once with ``-`` and cancels, so the server learns the exact sum and nothing
else: a single masked vector is uniformly random in ``Z_{2^64}``.

Dropout recovery: when client ``j`` is lost after the others masked against it, the survivors
reveal ``s_ij`` for that ``j`` only, and the server removes the masks that no longer cancel.
(A late answer from ``j`` is then ignored, never unmasked.)

Threat model: an honest-but-curious server; clients are trusted to run brickwork's own client
loop. There is no secret sharing of the keys (a client that drops *during* recovery fails the
round).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "FRACTION_BITS", "KeyPair", "decode", "encode", "mask", "pair_seed", "prg", "unmask_dropped",
]

# RFC 3526, 2048-bit MODP group 14 (a safe prime), generator 2.
_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
_G = 2
FRACTION_BITS = 30  # fixed point: x -> round(x * 2**30); |x| must stay below 2**32
_SCALE = float(2**FRACTION_BITS)
_LIMIT = float(2 ** (63 - FRACTION_BITS - 1))


class KeyPair:
    """A client's Diffie-Hellman secret and public key; the secret never leaves its process."""

    __slots__ = ("_secret", "public")

    def __init__(self) -> None:
        self._secret = secrets.randbits(256) | 1
        self.public = pow(_G, self._secret, _P)

    def shared(self, other_public: int) -> int:
        if not 1 < other_public < _P - 1:
            raise ValueError(f"peer public key out of range: {other_public}")
        return pow(other_public, self._secret, _P)


def pair_seed(shared: int, round_: int) -> int:
    """The round's seed for one pair, from their Diffie-Hellman shared secret."""
    digest = hashlib.sha256(shared.to_bytes(256, "big") + round_.to_bytes(8, "big")).digest()
    return int.from_bytes(digest, "big")


def prg(seed: int, size: int) -> np.ndarray:
    """``size`` pseudo-random uint64 words from ``seed`` (PCG64)."""
    return np.random.PCG64(seed).random_raw(size).astype(np.uint64, copy=False)


def encode(vector: np.ndarray) -> np.ndarray:
    """float -> fixed point in the uint64 ring (two's complement)."""
    v = np.asarray(vector, dtype=np.float64)
    if v.size and float(np.max(np.abs(v))) >= _LIMIT:
        raise ValueError(f"update too large for secure aggregation's fixed point (|x| >= {_LIMIT:g})")
    return np.rint(v * _SCALE).astype(np.int64).view(np.uint64)


def decode(ring: np.ndarray) -> np.ndarray:
    """uint64 ring -> float64 (inverse of ``encode``, also for sums of encodings)."""
    return np.asarray(ring, dtype=np.uint64).view(np.int64).astype(np.float64) / _SCALE


def _sign(me: str, other: str) -> int:
    return 1 if me < other else -1


def mask(encoded: np.ndarray, *, me: str, keys: KeyPair, peers: Mapping[str, int], round_: int) -> np.ndarray:
    """Add the pairwise masks against every peer (``{client_id: public_key}``, self excluded)."""
    out = np.array(encoded, dtype=np.uint64, copy=True)
    for other, public in peers.items():
        if other == me:
            continue
        m = prg(pair_seed(keys.shared(public), round_), out.size)
        if _sign(me, other) > 0:
            out += m
        else:
            out -= m
    return out


def unmask_dropped(total: np.ndarray, revealed: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """Remove the masks survivors added against dropped clients.

    ``revealed`` is ``{survivor: {dropped: seed}}`` as the survivors sent them."""
    out = np.array(total, dtype=np.uint64, copy=True)
    for survivor, seeds in revealed.items():
        for dropped, seed in seeds.items():
            m = prg(seed, out.size)
            if _sign(survivor, dropped) > 0:
                out -= m
            else:
                out += m
    return out


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) if arrays else np.zeros(0)


def unflatten(vector: np.ndarray, like: Sequence[np.ndarray]) -> list[np.ndarray]:
    out, at = [], 0
    for a in like:
        out.append(vector[at:at + a.size].reshape(a.shape))
        at += a.size
    return out
