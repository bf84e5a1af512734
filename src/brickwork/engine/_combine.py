"""Ensemble combiners: majority vote, weighted vote, mean of probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ModelError
from ..plan import Vote
from ..spec import Tensors

__all__ = ["combine"]


def combine(vote: Vote, values: Sequence[np.ndarray]) -> Tensors:
    """Merge the members' ``vote.on`` tensors (one per member, same batch) into the outputs."""
    n = values[0].shape[0]
    if any(v.shape[0] != n for v in values):
        raise ModelError(f"ensemble {vote.name!r}: members returned different batch sizes "
                         f"{[v.shape[0] for v in values]}")
    if vote.combiner == "mean":
        mean = np.mean(np.stack(values), axis=0).astype(values[0].dtype, copy=False)
        out: Tensors = {vote.output: mean}
        if vote.label:
            out[vote.label] = np.argmax(mean.reshape(n, -1), axis=1).astype(np.int64)
        return out
    weights = vote.weights or (1.0,) * len(values)
    return {vote.output: weighted_vote(values, weights)}


def weighted_vote(values: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Per item, the label with the largest summed weight; ties go to the label voted by the
    earliest member (so a plain majority vote with ties follows the first member)."""
    stacked = np.stack(values, axis=1)  # (n, members)
    out = np.empty(stacked.shape[0], dtype=values[0].dtype)
    for i, row in enumerate(stacked):
        score: dict[object, float] = {}
        first: dict[object, int] = {}
        for m, label in enumerate(row.tolist()):
            score[label] = score.get(label, 0.0) + weights[m]
            first.setdefault(label, m)
        out[i] = max(score, key=lambda lab: (score[lab], -first[lab]))
    return out
