"""examples/contracts on its real models: PP-OCR det → cls → rec as separate ONNX bricks gives
rapidocr's own answer line for line (texts, scores, boxes) on every sample page, also when the
pages run concurrently and when several pages' line crops share batches; the cls stage turns
upside-down lines, and without it (pipeline_nocls.yaml) the answer is rapidocr's with
use_cls=False; the fields are exact; the risk model answers, and the rules answer alone when
the model is unavailable."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rapidocr")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from examples._kit import find_node, make_unavailable
from examples.contracts import build
from examples.contracts.contracts_steps import page_fields
from examples.contracts.pages import Page, generate_pages
from examples.contracts.risk_model import features_from_fields, rule_score

from brickwork.graph import load_graph, load_pipeline

YAML = Path(build.__file__).parent / "pipeline.yaml"
YAML_NOCLS = YAML.with_name("pipeline_nocls.yaml")


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    build.build()
    return generate_pages()


@pytest.fixture(scope="module")
def engine() -> Any:
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.log_level": "warning"})


@pytest.fixture(scope="module")
def rapidocr_results(pages: list[Page], engine: Any) -> list[Any]:
    return [engine(p.image) for p in pages]


def _run_concurrently(path: Path, images: list[np.ndarray]) -> list[Any]:
    with load_pipeline(path) as pipe, ThreadPoolExecutor(len(images)) as pool:
        return list(pool.map(lambda image: pipe.infer({"image": image[np.newaxis]}), images))


def _assert_equal_to_rapidocr(out: Any, ref: Any, where: str) -> None:
    lines = json.loads(out["ocr_lines"][0])
    assert [line["text"] for line in lines] == list(ref.txts), where
    assert [line["score"] for line in lines] == list(ref.scores), where
    np.testing.assert_array_equal(np.array([line["box"] for line in lines], dtype=np.float32), ref.boxes)


@pytest.fixture(scope="module")
def concurrent_run(pages: list[Page]) -> tuple[list[Any], dict[str, Any]]:
    """Every page as its own request, all at once (so crops of different pages can batch)."""
    with load_pipeline(YAML) as pipe:
        pipe.reset_stats()
        with ThreadPoolExecutor(len(pages)) as pool:
            results = list(pool.map(lambda p: pipe.infer({"image": p.image[np.newaxis]}), pages))
        return results, pipe.stats()


def test_ocr_equals_rapidocr_line_for_line_on_every_page(
    pages: list[Page], rapidocr_results: list[Any], concurrent_run: tuple[list[Any], dict[str, Any]]
) -> None:
    results, _ = concurrent_run
    for page, ref, out in zip(pages, rapidocr_results, results, strict=True):
        _assert_equal_to_rapidocr(out, ref, page.name)
        assert out["text"][0].splitlines() == list(page.lines), page.name


def test_fields_exact_and_the_risk_model_answers(
    pages: list[Page], concurrent_run: tuple[list[Any], dict[str, Any]]
) -> None:
    results, stats = concurrent_run
    for page, out in zip(pages, results, strict=True):
        assert page_fields(out, 0) == page.fields, page.name
        assert out.rungs == {"risk": "risk"} and not out.degraded
        assert out["decision"][0] == ("review" if out["risk"][0] >= 0.5 else "approve")
    assert stats["fallbacks"]["risk"] == {"risk": len(pages)}
    decisions = {str(out["decision"][0]) for out in results}
    assert decisions == {"review", "approve"}  # the sample pages are not all one class


def test_line_crops_are_recognised_in_batches(concurrent_run: tuple[list[Any], dict[str, Any]]) -> None:
    _, stats = concurrent_run
    stages = stats["stages"]
    lines = 10 * 4
    # every line went through cls and rec exactly once; a page's lines share calls: one cls
    # call per page at most (pages in flight together may share one, as timing allows), one
    # rec call per width group (rapidocr's batches of 6 by aspect ratio)
    assert stages["cls"]["items"] == lines and stages["rec"]["items"] == lines
    assert stages["cls"]["batches"] <= 4
    assert stages["rec"]["batches"] == stages["rec"]["requests"] == stages["rec_pre"]["requests"] < lines
    assert stages["det"]["items"] == 4


def test_pages_in_one_request_share_det_and_cls_calls(
    pages: list[Page], concurrent_run: tuple[list[Any], dict[str, Any]]
) -> None:
    same = [i for i, p in enumerate(pages) if p.image.shape == pages[0].image.shape]
    assert len(same) == 3
    results, _ = concurrent_run
    with load_pipeline(YAML) as pipe:
        pipe.reset_stats()
        out = pipe.infer({"image": np.stack([pages[i].image for i in same])})
        stages = pipe.stats()["stages"]
    assert (stages["det"]["items"], stages["det"]["batches"]) == (3, 1)
    assert (stages["cls"]["items"], stages["cls"]["batches"]) == (30, 1)
    assert stages["rec"]["items"] == 30 and stages["rec"]["batches"] == stages["rec_pre"]["requests"] < 30
    for row, i in enumerate(same):  # the same answer as each page alone
        assert out["ocr_lines"][row] == results[i]["ocr_lines"][0], pages[i].name
        assert out["decision"][row] == results[i]["decision"][0], pages[i].name


def test_cls_turns_upside_down_lines(pages: list[Page], engine: Any) -> None:
    page = pages[0]
    upside_down = np.ascontiguousarray(page.image[::-1, ::-1])
    (with_cls,) = _run_concurrently(YAML, [upside_down])
    _assert_equal_to_rapidocr(with_cls, engine(upside_down), "upside down")
    read = set(with_cls["text"][0].splitlines())
    assert len(read & set(page.lines)) >= 8, read  # every line turned by 180 degrees and read
    assert (with_cls["contract_no"][0], with_cls["iban"][0]) == (page.fields.contract_no, page.fields.iban)
    (without,) = _run_concurrently(YAML_NOCLS, [upside_down])
    _assert_equal_to_rapidocr(without, engine(upside_down, use_cls=False), "upside down, no cls")
    assert len(set(without["text"][0].splitlines()) & set(page.lines)) <= 1  # read as it lies: noise
    assert (without["contract_no"][0], without["iban"][0]) == ("", "")


def test_without_cls_equals_rapidocr_without_cls(pages: list[Page], engine: Any) -> None:
    results = _run_concurrently(YAML_NOCLS, [p.image for p in pages])
    for page, out in zip(pages, results, strict=True):
        _assert_equal_to_rapidocr(out, engine(page.image, use_cls=False), page.name)
        assert page_fields(out, 0) == page.fields, page.name  # upright pages need no cls


def test_rules_answer_alone_when_the_risk_model_is_unavailable(pages: list[Page]) -> None:
    parsed = load_graph(YAML)
    make_unavailable(find_node(parsed.graph, "risk"))
    with parsed.compile() as pipe:
        page = pages[0]
        out = pipe.infer({"image": page.image[np.newaxis]})
        assert out.rungs == {"risk": "rules"} and out.degraded
        expected = float(rule_score(features_from_fields(page.fields))[0])
        assert out["risk"][0] == pytest.approx(expected)
        assert out["decision"][0] == ("review" if expected > 0.4 else "approve")
        assert page_fields(out, 0) == page.fields  # the OCR and fields are unaffected
        assert pipe.stats()["fallbacks"]["risk"] == {"rules": 1}
