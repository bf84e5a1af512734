"""Generate the training scenes, train the camera CNN (-> ONNX) and the radar cluster classifier,
and write them to ``.models/`` next to ``pipeline.yaml``.

    python -m examples.fusion.build [--force] [--sequences 30] [--epochs 8]

About two minutes on two shared cores. Existing models are reused unless ``--force``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from examples.fusion import scenes, sensors

CAMERA_ONNX = sensors.MODELS / "camera_cnn.onnx"
TRAIN_SEED = 10_000  # held-out sequences use seeds below 10_000 (see evaluate.py)


def training_frames(sequences: int, frames: int = 10) -> list[scenes.Frame]:
    out: list[scenes.Frame] = []
    for c, condition in enumerate(scenes.CONDITIONS):
        for s in range(sequences):
            out += scenes.sequence(TRAIN_SEED + 1000 * c + s, condition, frames)
    return out


def build(*, force: bool = False, sequences: int = 30, epochs: int = 8, log: bool = True) -> dict[str, Path]:
    paths = {"camera": CAMERA_ONNX, "radar": sensors.RADAR_WEIGHTS}
    if not force and all(p.exists() for p in paths.values()):
        return paths
    t0 = time.perf_counter()
    frames = training_frames(sequences)
    if log:
        print(f"{len(frames)} training frames in {time.perf_counter() - t0:.0f} s", flush=True)
    feats, kinds = [], []
    for f in frames:
        x, _, members = sensors.radar_clusters(f.radar)
        feats.append(x)
        kinds.append(sensors.radar_truth(f, members))
    sensors.train_radar(np.concatenate(feats), np.concatenate(kinds))
    if log:
        print(f"radar classifier trained ({sum(len(k) for k in kinds)} clusters), "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    net = sensors.train_camera(frames, epochs=epochs)
    sensors.export_camera(net, CAMERA_ONNX)
    if log:
        print(f"camera CNN trained and exported, {time.perf_counter() - t0:.0f} s", flush=True)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--sequences", type=int, default=30, help="per condition, 10 frames each")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    for name, path in build(force=args.force, sequences=args.sequences, epochs=args.epochs).items():
        print(f"{name:7} {path}")


if __name__ == "__main__":
    main()
