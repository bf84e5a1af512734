"""Text detection half of the split PP-OCR pipeline (see ``ocr.py``): config, DB
pre/post-processing, box order and line crops, each a copy of rapidocr 3.x's own code."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

__all__ = [
    "DEFAULT_CONFIG",
    "DetMeta",
    "OcrConfig",
    "boxes_to_original",
    "crop_lines",
    "det_postprocess",
    "det_preprocess",
]


@dataclass(frozen=True, slots=True)
class OcrConfig:
    """rapidocr 3.x defaults (``rapidocr/config.yaml``); change one and parity is off."""

    min_side_len: int = 30  # Global: upscale pages whose short side is below this
    max_side_len: int = 2000  # Global: downscale pages whose long side is above this
    width_height_ratio: float = 8.0  # Global: pad very wide images vertically
    min_height: int = 30  # Global: pad very short images vertically
    det_limit_side_len: int = 736  # Det: resize so the short side is >= this (limit_type min)
    det_thresh: float = 0.3  # Det: binarisation threshold of the probability map
    det_box_thresh: float = 0.5  # Det: drop boxes whose mean probability is below
    det_max_candidates: int = 1000
    det_unclip_ratio: float = 1.6
    det_use_dilation: bool = True
    det_min_size: int = 3
    cls_image_shape: tuple[int, int, int] = (3, 48, 192)
    cls_batch_size: int = 6
    cls_thresh: float = 0.9  # rotate a crop only when "180" wins with more than this
    rec_image_shape: tuple[int, int, int] = (3, 48, 320)
    rec_batch_size: int = 6
    text_score: float = 0.5  # final filter on the recognition score


DEFAULT_CONFIG = OcrConfig()
_BOX_SORT_Y_THRESHOLD = 10


@dataclass(frozen=True, slots=True)
class DetMeta:
    """What det_preprocess did to one image, so later steps can undo or repeat it."""

    src_h: int
    src_w: int
    ratio_h: float  # source / resized, 1.0 when the page was within the side limits
    ratio_w: float
    resize_steps: tuple[tuple[int, int], ...]  # (w, h) of each Global side-limit resize
    pad_top: int  # vertical padding added on top and bottom (rapidocr's "padding_1")
    work_h: int  # the image the boxes refer to: resized then padded
    work_w: int


def _round32(v: float) -> int:
    return int(round(v / 32) * 32)


def _limit_sides(img: np.ndarray, cfg: OcrConfig) -> tuple[np.ndarray, float, float, tuple[tuple[int, int], ...]]:
    # rapidocr.utils.process_img.resize_image_within_bounds (ratios are those of the last step)
    ratio_h = ratio_w = 1.0
    steps: list[tuple[int, int]] = []
    for limit, side in ((cfg.max_side_len, "max"), (cfg.min_side_len, "min")):
        h, w = img.shape[:2]
        if side == "max" and max(h, w) > limit:
            ratio = float(limit) / (h if h > w else w)
        elif side == "min" and min(h, w) < limit:
            ratio = float(limit) / (h if h < w else w)
        else:
            continue
        rh, rw = _round32(int(h * ratio)), _round32(int(w * ratio))
        if rh <= 0 or rw <= 0:
            raise ValueError(f"image of shape {img.shape} is too small to resize for OCR")
        img = cv2.resize(img, (rw, rh))
        steps.append((rw, rh))
        ratio_h, ratio_w = h / rh, w / rw
    return img, ratio_h, ratio_w, tuple(steps)


def _work_image(image: np.ndarray, meta: DetMeta) -> np.ndarray:
    """Replay det_preprocess's resizes and padding on the source image."""
    img = image
    for size in meta.resize_steps:
        img = cv2.resize(img, size)
    if meta.pad_top:
        img = cv2.copyMakeBorder(img, meta.pad_top, meta.pad_top, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return img


def det_preprocess(image: np.ndarray, cfg: OcrConfig = DEFAULT_CONFIG) -> tuple[np.ndarray, DetMeta]:
    """uint8 (H, W, 3) -> ((1, 3, H', W') float32 in [-1, 1], meta); H', W' multiples of 32."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    src_h, src_w = image.shape[:2]
    img, ratio_h, ratio_w, steps = _limit_sides(image, cfg)
    # rapidocr.utils.process_img.apply_vertical_padding
    pad_top = 0
    resized_h, resized_w = img.shape[:2]
    if resized_h <= cfg.min_height or resized_w / resized_h > cfg.width_height_ratio:
        new_h = max(int(resized_w / cfg.width_height_ratio), cfg.min_height) * 2
        pad_top = int(abs(new_h - resized_h) / 2)
        img = cv2.copyMakeBorder(img, pad_top, pad_top, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    work_h, work_w = img.shape[:2]
    # rapidocr.ch_ppocr_det.utils.DetPreProcess with limit_type "min"
    ratio = 1.0
    if min(work_h, work_w) < cfg.det_limit_side_len:
        ratio = float(cfg.det_limit_side_len) / (work_h if work_h < work_w else work_w)
    det_h, det_w = _round32(int(work_h * ratio)), _round32(int(work_w * ratio))
    det_img = cv2.resize(img, (det_w, det_h))
    mean = std = np.array([0.5, 0.5, 0.5])
    norm = (det_img.astype("float32") * (1 / 255.0) - mean) / std
    tensor = np.expand_dims(norm.transpose((2, 0, 1)), axis=0).astype(np.float32)
    meta = DetMeta(src_h, src_w, ratio_h, ratio_w, steps, pad_top, work_h, work_w)
    return tensor, meta


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    rect = cv2.minAreaRect(contour)
    pts = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    i1, i4 = (0, 1) if pts[1][1] > pts[0][1] else (1, 0)
    i2, i3 = (2, 3) if pts[3][1] > pts[2][1] else (3, 2)
    return np.array([pts[i1], pts[i2], pts[i3], pts[i4]]), min(rect[1])


def _box_score_fast(bitmap: np.ndarray, box_in: np.ndarray) -> float:
    h, w = bitmap.shape[:2]
    box = box_in.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype(np.int32), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype(np.int32), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype(np.int32), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype(np.int32), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, [box.reshape(-1, 2).astype(np.int32)], 1)
    return float(cv2.mean(bitmap[ymin : ymax + 1, xmin : xmax + 1], mask)[0])


def _unclip(box: np.ndarray, unclip_ratio: float) -> np.ndarray:
    poly = Polygon(box)
    distance = poly.area * unclip_ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(offset.Execute(distance)).reshape((-1, 1, 2))


def _order_clockwise(pts: np.ndarray) -> np.ndarray:
    xs = pts[np.argsort(pts[:, 0]), :]
    left, right = xs[:2, :], xs[2:, :]
    tl, bl = left[np.argsort(left[:, 1]), :]
    tr, br = right[np.argsort(right[:, 1]), :]
    return np.array([tl, tr, br, bl], dtype="float32")


def _sorted_boxes(boxes: np.ndarray) -> np.ndarray:
    """Reading order: rows by top-left y (rows split at >= 10 px), then left to right."""
    if len(boxes) == 0:
        return boxes
    y_order = np.argsort(boxes[:, 0, 1], kind="stable")
    by_y = boxes[y_order]
    line_ids = np.concatenate([[0], np.cumsum(np.diff(by_y[:, 0, 1]) >= _BOX_SORT_Y_THRESHOLD)])
    return by_y[np.lexsort((by_y[:, 0, 0], line_ids))]


def det_postprocess(det_output: np.ndarray, meta: DetMeta, cfg: OcrConfig = DEFAULT_CONFIG) -> np.ndarray:
    """DB post-processing of one image's map -> boxes (M, 4, 2) float32 in reading order.

    ``det_output`` is ``(1, 1, h, w)`` (one row of a batch: ``out[i : i + 1]``). The
    boxes are in the coordinates of the working image (see ``crop_lines``); map them
    to the source page with ``boxes_to_original``.
    """
    pred: np.ndarray = np.asarray(det_output, dtype=np.float32).reshape(det_output.shape[-2:])
    height, width = int(pred.shape[0]), int(pred.shape[1])
    mask: np.ndarray = (pred > cfg.det_thresh).astype(np.uint8)
    if cfg.det_use_dilation:
        mask = np.asarray(cv2.dilate(mask, np.array([[1, 1], [1, 1]])))
    # OpenCV 4/5 return (contours, hierarchy), OpenCV 3 (image, contours, hierarchy)
    contours = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]
    kept: list[np.ndarray] = []
    for contour in contours[: cfg.det_max_candidates]:
        points, sside = _mini_box(contour)
        if sside < cfg.det_min_size:
            continue
        if cfg.det_box_thresh > _box_score_fast(pred, points.reshape(-1, 2)):
            continue
        box, sside = _mini_box(_unclip(points, cfg.det_unclip_ratio))
        if sside < cfg.det_min_size + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0] / width * meta.work_w), 0, meta.work_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / height * meta.work_h), 0, meta.work_h)
        box = _order_clockwise(box.astype(np.int32))
        box[:, 0] = np.minimum(np.maximum(box[:, 0], 0), meta.work_w - 1).astype(np.int32)
        box[:, 1] = np.minimum(np.maximum(box[:, 1], 0), meta.work_h - 1).astype(np.int32)
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        kept.append(box)
    if not kept:
        return np.zeros((0, 4, 2), dtype=np.float32)
    return _sorted_boxes(np.array(kept, dtype=np.float32))


def boxes_to_original(boxes: np.ndarray, meta: DetMeta) -> np.ndarray:
    """Working-image boxes -> source-image boxes (undo padding, then the resize)."""
    out = np.array(boxes, dtype=np.float32, copy=True)
    out[:, :, 1] -= meta.pad_top
    out[:, :, 0] *= meta.ratio_w
    out[:, :, 1] *= meta.ratio_h
    out = np.where(out < 0, 0, out)
    out[..., 0] = np.minimum(out[..., 0], meta.src_w)
    out[..., 1] = np.minimum(out[..., 1], meta.src_h)
    return out


def crop_lines(image: np.ndarray, boxes: np.ndarray, meta: DetMeta) -> list[np.ndarray]:
    """rapidocr's perspective crop of each box from the working image, in box order."""
    work = _work_image(image, meta)
    crops: list[np.ndarray] = []
    for box in boxes:
        pts = copy.deepcopy(box).astype(np.float32)
        crop_w = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
        crop_h = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
        dst = np.array([[0, 0], [crop_w, 0], [crop_w, crop_h], [0, crop_h]], dtype=np.float32)
        m = cv2.getPerspectiveTransform(pts, dst)
        crop = cv2.warpPerspective(work, m, (crop_w, crop_h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
        if crop.shape[0] * 1.0 / crop.shape[1] >= 1.5:
            crop = np.rot90(crop)
        crops.append(crop)
    return crops
