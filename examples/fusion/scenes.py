"""Synthetic driving scenes: the same scene seen by a camera (a PIL image) and a radar (a scan
of range, azimuth, radial velocity and amplitude), frame after frame.

The ego car drives at ``EGO_SPEED`` along z; cars (moving, oncoming or parked) and pedestrians
(walking across) stand on a flat road. Object positions are the centre of their *near face*
(x lateral, z forward, metres): what both sensors see.

Conditions degrade one sensor each: ``fog`` fades the camera with distance, ``night`` darkens
it (lamps stay bright), ``rain`` streaks and blurs it, ``clutter`` fills the radar with false
returns (guard rails, multipath) and drops more of its detections. Everything is seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

W, H = 160, 96  # camera image
FOCAL = 120.0  # pixels
HORIZON = 40.0  # image row of the horizon
CAM_HEIGHT = 1.5  # metres
FOV = math.atan((W / 2) / FOCAL)  # half angle, radians (~33.7 deg)
MAX_RANGE = 45.0
MIN_RANGE = 4.0
DT = 0.1  # seconds between frames
EGO_SPEED = 10.0  # m/s
RADAR_POINTS = 128  # padded rows of a scan
CONDITIONS = ("clear", "rain", "fog", "night", "clutter")
CAR, PED = 1, 2
SIZE = {CAR: (1.8, 1.5, 4.2), PED: (0.6, 1.75, 0.5)}  # width, height, length (m)


@dataclass(slots=True)
class Thing:
    kind: int
    x: float
    z: float
    vx: float  # ground-frame velocity (m/s)
    vz: float
    colour: tuple[int, int, int]


@dataclass(slots=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8
    radar: np.ndarray  # (RADAR_POINTS, 4) float32: range, azimuth, radial velocity, amplitude
    objects: np.ndarray  # (n, 3) float32: x, z, kind -- in the sensors' field of view
    t: float
    condition: str
    radar_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per return: kind, 0 clutter


def visible(x: float, z: float) -> bool:
    return MIN_RANGE <= z <= MAX_RANGE and abs(math.atan2(x, z)) <= FOV * 0.95


def _spawn(rng: np.random.Generator, kind: int) -> Thing:
    if kind == CAR:
        style = rng.choice(["ahead", "oncoming", "parked"], p=[0.45, 0.3, 0.25])
        lane = {"ahead": rng.choice([-3.5, 0.0, 3.5]), "oncoming": -3.5 - rng.uniform(0, 0.3),
                "parked": rng.choice([-6.5, 6.5])}[style]
        vz = {"ahead": EGO_SPEED + rng.uniform(-4, 4), "oncoming": -rng.uniform(6, 12),
              "parked": 0.0}[style]
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        return Thing(CAR, float(lane + rng.normal(0, 0.2)), float(rng.uniform(7, 42)), 0.0, float(vz), colour)
    side = rng.choice([-1.0, 1.0])
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    return Thing(PED, float(side * rng.uniform(2.0, 7.0)), float(rng.uniform(6, 28)),
                 float(-side * rng.uniform(0.3, 1.4)), float(rng.uniform(-0.3, 0.3)), colour)


def sequence(seed: int, condition: str, frames: int = 20) -> list[Frame]:
    """One seeded sequence of ``frames`` frames in ``condition``."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; use one of {CONDITIONS}")
    rng = np.random.default_rng(seed)
    things = [_spawn(rng, CAR) for _ in range(rng.integers(2, 6))]
    things += [_spawn(rng, PED) for _ in range(rng.integers(0, 4))]
    poles = [(float(s * rng.uniform(5, 9)), float(rng.uniform(8, 60))) for s in rng.choice([-1, 1], 6)]
    out = []
    for f in range(frames):
        t = f * DT
        if f:
            for th in things:
                th.x += th.vx * DT
                th.z += (th.vz - EGO_SPEED) * DT
            poles = [(x, z - EGO_SPEED * DT if z - EGO_SPEED * DT > 3 else z + 55) for x, z in poles]
        image = render(things, poles, condition, rng)
        radar, source = scan(things, condition, rng)
        objs = np.asarray([(th.x, th.z, th.kind) for th in things if visible(th.x, th.z)],
                          np.float32).reshape(-1, 3)
        out.append(Frame(image, radar, objs, t, condition, source))
    return out


# -- camera ---------------------------------------------------------------------------------

def project(x: float, z: float) -> tuple[float, float]:
    """Image column and row of a ground point."""
    return W / 2 + FOCAL * x / z, HORIZON + FOCAL * CAM_HEIGHT / z


def unproject(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground point (x, z) of image points (flat road)."""
    z = FOCAL * CAM_HEIGHT / np.maximum(v - HORIZON, 0.5)
    z = np.clip(z, MIN_RANGE * 0.5, 80.0)
    return (u - W / 2) * z / FOCAL, z


def render(things: list[Thing], poles: list[tuple[float, float]], condition: str,
           rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFilter

    night = condition == "night"
    fog = condition == "fog"
    img = np.zeros((H, W, 3), np.float32)
    rows = np.arange(H, dtype=np.float32)[:, None]
    sky = np.array([135, 180, 230], np.float32)
    img[:int(HORIZON)] = sky * (0.8 + 0.2 * rows[:int(HORIZON)] / HORIZON)[..., None]
    img[int(HORIZON):] = np.array([95, 120, 70], np.float32)  # grass
    im = Image.fromarray(img.astype(np.uint8))
    d = ImageDraw.Draw(im)
    # road and lane marks
    left = [project(-5.3, z) for z in (3.0, 200.0)]
    right = [project(5.3, z) for z in (3.0, 200.0)]
    d.polygon([left[0], left[1], right[1], right[0]], fill=(90, 90, 95))
    for lane_x in (-1.75, 1.75):
        for z0 in np.arange(4.0, 60.0, 6.0):
            a, b = project(lane_x, z0), project(lane_x, z0 + 2.5)
            d.line([a, b], fill=(220, 220, 220), width=1)
    drawn: list[tuple[float, str, object]] = [(z, "pole", (x, z)) for x, z in poles]
    drawn += [(th.z, "thing", th) for th in things if th.z > 1.0]
    lamps: list[tuple[float, float, float, tuple[int, int, int]]] = []
    for z, what, obj in sorted(drawn, key=lambda e: -e[0]):
        if what == "pole":
            x, _ = obj  # type: ignore[misc]
            u, v = project(x, z)
            top = v - FOCAL * 3.0 / z
            d.line([(u, v), (u, top)], fill=(60, 50, 40), width=max(1, int(FOCAL * 0.15 / z)))
            continue
        th: Thing = obj  # type: ignore[assignment]
        w, h, _ = SIZE[th.kind]
        u, v = project(th.x, th.z)
        pw, ph = FOCAL * w / th.z, FOCAL * h / th.z
        box = [u - pw / 2, v - ph, u + pw / 2, v]
        if th.kind == CAR:
            d.rectangle(box, fill=th.colour)
            d.rectangle([box[0] + pw * 0.12, v - ph * 0.9, box[2] - pw * 0.12, v - ph * 0.55], fill=(40, 50, 60))
            wheel = max(1.0, ph * 0.18)
            d.rectangle([box[0], v - wheel, box[0] + pw * 0.22, v], fill=(15, 15, 15))
            d.rectangle([box[2] - pw * 0.22, v - wheel, box[2], v], fill=(15, 15, 15))
            lamp = (255, 40, 30) if th.vz >= 0 else (255, 250, 210)  # tail lights / headlights
            r = max(0.6, pw * 0.08)
            for lu in (box[0] + pw * 0.12, box[2] - pw * 0.12):
                lamps.append((lu, v - ph * 0.35, r, lamp))
        else:
            head = pw * 0.45
            d.rectangle([u - pw * 0.35, v - ph + head * 2, u + pw * 0.35, v - ph * 0.45], fill=th.colour)
            d.rectangle([u - pw * 0.3, v - ph * 0.45, u + pw * 0.3, v], fill=(40, 40, 70))
            d.ellipse([u - head, v - ph, u + head, v - ph + head * 2], fill=(225, 190, 160))
    arr = np.asarray(im, np.float32)
    if fog:  # contrast fades with distance (fog: 1/e at 9-14 m)
        depth = np.where(rows > HORIZON + 0.5, FOCAL * CAM_HEIGHT / np.maximum(rows - HORIZON, 0.5), 200.0)
        depth = np.broadcast_to(depth, (H, W)).copy()
        for th in things:  # objects stand at their own depth, not the road's behind them
            w, h, _ = SIZE[th.kind]
            if th.z <= 1.0:
                continue
            u, v = project(th.x, th.z)
            pw, ph = FOCAL * w / th.z, FOCAL * h / th.z
            r0, r1 = int(max(0, v - ph)), int(min(H, v + 1))
            c0, c1 = int(max(0, u - pw / 2)), int(min(W, u + pw / 2 + 1))
            depth[r0:r1, c0:c1] = np.minimum(depth[r0:r1, c0:c1], th.z)
        keep = np.exp(-depth / rng.uniform(9.0, 14.0))[..., None]
        arr = arr * keep + np.float32(185.0) * (1 - keep)
    if night:
        arr = arr * 0.18
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if night:
        d = ImageDraw.Draw(im)
        for lu, lv, r, c in lamps:
            d.ellipse([lu - r, lv - r, lu + r, lv + r], fill=c)
    if condition == "rain":
        d = ImageDraw.Draw(im)
        for _ in range(160):
            x0, y0 = rng.uniform(0, W), rng.uniform(0, H)
            d.line([(x0, y0), (x0 - 2, y0 + 7)], fill=(200, 200, 210), width=1)
        im = im.filter(ImageFilter.GaussianBlur(0.8))
    arr = np.asarray(im, np.float32)
    noise = {"night": 10.0, "rain": 6.0}.get(condition, 3.0)
    arr = arr + rng.normal(0, noise, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


# -- radar ----------------------------------------------------------------------------------

def scan(things: list[Thing], condition: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(RADAR_POINTS, 4) float32 rows (range, azimuth, radial velocity, amplitude dB); rows past
    the returns are zeros. Also the kind of what returned each row (0: clutter)."""
    heavy = condition == "clutter"
    p_detect = 0.65 if heavy else 0.9
    rows: list[tuple[float, float, float, float]] = []
    source: list[int] = []
    for th in things:
        if not visible(th.x, th.z) or rng.random() > p_detect:
            continue  # out of view, or a dropout
        w, _, _ = SIZE[th.kind]
        n = 1 + rng.poisson(3.5 if th.kind == CAR else 0.6)
        for _ in range(n):
            x = th.x + rng.uniform(-w / 2, w / 2)
            z = th.z + rng.uniform(0.0, 0.8 if th.kind == CAR else 0.3)
            r = math.hypot(x, z)
            az = math.atan2(x, z)
            vr = (th.vx * math.sin(az) + (th.vz - EGO_SPEED) * math.cos(az))
            amp = rng.normal(12.0, 5.0) if th.kind == CAR else rng.normal(0.0, 4.0)
            rows.append((r + rng.normal(0, 0.2), az + rng.normal(0, 0.01), vr + rng.normal(0, 0.15), amp))
            source.append(th.kind)
    # clutter: scattered static returns, plus clumps (guard rails, signs, multipath ghosts)
    n_scatter = rng.poisson(30 if heavy else 6)
    n_clumps = rng.poisson(6 if heavy else 1)
    pts: list[tuple[float, float, float]] = []
    for _ in range(n_scatter):
        pts.append((rng.uniform(MIN_RANGE, MAX_RANGE), rng.uniform(-FOV, FOV), rng.normal(1.0, 3.0)))
    for _ in range(n_clumps):
        r0, a0 = rng.uniform(MIN_RANGE, MAX_RANGE), rng.uniform(-FOV * 0.9, FOV * 0.9)
        ghost = rng.random() < 0.4  # a multipath ghost moves like a target
        v0 = rng.uniform(-12, 4) if ghost else 0.0
        for _ in range(rng.integers(2, 6)):
            pts.append((r0 + rng.normal(0, 0.6), a0 + rng.normal(0, 0.02), v0 + rng.normal(0, 0.4)))
    for r, az, extra in pts:
        vr = -EGO_SPEED * math.cos(az) + extra  # static world, plus the ghost's own motion
        rows.append((r, az, vr, rng.normal(2.0, 6.0)))
        source.append(0)
    order = rng.permutation(len(rows))[:RADAR_POINTS]
    out = np.zeros((RADAR_POINTS, 4), np.float32)
    if len(order):
        out[: len(order)] = np.asarray(rows, np.float32)[order]
    return out, np.asarray(source, np.int64)[order] if len(order) else np.zeros(0, np.int64)


def polar(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range and azimuth of (n, 2) points x, z."""
    return np.hypot(points[:, 0], points[:, 1]), np.arctan2(points[:, 0], points[:, 1])


def polar_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Association cost of (n, 2) and (m, 2) ground points: azimuth error in units of 2.5 deg
    plus range error in units of (1 m + 20 % of the range). The camera measures azimuth well and
    range poorly (from the row of the object's foot), the radar both well."""
    ra, aa = polar(a)
    rb, ab = polar(b)
    d_az = np.abs(aa[:, None] - ab[None, :]) / math.radians(2.5)
    d_r = np.abs(ra[:, None] - rb[None, :]) / (1.0 + 0.2 * np.minimum(ra[:, None], rb[None, :]))
    return np.hypot(d_az, d_r)  # type: ignore[no-any-return]
