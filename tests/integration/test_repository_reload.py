"""Model lifecycle without restarts, on a real server: Triton's repository extension (index,
load, unload), versions, and a hot reload under load — 0 failed requests while the pipeline
file is changed and reloaded; a broken file is refused and the old version keeps serving."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from brickwork.server import ServerThread

STEPS = '''
from typing import Annotated

import numpy as np

import brickwork as bw

Vec = Annotated[np.ndarray, bw.Tensor("FP32", (2,))]


def plus_one(x: Vec) -> Vec:
    return x + 1


def plus_two(x: Vec) -> Vec:
    return x + 2
'''

YAML = """name: adder
bricks:
  add: {{python: "reload_steps:{fn}", batch: true}}
graph: add
"""


@pytest.fixture()
def served(tmp_path: Path):
    (tmp_path / "reload_steps.py").write_text(STEPS)
    path = tmp_path / "adder.yaml"
    path.write_text(YAML.format(fn="plus_one"))
    with ServerThread(path, drain_timeout_s=10.0) as srv:
        yield srv, path


def _infer(client: httpx.Client, url: str) -> tuple[int, float | None]:
    r = client.post(f"{url}/v2/models/adder/infer",
                    json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 1.0]}]})
    return r.status_code, (r.json()["outputs"][0]["data"][0] if r.status_code == 200 else None)


def test_reload_under_load_drops_nothing_and_a_broken_file_is_refused(served) -> None:
    srv, path = served
    url = srv.url
    seen: list[tuple[int, float | None]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                seen.append(_infer(c, url))

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        path.write_text(YAML.format(fn="plus_two"))
        r = httpx.post(f"{url}/v2/repository/models/adder/load", timeout=60)
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "adder", "version": "2"}
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    codes = {code for code, _ in seen}
    assert codes == {200}, f"{sum(c != 200 for c, _ in seen)} of {len(seen)} failed: {codes}"
    values = [v for _, v in seen]
    assert values[0] == 2.0 and values[-1] == 3.0  # version 1 answered, then version 2
    switch = values.index(3.0)
    assert set(values[switch:]) <= {2.0, 3.0} and len(seen) > 50

    meta = httpx.get(f"{url}/v2/models/adder").json()
    assert meta["versions"] == ["2"]
    assert httpx.get(f"{url}/v2/models/adder/versions/2/ready").status_code == 200
    assert httpx.get(f"{url}/v2/models/adder/versions/1/ready").status_code == 404

    # a broken file: refused, with the reason; version 2 keeps serving
    path.write_text(YAML.format(fn="plus_three"))
    bad = httpx.post(f"{url}/v2/repository/models/adder/load", timeout=60)
    assert bad.status_code == 400
    assert "plus_three" in bad.json()["error"] and "version 2 still serves" in bad.json()["error"]
    with httpx.Client() as c:
        assert _infer(c, url) == (200, 3.0)
    (entry,) = httpx.post(f"{url}/v2/repository/index").json()
    assert entry["name"] == "adder" and entry["version"] == "2" and entry["state"] == "READY"
    assert "plus_three" in entry["reason"]


def test_unload_and_load_again(served) -> None:
    srv, _ = served
    url = srv.url
    assert httpx.post(f"{url}/v2/repository/models/adder/unload").status_code == 200
    (entry,) = httpx.post(f"{url}/v2/repository/index").json()
    assert entry == {"name": "adder", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}
    with httpx.Client() as c:
        assert _infer(c, url)[0] == 404
    assert httpx.post(f"{url}/v2/repository/models/adder/load", timeout=60).json()["version"] == "2"
    with httpx.Client() as c:
        assert _infer(c, url) == (200, 2.0)
    assert httpx.post(f"{url}/v2/repository/models/nope/load").status_code == 404
    assert httpx.get(f"{url}/v2/repository/index").status_code == 405


def test_reload_watches_the_file(tmp_path: Path) -> None:
    (tmp_path / "reload_steps.py").write_text(STEPS)
    path = tmp_path / "adder.yaml"
    path.write_text(YAML.format(fn="plus_one"))
    with ServerThread(path, reload=True) as srv, httpx.Client(timeout=30) as c:
        assert _infer(c, srv.url) == (200, 2.0)
        path.write_text(YAML.format(fn="plus_two"))
        deadline = time.monotonic() + 20
        while _infer(c, srv.url) != (200, 3.0):
            assert time.monotonic() < deadline, "the changed file was not reloaded"
            time.sleep(0.1)
        path.write_text("name: adder\nbricks: {add: [\n")  # broken: logged, version 2 serves on
        time.sleep(2.5)
        assert _infer(c, srv.url) == (200, 3.0)
        (entry,) = c.post(f"{srv.url}/v2/repository/index").json()
        assert entry["version"] == "2" and "not valid YAML" in entry["reason"]
