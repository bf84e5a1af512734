"""PP-OCR (rapidocr 3.x) split into separately callable, batchable steps.

Every step is a pure function, numpy in and numpy out, that reproduces what
``rapidocr.RapidOCR()(image)`` does with its default config and its bundled ONNX models
(``rapidocr/models/*.onnx``). The only model calls are three ONNX Runtime sessions:

    det   x: (N, 3, H, W) float32         -> (N, 1, H, W) float32 text probability map
    cls   x: (N, 3, 48, 192) float32      -> (N, 2) float32 softmax over ("0", "180")
    rec   x: (N, 3, 48, W) float32        -> (N, W/8, 18710) float32 softmax over the charset

The line of work for one page is::

    tensor, meta = det_preprocess(image)            # resize/pad exactly as rapidocr
    boxes = det_postprocess(det(tensor), meta)      # DB: threshold, contours, unclip
    crops = crop_lines(image, boxes, meta)          # perspective crops, reading order
    crops, _ = cls_postprocess(cls(cls_preprocess(crops)), crops)
    for idx in batch_order(crops, REC_BATCH):       # rapidocr's aspect-ratio batches
        texts = rec_postprocess(rec(rec_preprocess([crops[i] for i in idx])), charset)

``run_ocr`` does exactly that and is what the parity test compares with rapidocr.
Images are uint8 ``(H, W, 3)`` arrays in the channel order rapidocr assumes for arrays
(BGR; for the grey sample pages RGB is the same).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .ocr_det import (
    DEFAULT_CONFIG,
    DetMeta,
    OcrConfig,
    boxes_to_original,
    crop_lines,
    det_postprocess,
    det_preprocess,
)

__all__ = [
    "DetMeta",
    "OcrConfig",
    "OcrLine",
    "batch_order",
    "boxes_to_original",
    "cls_postprocess",
    "cls_preprocess",
    "copy_models",
    "crop_lines",
    "det_postprocess",
    "det_preprocess",
    "finalize",
    "load_charset",
    "make_session",
    "rapidocr_model_paths",
    "rec_postprocess",
    "rec_preprocess",
    "run_ocr",
]

_MODEL_FILES = {
    "det": "PP-OCRv6_det_small.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "rec": "PP-OCRv6_rec_small.onnx",
}


@dataclass(frozen=True, slots=True)
class OcrLine:
    text: str
    score: float
    box: np.ndarray  # (4, 2) float32 in source image coordinates


# ---------------------------------------------------------------- models
def rapidocr_model_paths() -> dict[str, Path]:
    """Paths of the det/cls/rec ONNX files inside the installed ``rapidocr`` wheel.

    The rec character dictionary is not a separate file: it is stored in the rec
    model's metadata (key ``character``); see ``load_charset``.
    """
    import importlib.util

    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("rapidocr is not installed; pip install 'rapidocr~=3.10.0' onnxruntime")
    models = Path(spec.origin).parent / "models"
    paths = {kind: models / name for kind, name in _MODEL_FILES.items()}
    for kind, path in paths.items():
        if not path.is_file():  # another rapidocr 3.x ships other versions: take its one
            found = sorted(models.glob(f"*_{kind}*.onnx"))
            paths[kind] = found[0] if len(found) == 1 else path
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"rapidocr models not found: {missing}; pip install 'rapidocr~=3.10.0'")
    return paths


def copy_models(cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Copy the three models into ``cache_dir`` and write the charset as ``rec_keys.txt``."""
    root = Path(cache_dir) if cache_dir is not None else _default_cache("contracts") / "ocr"
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for kind, src in rapidocr_model_paths().items():
        dst = root / src.name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
        out[kind] = dst
    keys = root / "rec_keys.txt"
    keys.write_text("\n".join(load_charset(out["rec"])[1:-1]) + "\n", encoding="utf-8")
    out["keys"] = keys
    return out


def _default_cache(name: str) -> Path:
    return Path.home() / ".cache" / "brickwork" / "examples" / name


def load_charset(rec_model: str | os.PathLike[str] | Any) -> list[str]:
    """CTC labels: ``["blank", *metadata["character"].splitlines(), " "]`` (18710 entries).

    ``rec_model`` is a path or an ``onnxruntime.InferenceSession``.
    """
    session = rec_model if hasattr(rec_model, "get_modelmeta") else make_session(rec_model)
    chars = session.get_modelmeta().custom_metadata_map["character"].splitlines()
    return ["blank", *chars, " "]


def make_session(path: str | os.PathLike[str], *, intra_op_num_threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with rapidocr's options (ORT_ENABLE_ALL, no CPU arena)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.enable_cpu_mem_arena = False
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_num_threads is not None:
        opts.intra_op_num_threads = intra_op_num_threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- cls and rec
def batch_order(crops: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """rapidocr's batches: crop indices sorted by width/height, cut into ``batch_size``."""
    ratios = np.array([c.shape[1] / float(c.shape[0]) for c in crops])
    order = np.argsort(ratios)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _resize_pad(img: np.ndarray, shape: tuple[int, int, int], width: int) -> np.ndarray:
    c, h, _ = shape
    ratio = img.shape[1] / float(img.shape[0])
    resized_w = width if math.ceil(h * ratio) > width else math.ceil(h * ratio)
    resized = cv2.resize(img, (resized_w, h)).astype("float32")
    resized = resized.transpose((2, 0, 1)) / 255
    resized -= 0.5
    resized /= 0.5
    padded = np.zeros((c, h, width), dtype=np.float32)
    padded[:, :, :resized_w] = resized
    return padded


def cls_preprocess(crops: Sequence[np.ndarray], cfg: OcrConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Crops -> (N, 3, 48, 192) float32; each crop is resized and padded on its own."""
    shape = cfg.cls_image_shape
    return np.stack([_resize_pad(c, shape, shape[2]) for c in crops]).astype(np.float32)


def cls_postprocess(
    probs: np.ndarray, crops: Sequence[np.ndarray], cfg: OcrConfig = DEFAULT_CONFIG
) -> tuple[list[np.ndarray], list[tuple[str, float]]]:
    """(N, 2) probabilities -> (crops turned upright, [(label "0"|"180", score)])."""
    labels = ("0", "180")
    idx = probs.argmax(axis=1)
    results = [(labels[int(i)], float(probs[n, int(i)])) for n, i in enumerate(idx)]
    upright = [
        cv2.rotate(c, cv2.ROTATE_180) if label == "180" and score > cfg.cls_thresh else c
        for c, (label, score) in zip(crops, results, strict=True)
    ]
    return upright, results


def rec_preprocess(crops: Sequence[np.ndarray], cfg: OcrConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Crops -> (N, 3, 48, W) float32, W = 48 * max(320/48, widest width/height ratio).

    The width is shared by the batch, so a crop's logits depend on its batch mates'
    widths; use ``batch_order`` to form the same batches as rapidocr.
    """
    c, h, w = cfg.rec_image_shape
    max_ratio = max([w / h] + [cr.shape[1] * 1.0 / cr.shape[0] for cr in crops])
    width = int(h * max_ratio)
    return np.stack([_resize_pad(cr, (c, h, w), width) for cr in crops]).astype(np.float32)


def rec_postprocess(logits: np.ndarray, charset: Sequence[str]) -> list[tuple[str, float]]:
    """CTC greedy decode: argmax, collapse repeats, drop blank (0); score = mean char prob."""
    idx = logits.argmax(axis=2)
    prob = logits.max(axis=2)
    out: list[tuple[str, float]] = []
    for tokens, probs in zip(idx, prob, strict=True):
        keep = np.ones(len(tokens), dtype=bool)
        keep[1:] = tokens[1:] != tokens[:-1]
        keep &= tokens != 0
        confs = [round(float(p), 5) for p in probs[keep]] or [0.0]
        text = "".join(charset[int(t)] for t in tokens[keep])
        out.append((text, float(np.mean(confs).round(5))))
    return out


def finalize(
    boxes: np.ndarray, recognized: Sequence[tuple[str, float]], cfg: OcrConfig = DEFAULT_CONFIG
) -> list[OcrLine]:
    """Drop blank texts and scores below ``text_score``; boxes in source coordinates."""
    return [
        OcrLine(text, score, box)
        for box, (text, score) in zip(boxes, recognized, strict=True)
        if text.strip() and score >= cfg.text_score
    ]


def run_ocr(
    image: np.ndarray,
    sessions: dict[str, Any],
    charset: Sequence[str],
    cfg: OcrConfig = DEFAULT_CONFIG,
) -> list[OcrLine]:
    """The whole page through the split steps, batched as rapidocr batches them."""
    tensor, meta = det_preprocess(image, cfg)
    boxes = det_postprocess(_run(sessions["det"], tensor), meta, cfg)
    if len(boxes) == 0:
        return []
    crops = crop_lines(image, boxes, meta)
    upright = list(crops)
    for idx in batch_order(crops, cfg.cls_batch_size):
        batch = [crops[i] for i in idx]
        turned, _ = cls_postprocess(_run(sessions["cls"], cls_preprocess(batch, cfg)), batch, cfg)
        for i, crop in zip(idx, turned, strict=True):
            upright[int(i)] = crop
    recognized: list[tuple[str, float]] = [("", 0.0)] * len(upright)
    for idx in batch_order(upright, cfg.rec_batch_size):
        logits = _run(sessions["rec"], rec_preprocess([upright[i] for i in idx], cfg))
        for i, res in zip(idx, rec_postprocess(logits, charset), strict=True):
            recognized[int(i)] = res
    return finalize(boxes_to_original(boxes, meta), recognized, cfg)


def _run(session: Any, x: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x})[0])
