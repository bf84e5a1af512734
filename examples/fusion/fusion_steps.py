"""The Python bricks of ``pipeline.yaml``: camera health check and decoding, radar detection,
and the radar-only rung that stands in for a failed camera. Batch functions over named tensors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, TypedDict

import numpy as np

import brickwork as bw
from brickwork.errors import UpstreamError

# The pipeline file imports this module by its file name (``fusion_steps``, unique among the
# examples); the code it wraps lives in the ``examples.fusion`` package, so the repository root
# must be importable, also under ``brickwork serve`` run from anywhere.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from examples.fusion import scenes, sensors  # noqa: E402

M = sensors.MAX_DET
Image = Annotated[np.ndarray, bw.Tensor("UINT8", (scenes.H, scenes.W, 3))]
Grid = Annotated[np.ndarray, bw.Tensor("FP32", (5, sensors.GH, sensors.GW))]
Scan = Annotated[np.ndarray, bw.Tensor("FP32", (scenes.RADAR_POINTS, 4))]
Points = Annotated[np.ndarray, bw.Tensor("FP32", (M, 2))]
Scores = Annotated[np.ndarray, bw.Tensor("FP32", (M,))]
Labels = Annotated[np.ndarray, bw.Tensor("INT64", (M,))]
Quality = Annotated[np.ndarray, bw.Tensor("FP32", ())]


class CameraDetections(TypedDict):
    camera_points: Points
    camera_scores: Scores
    camera_labels: Labels
    camera_quality: Quality  # how well the camera can see this frame, 0..1 (from its contrast)


class RadarDetections(TypedDict):
    radar_points: Points
    radar_scores: Scores
    radar_labels: Labels


def camera_health(image: Image) -> Image:
    """A dead camera sends flat frames: that is a sensor failure (machinery: the ladder moves
    on to radar only), not a picture of an empty road."""
    flat = image.reshape(len(image), -1).std(axis=1) < 1.0
    if flat.any():
        raise UpstreamError(f"camera feed lost: {int(flat.sum())} flat frame(s)")
    return image


def camera_decode(grid: Grid, checked_image: Image) -> CameraDetections:
    """Peaks of the CNN's grid, and the camera's own estimate of how well it sees (fog and
    night lower the frame's contrast)."""
    out = sensors.camera_detect(grid)
    out["camera_quality"] = sensors.camera_quality(checked_image).astype(np.float32)
    return out  # type: ignore[return-value]


def radar_detect(radar: Scan) -> RadarDetections:
    return sensors.radar_detect(radar)  # type: ignore[return-value]


def radar_only(image: Image) -> CameraDetections:
    """The camera's rung when it failed: no camera detections (fusion passes radar through)."""
    n = len(image)
    return {"camera_points": np.zeros((n, M, 2), np.float32), "camera_scores": np.zeros((n, M), np.float32),
            "camera_labels": np.zeros((n, M), np.int64), "camera_quality": np.zeros(n, np.float32)}
