"""The Python bricks of ``pipeline.yaml``: OCR pre/post-processing, field extraction, rules.

Each function wraps a step of ``ocr.py`` / ``fields.py`` / ``risk_model.py`` (the verified
model-side code) in brickwork's currency, named tensors batched on axis 0:

* page level (N pages): ``image`` uint8 (N, H, W, 3) → ``det_x``, ``det_meta``;
* line level (M lines of those pages, from ``crops``, a ``rowwise=False`` brick): the crop
  pixels padded to the largest crop, each crop's size, its page, its box and ``rec_width``,
  the width rapidocr pads it to for recognition;
* back to page level in ``assemble`` (another ``rowwise=False`` brick).

Recognition runs inside ``{group: {on: rec_width}}``: each width is its own request to the
``rec`` stage, so every crop sees exactly rapidocr's padding and equal widths of different
pages share one batch.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, TypedDict

import numpy as np

import brickwork as bw

# The pipeline file imports this module by its file name (``contracts_steps``, unique among
# the examples); the model-side code it wraps lives in the ``examples.contracts`` package,
# so the repository root must be importable, also under ``brickwork serve`` run from anywhere.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from examples.contracts import ocr  # noqa: E402
from examples.contracts.fields import ContractFields, extract_fields  # noqa: E402
from examples.contracts.risk_model import features_from_fields, rule_score  # noqa: E402

MODELS = Path(__file__).parent / ".models"
CFG = ocr.DEFAULT_CONFIG
RULES_THRESHOLD = 0.4  # rule_score above this = risky (NOTES.md: accuracy 0.836)

Image = Annotated[np.ndarray, bw.Tensor("UINT8", (-1, -1, 3))]
Map = Annotated[np.ndarray, bw.Tensor("FP32", (1, -1, -1))]
Meta = Annotated[np.ndarray, bw.Tensor("FP64", (12,))]
Crop = Annotated[np.ndarray, bw.Tensor("UINT8", (-1, -1, 3))]
Ints = Annotated[np.ndarray, bw.Tensor("INT64")]
Pair = Annotated[np.ndarray, bw.Tensor("INT64", (2,))]
Floats = Annotated[np.ndarray, bw.Tensor("FP64")]
Texts = Annotated[np.ndarray, bw.Tensor("BYTES")]
Box = Annotated[np.ndarray, bw.Tensor("FP32", (4, 2))]
Features = Annotated[np.ndarray, bw.Tensor("FP32", (9,))]


# -- detection -------------------------------------------------------------------------
def _encode_meta(m: ocr.DetMeta) -> np.ndarray:
    steps = [v for step in m.resize_steps for v in step]
    steps += [0] * (4 - len(steps))
    return np.array([m.src_h, m.src_w, m.ratio_h, m.ratio_w, m.pad_top, m.work_h, m.work_w,
                     len(m.resize_steps), *steps], dtype=np.float64)


def _decode_meta(v: np.ndarray) -> ocr.DetMeta:
    n = int(v[7])
    steps = tuple((int(v[8 + 2 * i]), int(v[9 + 2 * i])) for i in range(n))
    return ocr.DetMeta(int(v[0]), int(v[1]), float(v[2]), float(v[3]), steps, int(v[4]),
                       int(v[5]), int(v[6]))


class DetInput(TypedDict):
    det_x: Annotated[np.ndarray, bw.Tensor("FP32", (3, -1, -1))]
    det_meta: Meta


def det_pre(image: Image) -> DetInput:
    """Pages → the detector's input (rapidocr's resize and normalisation) and what was done."""
    prepared = [ocr.det_preprocess(np.ascontiguousarray(page), CFG) for page in image]
    return {"det_x": np.concatenate([t for t, _ in prepared]),
            "det_meta": np.stack([_encode_meta(m) for _, m in prepared])}


class Lines(TypedDict):
    line_page: Ints
    line_box: Box
    crop: Crop
    crop_hw: Pair
    rec_width: Ints


def crops(image: Image, det_map: Map, det_meta: Meta) -> Lines:
    """DB post-processing and perspective crops: N pages in, M text lines out.

    ``rec_width`` is the width rapidocr pads a crop to: its batches are the page's crops
    sorted by aspect ratio in sixes, each padded to its widest member (at least 320)."""
    _, h, w = CFG.rec_image_shape
    pages, boxes, cut, widths = [], [], [], []
    for p, (page, prob, vec) in enumerate(zip(image, det_map, det_meta, strict=True)):
        meta = _decode_meta(vec)
        found = ocr.det_postprocess(prob[np.newaxis], meta, CFG)
        if len(found) == 0:
            continue
        lines = ocr.crop_lines(np.ascontiguousarray(page), found, meta)
        width = np.zeros(len(lines), dtype=np.int64)
        for idx in ocr.batch_order(lines, CFG.rec_batch_size):
            ratio = max([w / h] + [lines[i].shape[1] / float(lines[i].shape[0]) for i in idx])
            width[idx] = int(h * ratio)
        pages += [p] * len(lines)
        boxes.append(ocr.boxes_to_original(found, meta))
        cut += lines
        widths.append(width)
    hmax = max((x.shape[0] for x in cut), default=1)
    wmax = max((x.shape[1] for x in cut), default=1)
    pixels = np.zeros((len(cut), hmax, wmax, 3), dtype=np.uint8)
    for i, x in enumerate(cut):
        pixels[i, : x.shape[0], : x.shape[1]] = x
    return {
        "line_page": np.array(pages, dtype=np.int64),
        "line_box": np.concatenate(boxes) if boxes else np.zeros((0, 4, 2), np.float32),
        "crop": pixels,
        "crop_hw": np.array([x.shape[:2] for x in cut], dtype=np.int64).reshape(-1, 2),
        "rec_width": np.concatenate(widths) if widths else np.zeros(0, np.int64),
    }


def _unpad(crop: np.ndarray, crop_hw: np.ndarray) -> list[np.ndarray]:
    # at least 1x1: the engine's warm-up batch has empty crops
    return [x[: max(int(hw[0]), 1), : max(int(hw[1]), 1)] for x, hw in zip(crop, crop_hw, strict=True)]


# -- orientation -----------------------------------------------------------------------
def cls_pre(crop: Crop, crop_hw: Pair) -> Annotated[np.ndarray, bw.Tensor("FP32", (3, 48, 192))]:
    """Each crop resized to 48 px high and padded to 192 (a fixed shape: any batch works)."""
    lines = _unpad(crop, crop_hw)
    if not lines:
        return np.zeros((0, *CFG.cls_image_shape), dtype=np.float32)
    return ocr.cls_preprocess(lines, CFG)


def cls_post(crop: Crop, crop_hw: Pair, cls_prob: Annotated[np.ndarray, bw.Tensor("FP32", (2,))]) -> Crop:
    """Crops the classifier reads as upside down (score > 0.9) turned by 180 degrees."""
    out = crop.copy()
    upright, _ = ocr.cls_postprocess(cls_prob, _unpad(crop, crop_hw), CFG)
    for i, x in enumerate(upright):
        out[i, : x.shape[0], : x.shape[1]] = x
    return out


# -- recognition -----------------------------------------------------------------------
def rec_pre(upright: Crop, crop_hw: Pair, rec_width: Ints) -> Annotated[np.ndarray, bw.Tensor("FP32", (3, 48, -1))]:
    """One width group's crops → (m, 3, 48, width), each resized and zero-padded as rapidocr
    does. Not rowwise: the output width is the group's, so requests must not be merged."""
    widths = set(rec_width.tolist())
    if len(widths) != 1:
        raise ValueError(f"rec_pre needs crops of one rec_width (run it inside a group), got {sorted(widths)}")
    width = max(widths.pop(), CFG.rec_image_shape[2])  # >= 320 always; 0 only in the warm-up batch
    return np.stack([ocr._resize_pad(x, CFG.rec_image_shape, width)
                     for x in _unpad(upright, crop_hw)]).astype(np.float32)


@lru_cache(maxsize=1)
def charset() -> list[str]:
    keys = (MODELS / "ocr" / "rec_keys.txt").read_text(encoding="utf-8").splitlines()
    return ["blank", *keys, " "]


class Recognized(TypedDict):
    line_text: Texts
    line_score: Floats


def rec_post(rec_prob: Annotated[np.ndarray, bw.Tensor("FP32", (-1, -1))]) -> Recognized:
    """CTC greedy decoding with rapidocr's character list and score rounding."""
    decoded = ocr.rec_postprocess(rec_prob, charset())
    text = np.empty(len(decoded), dtype=object)
    text[:] = [t for t, _ in decoded]
    return {"line_text": text, "line_score": np.array([s for _, s in decoded], dtype=np.float64)}


class PageText(TypedDict):
    text: Texts
    ocr_lines: Texts


def assemble(det_meta: Meta, line_page: Ints, line_text: Texts, line_score: Floats,
             line_box: Box) -> PageText:
    """M lines → N pages: rapidocr's final filter (blank texts, score < 0.5 dropped), the page
    text (lines joined by newlines) and the lines as JSON ``[{text, score, box}]``."""
    n = len(det_meta)
    per_page: list[list[dict[str, object]]] = [[] for _ in range(n)]
    for p, t, s, b in zip(line_page.tolist(), line_text.tolist(), line_score.tolist(), line_box, strict=True):
        if t.strip() and s >= CFG.text_score:
            per_page[p].append({"text": t, "score": s, "box": b.tolist()})
    text = np.empty(n, dtype=object)
    text[:] = ["\n".join(str(line["text"]) for line in page) for page in per_page]
    lines = np.empty(n, dtype=object)
    lines[:] = [json.dumps(page) for page in per_page]
    return {"text": text, "ocr_lines": lines}


# -- fields and risk -------------------------------------------------------------------
class Fields(TypedDict):
    contract_no: str
    supplier: str
    customer: str
    amount: str
    currency: str
    signed: str
    due: str
    iban: str
    email: str
    features: Features


def fields(text: str) -> Fields:
    """One page's text → its contract fields ("" when not found) and the risk features."""
    f = extract_fields(text.splitlines())
    parties = (*f.parties, "", "")
    return {
        "contract_no": f.contract_no or "", "supplier": parties[0], "customer": parties[1],
        "amount": f.amount or "", "currency": f.currency or "", "signed": f.signed or "",
        "due": f.due or "", "iban": f.iban or "", "email": f.email or "",
        "features": features_from_fields(f),
    }


def page_fields(out: dict[str, np.ndarray], i: int) -> ContractFields:
    """Row ``i`` of the pipeline's outputs as ``ContractFields`` (for tests and the demo)."""
    def get(name: str) -> str | None:
        return str(out[name][i]) or None

    parties = tuple(p for p in (get("supplier"), get("customer")) if p)
    return ContractFields(get("contract_no"), parties, get("amount"), get("currency"),
                          get("signed"), get("due"), get("iban"), get("email"))


class Risk(TypedDict):
    label: Ints
    probabilities: Annotated[np.ndarray, bw.Tensor("FP32", (2,))]


def rules(features: Features) -> Risk:
    """The fallback rung: ``rule_score`` as the risk model's outputs ([p(ok), p(risky)])."""
    score = rule_score(features)
    return {"label": (score > RULES_THRESHOLD).astype(np.int64),
            "probabilities": np.stack([1.0 - score, score], axis=1).astype(np.float32)}


class Decision(TypedDict):
    risk: Annotated[np.ndarray, bw.Tensor("FP32")]
    decision: Texts


def decide(label: Ints, probabilities: Annotated[np.ndarray, bw.Tensor("FP32", (2,))]) -> Decision:
    """Risky contracts go to a human ("review"), the others are approved."""
    decision = np.empty(len(label), dtype=object)
    decision[:] = ["review" if x else "approve" for x in label.tolist()]
    return {"risk": probabilities[:, 1].astype(np.float32), "decision": decision}
