"""Fields come out exact from the OCR of every page; the risk model's ONNX equals sklearn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from examples.contracts import risk_model
from examples.contracts.fields import extract_fields, iban_is_valid
from examples.contracts.pages import generate_pages


def test_fields_exact_from_ocr_on_every_page() -> None:
    pytest.importorskip("rapidocr")
    from examples.contracts import ocr

    sessions = {k: ocr.make_session(p) for k, p in ocr.rapidocr_model_paths().items()}
    charset = ocr.load_charset(sessions["rec"])
    for page in generate_pages():
        lines = [line.text for line in ocr.run_ocr(page.image, sessions, charset)]
        assert extract_fields(lines) == page.fields, page.name


def test_fields_exact_from_printed_lines() -> None:
    for page in generate_pages():
        assert extract_fields(page.lines) == page.fields
        assert page.fields.iban is not None and iban_is_valid(page.fields.iban)


def test_fields_tolerate_ocr_damage() -> None:
    lines = [
        "Contract No.C-2025-0147",
        "Date of signature:14.03.2025",
        "Supplier: Nordwind  Logistics GmbH",
        "Customer: Blue Harbor Trading Ltd",
        "Total amount:EUR12,500.00",
        "Payment due by: 2025-04-30",
        "IBAN: DE89 3704 OO44 0532 0130 00",  # zeros read as the letter O
        "Contact: billing@nordwind-logistics.de",
    ]
    f = extract_fields(lines)
    assert f.contract_no == "C-2025-0147"
    assert f.parties == ("Nordwind Logistics GmbH", "Blue Harbor Trading Ltd")
    assert (f.currency, f.amount, f.amount_value) == ("EUR", "12,500.00", 12500.0)
    assert (f.signed, f.due) == ("2025-03-14", "2025-04-30")
    assert f.iban == "DE89370400440532013000"
    assert f.email == "billing@nordwind-logistics.de"


def test_missing_fields_are_none() -> None:
    f = extract_fields(["Hello world", "IBAN: DE00 1234 5678 9012 3456 78"])  # bad checksum
    assert f.iban is None and f.amount is None and f.currency is None and f.parties == ()
    assert f.signed is None and f.due is None and f.email is None


def test_risk_onnx_matches_sklearn_and_beats_rules(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    path = risk_model.build(tmp_path)
    assert path.parent == tmp_path and path.is_file()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["features"]
    assert [o.name for o in sess.get_outputs()] == ["label", "probabilities"]

    model, accuracy = risk_model.train()
    x, y = risk_model.synthetic_dataset()
    label, prob = sess.run(None, {"features": x})
    assert np.abs(prob - model.predict_proba(x)).max() < 1e-5
    np.testing.assert_array_equal(label, model.predict(x))

    held_out = slice(int(len(x) * 0.8), None)
    rules_acc = float(((risk_model.rule_score(x[held_out]) > 0.4) == y[held_out]).mean())
    majority = max(y[held_out].mean(), 1 - y[held_out].mean())
    assert accuracy > rules_acc > majority


def test_features_and_rules_on_sample_pages() -> None:
    feats = np.stack([risk_model.features_from_fields(p.fields) for p in generate_pages()])
    assert feats.shape == (4, len(risk_model.FEATURE_NAMES)) and feats.dtype == np.float32
    scores = risk_model.rule_score(feats)
    assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()
    assert risk_model.rule_score(feats[0]).shape == (1,)
