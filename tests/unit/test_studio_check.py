"""The studio's checker: the same compile() as `brickwork validate`, each error placed at the
line it is about, with the fix its message gives; a run answers outputs and stage timings."""

from __future__ import annotations

from pathlib import Path

from brickwork.studio import check, locate, run_request

ROOT = Path(__file__).resolve().parents[2]
SHOWCASE = ROOT / "examples" / "showcase" / "pipeline.yaml"
TEXT = SHOWCASE.read_text()


def _line_of(text: str, fragment: str) -> int:
    return next(i + 1 for i, s in enumerate(text.splitlines()) if fragment in s)


def _check(text: str) -> dict:
    return check(text, where=str(SHOWCASE), base_dir=SHOWCASE.parent)


def test_a_good_file_compiles_and_is_drawn() -> None:
    out = _check(TEXT)
    assert out["ok"] and out["errors"] == []
    assert 'data-stage="decide"' in out["svg"] and "squeeze(score, axis=1)" in out["svg"]
    assert "adapter before decide.score" in out["describe"]


def test_errors_land_on_their_line_with_the_fix() -> None:
    cases = [
        ("  - decide", "  - decidee", "found 'decidee'", None),  # an unknown step in a list
        ("combiner: mean", "combiner: meen", "unknown combiner 'meen'", "use 'majority', 'weighted' or 'mean'"),
        ('"showcase_steps:length"', '"showcase_steps:lenght"', "no attribute 'lenght'", None),
        ("[label, confidence, score]", "[label, confidence, scores]", "output 'scores' is not published", None),
    ]
    for old, new, says, fix in cases:
        text = TEXT.replace(old, new)
        out = _check(text)
        assert not out["ok"], new
        (err,) = out["errors"]
        assert says in err["message"], err
        assert err["line"] == _line_of(text, new.strip()), (new, err)
        assert err["fix"] == fix, err
        assert "Traceback" not in err["message"]


def test_bad_yaml_and_a_bare_message() -> None:
    out = _check("name: x\nbricks: {a: [\ngraph: a\n")
    assert not out["ok"] and out["errors"][0]["line"] is not None
    assert "not valid YAML" in out["errors"][0]["message"]
    assert locate("w.yaml:3: brick 'a': bad; use 'b'", "", "w.yaml") == {
        "line": 3, "message": "brick 'a': bad", "fix": "use 'b'"}


def test_run_answers_outputs_and_per_stage_timings() -> None:
    out = run_request(TEXT, where=str(SHOWCASE), base_dir=SHOWCASE.parent)
    assert out["ok"], out
    assert out["outputs"]["label"] == ["positive", "negative", "positive"]  # "das ist gut": 0.5 either rung
    assert set(out["stages"]) >= {"prepare", "decide", "lexicon"}
    assert out["stages"]["prepare"]["items"] == 3 and out["stages"]["prepare"]["batches"] >= 1
    mine = run_request(TEXT, where=str(SHOWCASE), base_dir=SHOWCASE.parent, inputs={"text": ["great!"]})
    assert mine["ok"] and mine["outputs"]["label"] == ["positive"]
    bad = run_request(TEXT, where=str(SHOWCASE), base_dir=SHOWCASE.parent, inputs={"txt": ["x"]})
    assert not bad["ok"] and "text" in bad["errors"][0]["message"]
