"""The split OCR steps give rapidocr's own answer, line for line, on every sample page."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("rapidocr")
pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

from examples.contracts import ocr  # noqa: E402
from examples.contracts.pages import Page, generate_pages  # noqa: E402


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    return generate_pages()


@pytest.fixture(scope="module")
def sessions() -> dict[str, Any]:
    return {kind: ocr.make_session(path) for kind, path in ocr.rapidocr_model_paths().items()}


@pytest.fixture(scope="module")
def charset(sessions: dict[str, Any]) -> list[str]:
    return ocr.load_charset(sessions["rec"])


@pytest.fixture(scope="module")
def engine() -> Any:
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.log_level": "warning"})


def _assert_same(engine: Any, image: np.ndarray, lines: list[ocr.OcrLine]) -> None:
    ref = engine(image)
    ref_txts = list(ref.txts) if ref.txts is not None else []
    assert [line.text for line in lines] == ref_txts
    if ref_txts:
        assert [line.score for line in lines] == list(ref.scores)
        np.testing.assert_array_equal(np.stack([line.box for line in lines]), ref.boxes)


def test_charset_comes_from_rec_metadata(charset: list[str]) -> None:
    assert charset[0] == "blank" and charset[-1] == " "
    assert len(charset) == 18710  # the rec model's last output dimension


def test_split_steps_equal_rapidocr_on_every_page(
    pages: list[Page], sessions: dict[str, Any], charset: list[str], engine: Any
) -> None:
    for page in pages:
        lines = ocr.run_ocr(page.image, sessions, charset)
        assert [line.text for line in lines] == list(page.lines), page.name
        _assert_same(engine, page.image, lines)


@pytest.mark.parametrize("case", ["upside_down", "wide_strip", "large", "tiny"])
def test_split_steps_equal_rapidocr_on_resize_pad_and_rotate_paths(
    case: str, pages: list[Page], sessions: dict[str, Any], charset: list[str], engine: Any
) -> None:
    img = pages[0].image
    image = {
        "upside_down": np.ascontiguousarray(img[::-1, ::-1]),  # cls turns lines by 180
        "wide_strip": np.ascontiguousarray(img[240:300, 50:850]),  # vertical padding
        "large": cv2.resize(img, (1800, 2200)),  # max_side_len downscale
        "tiny": cv2.resize(img[60:120, 60:600], (270, 25)),  # min_side_len upscale
    }[case]
    _assert_same(engine, image, ocr.run_ocr(image, sessions, charset))


def test_det_batched_over_pages_equals_one_by_one(pages: list[Page], sessions: dict[str, Any]) -> None:
    same = [p for p in pages if p.image.shape == pages[0].image.shape]
    prepared = [ocr.det_preprocess(p.image) for p in same]
    batch = np.concatenate([t for t, _ in prepared])
    out = sessions["det"].run(None, {"x": batch})[0]
    for i, (tensor, meta) in enumerate(prepared):
        alone = sessions["det"].run(None, {"x": tensor})[0]
        np.testing.assert_array_equal(ocr.det_postprocess(out[i : i + 1], meta), ocr.det_postprocess(alone, meta))


def test_rec_one_crop_per_call_equals_rapidocr_batches(
    pages: list[Page], sessions: dict[str, Any], charset: list[str]
) -> None:
    # A dynamic batcher that pads each crop to its own width keeps rapidocr's text.
    for page in pages[:2]:
        tensor, meta = ocr.det_preprocess(page.image)
        boxes = ocr.det_postprocess(sessions["det"].run(None, {"x": tensor})[0], meta)
        crops = ocr.crop_lines(page.image, boxes, meta)
        texts = [
            ocr.rec_postprocess(sessions["rec"].run(None, {"x": ocr.rec_preprocess([c])})[0], charset)[0][0]
            for c in crops
        ]
        assert texts == list(page.lines)
