"""Fusion combinators usable in any graph: late fusion of detections by association
(:class:`FuseBrick`, :func:`fuse`) and a per-stream tracker (:class:`TrackBrick`,
:class:`Tracker`). See docs/fusion.md. Imports scipy only when a brick runs."""

from ._associate import Detections, FuseBrick, assign, fuse, pair_cost
from ._tracker import Track, TrackBrick, Tracker

__all__ = ["Detections", "FuseBrick", "Track", "TrackBrick", "Tracker", "assign", "fuse", "pair_cost"]
