"""examples/contracts on its real models: PP-OCR det → cls → rec as separate ONNX bricks gives
rapidocr's own answer line for line (texts, scores, boxes) on every sample page, also when the
pages run concurrently and their line crops share batches; the fields are exact; the risk
model answers, and the rules answer alone when the model is unavailable."""

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


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    build.build()
    return generate_pages()


@pytest.fixture(scope="module")
def rapidocr_results(pages: list[Page]) -> list[Any]:
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "warning"})
    return [engine(p.image) for p in pages]


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
        lines = json.loads(out["ocr_lines"][0])
        assert [line["text"] for line in lines] == list(ref.txts), page.name
        assert [line["score"] for line in lines] == list(ref.scores), page.name
        np.testing.assert_array_equal(np.array([line["box"] for line in lines], dtype=np.float32), ref.boxes)
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


def test_line_crops_batch_across_pages(concurrent_run: tuple[list[Any], dict[str, Any]]) -> None:
    _, stats = concurrent_run
    stages = stats["stages"]
    lines = 10 * 4
    # every line went through cls and rec exactly once, in fewer calls than requests
    assert stages["cls"]["items"] == lines and stages["rec"]["items"] == lines
    assert stages["rec"]["requests"] == stages["rec_pre"]["requests"]  # one request per width group
    assert stages["cls"]["batches"] < stages["cls"]["requests"]  # pages shared cls batches
    assert stages["det"]["items"] == 4


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
