"""`brickwork graph --format svg|png`: the picture of a compiled plan holds every stage, the
adapters compile() inserted, edge tensor specs, switch cases, ensemble votes and fallback rungs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from brickwork.cli import main
from brickwork.graph import draw, load_graph, to_png, to_svg

ROOT = Path(__file__).resolve().parents[2]
SHOWCASE = ROOT / "examples" / "showcase" / "pipeline.yaml"
QUICKSTART = ROOT / "examples" / "quickstart" / "pipeline.yaml"
NS = "{http://www.w3.org/2000/svg}"


def _svg(path: Path) -> ET.Element:
    return ET.fromstring(to_svg(draw(load_graph(path).compile().plan), standalone=False))


def _texts(el: ET.Element) -> list[str]:
    return [t.text or "" for t in el.iter(f"{NS}text")]


def test_every_kind_of_step_is_drawn() -> None:
    root = _svg(SHOWCASE)
    groups = {g.get("data-stage"): g for g in root.iter(f"{NS}g") if g.get("data-stage")}
    assert set(groups) == {"prepare", "lexicon", "emphasis", "length", "flaky", "neutral", "decide"}
    kinds = [(g.get("class") or "").split() for g in root.iter(f"{NS}g")]
    assert ["node", "switch"] in kinds and ["node", "vote"] in kinds and ["node", "adapter"] in kinds
    assert ["edge", "failure"] in kinds  # flaky → neutral
    texts = _texts(root)
    assert "= en" in texts and "default" in texts  # switch cases
    assert "on failure → neutral" in texts
    assert "cast score to FP64" in texts and "squeeze(score, axis=1)" in texts  # the adapters
    assert "text: BYTES[?]" in texts  # an edge's tensor spec
    assert "ensemble: mean of score" in texts
    # every stage box has an empty line for the dashboard's live figures
    assert all(g.find(f"{NS}text[@class='live']") is not None for g in groups.values())


def test_layout_keeps_nodes_apart_and_inside() -> None:
    pic = draw(load_graph(SHOWCASE).compile().plan)
    boxes = [(n.x, n.y, n.x + n.w, n.y + n.h) for n in pic.nodes.values()]
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= pic.width and 0 <= y0 < y1 <= pic.height
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap, (a, b)
    assert to_svg(pic) == to_svg(draw(load_graph(SHOWCASE).compile().plan))  # deterministic


def test_png_is_a_png() -> None:
    pytest.importorskip("matplotlib")
    data = to_png(draw(load_graph(QUICKSTART).compile().plan))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_cli_writes_svg_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(QUICKSTART), "--format", "svg"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<?xml") and 'data-stage="scorer"' in out
    if pytest.importorskip("matplotlib"):
        png = tmp_path / "q.png"
        assert main(["graph", str(QUICKSTART), "--format", "png", "--out", str(png)]) == 0
        assert png.read_bytes()[:4] == b"\x89PNG"
