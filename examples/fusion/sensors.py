"""The per-sensor detectors around the models, as batch functions (the pipeline's Python
bricks), plus their training.

Camera: a small CNN (``CameraNet``) maps the image to a stride-4 grid of class logits
(background, car, pedestrian) and the sub-cell position of each object's foot; ``camera_detect``
decodes peaks into ground points (azimuth from the column, range from the row: flat road).
Radar: DBSCAN clusters the returns in (x, z, radial velocity); a small MLP (numpy weights)
scores each cluster (clutter, car, pedestrian) from its shape, amplitude and ego-motion
compensated speed; ``radar_detect`` publishes the clusters as detections.

Detections: ``<sensor>_points`` (N, M, 2) x, z metres; ``<sensor>_scores`` (N, M), 0 = empty
slot; ``<sensor>_labels`` (N, M): 1 car, 2 pedestrian.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from examples.fusion import scenes

MAX_DET = 16
STRIDE = 4
GH, GW = scenes.H // STRIDE, scenes.W // STRIDE
MODELS = Path(__file__).parent / ".models"
RADAR_WEIGHTS = MODELS / "radar_mlp.npz"

# -- camera ---------------------------------------------------------------------------------


def camera_targets(frame: scenes.Frame) -> tuple[np.ndarray, np.ndarray]:
    """Per grid cell: class (0 background) and the foot's sub-cell offset (0..1, 0..1)."""
    cls = np.zeros((GH, GW), np.int64)
    off = np.zeros((2, GH, GW), np.float32)
    for x, z, kind in sorted(frame.objects.tolist(), key=lambda o: -o[1]):  # near ones win a cell
        u, v = scenes.project(x, z)
        gx, gy = int(u // STRIDE), int(min(v, scenes.H - 0.01) // STRIDE)
        if 0 <= gx < GW and 0 <= gy < GH:
            cls[gy, gx] = int(kind)
            off[:, gy, gx] = (u / STRIDE - gx, min(v, scenes.H - 0.01) / STRIDE - gy)
    return cls, off


def camera_net() -> Any:
    import torch
    from torch import nn

    class CameraNet(nn.Module):
        """uint8 (N, H, W, 3) -> (N, 5, H/4, W/4): 3 class logits, 2 foot offsets."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, 1, 2, dilation=2), nn.ReLU(), nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU(),
                nn.Conv2d(32, 5, 1))

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            x = image.permute(0, 3, 1, 2).float() / 255.0
            # brightness-normalise per image, so night frames look less different
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True) + 0.02
            return self.body((x - mean) / std)  # type: ignore[no-any-return]

    return CameraNet()


def camera_quality(images: np.ndarray) -> np.ndarray:
    """How much the camera trusts its own frame (N,), 0..1, from the frame's contrast: the
    standard deviation of the luminance, 35-40 in clear day, ~20 in fog, ~10 at night."""
    luma = images.reshape(len(images), -1, 3).astype(np.float32).mean(axis=2)
    return np.clip((luma.std(axis=1) - 4.0) / 30.0, 0.05, 1.0)  # type: ignore[no-any-return]


def camera_detect(grid: np.ndarray, quality: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Decode the CNN's grid (N, 5, GH, GW) into detections: 3x3 peaks of 1 - P(background),
    scores scaled by the frame's ``quality`` (the camera's reported confidence in itself)."""
    n = grid.shape[0]
    logits = grid[:, :3].astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    obj = 1.0 - prob[:, 0]
    pad = np.pad(obj, ((0, 0), (1, 1), (1, 1)))
    peak = np.max(np.stack([pad[:, 1 + dy: 1 + dy + GH, 1 + dx: 1 + dx + GW]
                            for dy in (-1, 0, 1) for dx in (-1, 0, 1)]), axis=0)
    points = np.zeros((n, MAX_DET, 2), np.float32)
    scores = np.zeros((n, MAX_DET), np.float32)
    labels = np.zeros((n, MAX_DET), np.int64)
    for i in range(n):
        ys, xs = np.nonzero((obj[i] >= peak[i]) & (obj[i] > 0.05))
        order = np.argsort(-obj[i, ys, xs])[:MAX_DET]
        ys, xs = ys[order], xs[order]
        off = 1.0 / (1.0 + np.exp(-grid[i, 3:5, ys, xs].astype(np.float64)))  # (k, 2)
        u = (xs + off[:, 0]) * STRIDE
        v = (ys + off[:, 1]) * STRIDE
        x, z = scenes.unproject(u, v)
        k = len(ys)
        points[i, :k, 0], points[i, :k, 1] = x, z
        scores[i, :k] = obj[i, ys, xs] * (1.0 if quality is None else float(quality[i]))
        labels[i, :k] = 1 + np.argmax(prob[i, 1:, ys, xs], axis=1) if k else 0
    return {"camera_points": points, "camera_scores": scores, "camera_labels": labels}


def train_camera(frames: list[scenes.Frame], *, epochs: int = 12, seed: int = 0) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    images = torch.from_numpy(np.stack([f.image for f in frames]))
    targets = [camera_targets(f) for f in frames]
    cls = torch.from_numpy(np.stack([t[0] for t in targets]))
    off = torch.from_numpy(np.stack([t[1] for t in targets]))
    net = camera_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    ce = nn.CrossEntropyLoss(weight=torch.tensor([0.05, 1.0, 1.5]))
    for epoch in range(epochs):
        perm = torch.randperm(len(images))
        for start in range(0, len(perm), 64):
            idx = perm[start:start + 64]
            out = net(images[idx])
            c = cls[idx]
            loss = ce(out[:, :3], c)
            pos = (c > 0).unsqueeze(1).expand(-1, 2, -1, -1)
            if pos.any():
                loss = loss + 2.0 * nn.functional.l1_loss(torch.sigmoid(out[:, 3:5])[pos], off[idx][pos])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch == epochs * 2 // 3:
            for g in opt.param_groups:
                g["lr"] = 1e-3
    return net.eval()


def export_camera(net: Any, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.zeros((1, scenes.H, scenes.W, 3), dtype=torch.uint8)
    torch.onnx.export(net, (sample,), str(path), input_names=["image"], output_names=["grid"],
                      dynamic_axes={"image": {0: "n"}, "grid": {0: "n"}}, opset_version=17, dynamo=False)


# -- radar ----------------------------------------------------------------------------------

def radar_xy(scan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The filled rows of a scan and their ground points (x, z)."""
    rows = scan[scan[:, 0] > 0]
    return rows, np.stack([rows[:, 0] * np.sin(rows[:, 1]), rows[:, 0] * np.cos(rows[:, 1])], axis=1)


def radar_clusters(scan: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """DBSCAN over (x, z, radial velocity): features (k, F), centres (k, 2), member rows."""
    from sklearn.cluster import DBSCAN

    rows, xy = radar_xy(scan)
    if not len(rows):
        return np.zeros((0, 9), np.float32), np.zeros((0, 2), np.float32), []
    space = np.column_stack([xy, rows[:, 2] * 0.5])
    labels = DBSCAN(eps=1.6, min_samples=1).fit_predict(space)
    feats, centres, members = [], [], []
    for c in np.unique(labels):
        m = np.flatnonzero(labels == c)
        pts, r = xy[m], rows[m]
        static_vr = -scenes.EGO_SPEED * np.cos(r[:, 1])
        speed = np.abs(r[:, 2] - static_vr)  # ego-motion compensated radial speed
        feats.append([len(m), r[:, 3].mean(), r[:, 3].max(), np.ptp(pts[:, 0]), np.ptp(pts[:, 1]),
                      r[:, 0].mean(), speed.mean(), r[:, 2].std(), math.log1p(len(m))])
        near = pts[np.argmin(pts[:, 1])]
        centres.append([pts[:, 0].mean(), near[1]])
        members.append(m)
    return np.asarray(feats, np.float32), np.asarray(centres, np.float32), members


def radar_truth(frame: scenes.Frame, members: list[np.ndarray]) -> np.ndarray:
    """Per cluster: 0 clutter, else the kind most of its returns came from."""
    filled = frame.radar_kind[: int((frame.radar[:, 0] > 0).sum())]
    kinds = []
    for m in members:
        src = filled[m]
        obj = src[src > 0]
        kinds.append(0 if len(obj) * 2 <= len(src) else int(np.bincount(obj).argmax()))
    return np.asarray(kinds, np.int64)


class RadarMLP:
    """Standardise, two ReLU layers, softmax over (clutter, car, pedestrian): numpy only."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = weights

    @classmethod
    def load(cls, path: Path = RADAR_WEIGHTS) -> RadarMLP:
        with np.load(path) as f:
            return cls({k: f[k] for k in f.files})

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        x = (feats - self.w["mean"]) / self.w["scale"]
        for i in range(len([k for k in self.w if k.startswith("W")])):
            x = x @ self.w[f"W{i}"] + self.w[f"b{i}"]
            if f"W{i + 1}" in self.w:
                x = np.maximum(x, 0)
        x = x - x.max(axis=1, keepdims=True)
        e = np.exp(x)
        return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def train_radar(feats: np.ndarray, kinds: np.ndarray, path: Path = RADAR_WEIGHTS, *, seed: int = 0) -> None:
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(feats)
    mlp = MLPClassifier((32, 16), max_iter=400, random_state=seed).fit(scaler.transform(feats), kinds)
    weights = {"mean": scaler.mean_.astype(np.float32), "scale": scaler.scale_.astype(np.float32)}
    full = np.zeros((3,), bool)
    full[mlp.classes_] = True
    for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        weights[f"W{i}"], weights[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
    if not full.all():  # a class never seen: give it a column of -inf logits
        last = len(mlp.coefs_) - 1
        w, b = weights[f"W{last}"], weights[f"b{last}"]
        w3 = np.zeros((w.shape[0], 3), np.float32)
        b3 = np.full(3, -1e4, np.float32)
        w3[:, mlp.classes_], b3[mlp.classes_] = w, b
        weights[f"W{last}"], weights[f"b{last}"] = w3, b3
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **weights)


_MLP: RadarMLP | None = None


def radar_detect(radar: np.ndarray) -> dict[str, np.ndarray]:
    """Scans (N, P, 4) -> radar detections (N, MAX_DET)."""
    global _MLP
    if _MLP is None:
        _MLP = RadarMLP.load()
    n = radar.shape[0]
    points = np.zeros((n, MAX_DET, 2), np.float32)
    scores = np.zeros((n, MAX_DET), np.float32)
    labels = np.zeros((n, MAX_DET), np.int64)
    for i in range(n):
        feats, centres, _ = radar_clusters(radar[i])
        if not len(feats):
            continue
        prob = _MLP(feats)
        score = 1.0 - prob[:, 0]
        order = np.argsort(-score)[:MAX_DET]
        k = len(order)
        points[i, :k] = centres[order]
        scores[i, :k] = score[order]
        labels[i, :k] = 1 + np.argmax(prob[order, 1:], axis=1)
    return {"radar_points": points, "radar_scores": scores, "radar_labels": labels}
