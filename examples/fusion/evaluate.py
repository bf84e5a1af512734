"""Detection F1 of camera alone, radar alone and fused, per condition, on held-out sequences.

    python -m examples.fusion.evaluate [--sequences 20] [--json PATH]

A detection is a true positive when the Hungarian matching (``scenes.polar_cost``, gate 1:
azimuth within 2.5 deg, range within 1 m + 20 %) pairs it with an object in view; F1 counts
objects of either kind (the class is reported separately). Each method's score threshold is
chosen once, on validation sequences of every condition, then held for all conditions.
Fusion is :func:`brickwork.fusion.fuse` with ``scenes.polar_cost`` and the ``fuse`` brick's
options from ``pipeline.yaml``, as the pipeline runs it (the camera reports its quality).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from brickwork.fusion import Detections, assign, fuse
from examples.fusion import scenes, sensors

METHODS = ("camera", "radar", "fused")
EVAL_CONDITIONS = ("clear", "fog", "night", "clutter", "rain")
GATE = 1.0  # of the evaluation's matching (scenes.polar_cost)


def fuse_options() -> dict[str, Any]:
    """The pipeline's own ``fuse`` brick options (pipeline.yaml), so both fuse alike."""
    import yaml

    entry = yaml.safe_load((Path(__file__).parent / "pipeline.yaml").read_text())["bricks"]["fuse"]
    return {"weights": entry.get("weights"), "gate": entry.get("gate", 1.0),
            "position_weights": entry.get("position_weights"), "absence": entry.get("absence"),
            "qualities": entry.get("qualities", [])}


def frames_for(condition: str, sequences: int, *, seed0: int, frames: int = 10) -> list[scenes.Frame]:
    out: list[scenes.Frame] = []
    for s in range(sequences):
        out += scenes.sequence(seed0 + s, condition, frames)
    return out


def detections(frames: list[scenes.Frame], camera: Callable[[np.ndarray], np.ndarray]) -> dict[str, list[Detections]]:
    """Per method, per frame: the detections (all scores; thresholds come later)."""
    grid = np.concatenate([camera(np.stack([f.image for f in frames[i:i + 64]]))
                           for i in range(0, len(frames), 64)])
    cam = sensors.camera_detect(grid)
    quality = sensors.camera_quality(np.stack([f.image for f in frames]))
    options = fuse_options()
    options_fuse = {k: v for k, v in options.items() if k != "qualities"}
    rad = sensors.radar_detect(np.stack([f.radar for f in frames]))
    out: dict[str, list[Detections]] = {m: [] for m in METHODS}
    for i in range(len(frames)):
        c = _dets(cam["camera_points"][i], cam["camera_scores"][i], cam["camera_labels"][i])
        r = _dets(rad["radar_points"][i], rad["radar_scores"][i], rad["radar_labels"][i])
        out["camera"].append(c)
        out["radar"].append(r)
        q = (float(quality[i]), 1.0) if "camera" in options["qualities"] else None
        out["fused"].append(fuse([c, r], cost=scenes.polar_cost, quality=q, **options_fuse))
    return out


def _dets(points: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> Detections:
    keep = scores > 0
    return Detections(points[keep], scores[keep], labels[keep], np.zeros(0, np.int64))


def counts(frames: list[scenes.Frame], dets: list[Detections], threshold: float) -> tuple[int, int, int, int]:
    """True positives, false positives, false negatives, and true positives of the right class."""
    tp = fp = fn = right = 0
    for f, d in zip(frames, dets, strict=True):
        keep = d.scores >= threshold
        pts, labels = d.points[keep], d.labels[keep]
        truth = f.objects
        pairs = assign(scenes.polar_cost(truth[:, :2], pts), GATE) if len(truth) and len(pts) else []
        tp += len(pairs)
        fp += len(pts) - len(pairs)
        fn += len(truth) - len(pairs)
        right += sum(int(labels[j] == int(truth[i, 2])) for i, j in pairs)
    return tp, fp, fn, right


def f1(c: tuple[int, int, int, int]) -> float:
    tp, fp, fn, _ = c
    return 2 * tp / max(2 * tp + fp + fn, 1)


def best_threshold(frames: list[scenes.Frame], dets: list[Detections]) -> float:
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    return float(max(grid, key=lambda t: f1(counts(frames, dets, float(t)))))


def onnx_camera(path: Path = sensors.MODELS / "camera_cnn.onnx") -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda images: sess.run(None, {"image": images})[0]


def evaluate(sequences: int = 20, validation: int = 6) -> dict[str, Any]:
    camera = onnx_camera()
    val_frames: list[scenes.Frame] = []
    for c, cond in enumerate(scenes.CONDITIONS):
        val_frames += frames_for(cond, validation, seed0=5000 + 100 * c)
    val = detections(val_frames, camera)
    thresholds = {m: best_threshold(val_frames, val[m]) for m in METHODS}
    table: dict[str, Any] = {"thresholds": thresholds, "conditions": {}}
    for c, cond in enumerate(EVAL_CONDITIONS):
        frames = frames_for(cond, sequences, seed0=100 * c)
        dets = detections(frames, camera)
        row = {}
        for m in METHODS:
            cnt = counts(frames, dets[m], thresholds[m])
            row[m] = {"f1": f1(cnt), "tp": cnt[0], "fp": cnt[1], "fn": cnt[2],
                      "class_accuracy": cnt[3] / max(cnt[0], 1)}
        table["conditions"][cond] = row
        table["frames_per_condition"] = len(frames)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=20, help="held-out sequences per condition (10 frames)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    table = evaluate(args.sequences)
    print(f"thresholds: {table['thresholds']}  ({table['frames_per_condition']} frames per condition)")
    print(f"{'condition':10} " + " ".join(f"{m + ' F1':>10}" for m in METHODS) + "   fused - best single")
    for cond, row in table["conditions"].items():
        gain = row["fused"]["f1"] - max(row["camera"]["f1"], row["radar"]["f1"])
        print(f"{cond:10} " + " ".join(f"{row[m]['f1']:10.3f}" for m in METHODS) + f"   {gain:+.3f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
