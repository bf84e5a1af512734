"""`brickwork bench --sweep 1,4 --plot out.png`: one run per concurrency level on a fresh
pipeline, a table of them, the JSON of every level, and a PNG of throughput, latency and stage
utilisation against concurrency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brickwork.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart" / "pipeline.yaml"


def test_sweep_writes_json_and_a_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png, js = tmp_path / "sweep.png", tmp_path / "sweep.json"
    code = main(["bench", str(QUICKSTART), "--sweep", "1,4", "--requests", "60", "--warmup", "5",
                 "--plot", str(png), "--json", str(js), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "sweep:" in out and f"plot: {png}" in out
    doc = json.loads(js.read_text())
    assert [r["concurrency"] for r in doc["sweep"]] == [1, 4]
    assert all(r["ok"] == 60 and r["throughput_req_s"] > 0 for r in doc["sweep"])
    assert set(doc["sweep"][0]["stages"]) == {"features", "scorer", "decision"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_sweep_rejects_bad_levels(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(QUICKSTART), "--sweep", "1,zero"]) == 1
    assert "--sweep takes concurrency levels" in capsys.readouterr().err
