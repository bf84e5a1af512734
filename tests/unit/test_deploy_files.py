"""deploy/: the Dockerfile and the KServe manifest refer to what exists — files it copies, extras
it installs, the port and health endpoints the server really has, and `brickwork serve` arguments
the CLI accepts. (No container runtime runs here; tests/e2e/test_deploy_image.py builds and runs
the image when one is available.)"""

from __future__ import annotations

import asyncio
import re
import shlex
import tomllib
from pathlib import Path

import yaml

import brickwork as bw
from brickwork.cli import build_parser
from brickwork.server import App

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
MANIFEST = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(rest: str) -> list[str]:
    return list(yaml.safe_load(rest))  # a JSON array


def health_status(path: str) -> int:
    async def go() -> int:
        app = App([_pipeline()])
        await app.startup()
        try:
            status, _, _ = await app.handle("GET", path, [], b"")
        finally:
            await app.shutdown()
        return status

    return asyncio.run(go())


def _pipeline():
    def double(x: float) -> float:
        return 2 * x

    return bw.graph(bw.function(double), name="m").compile()


def test_dockerfile_copies_real_files_and_installs_real_extras():
    ins = instructions()
    copies = [rest.split() for word, rest in ins if word == "COPY" and "--from" not in rest]
    for parts in copies:
        for src in parts[:-1]:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    extras_default = next(rest for word, rest in ins if word == "ARG" and rest.startswith("EXTRAS="))
    extras = extras_default.split("=", 1)[1].split(",")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "server" in extras and set(extras) <= set(declared)
    documented = re.search(r"the pipelines use: ([\w, ]+) \(default", DOCKERFILE.read_text())
    assert documented and {e.strip() for e in documented.group(1).split(",")} <= set(declared)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for keep in ("pyproject.toml", "README.md", "src/"):
        assert f"!{keep}" in ignored


def test_dockerfile_runs_as_non_root_on_a_slim_base_with_health_on_the_served_port():
    ins = instructions()
    base = next(rest for word, rest in ins if word == "ARG" and rest.startswith("PYTHON_IMAGE="))
    assert base.endswith("-slim")
    user = [rest for word, rest in ins if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    entry = exec_form(next(rest for word, rest in ins if word == "ENTRYPOINT"))
    cmd = exec_form(next(rest for word, rest in ins if word == "CMD"))
    assert entry[:2] == ["brickwork", "serve"]
    args = build_parser().parse_args([*entry[1:], *cmd])  # the CLI accepts them
    assert args.host == "0.0.0.0"
    exposed = [int(rest) for word, rest in ins if word == "EXPOSE"]
    assert exposed == [args.port]
    health = next(rest for word, rest in ins if word == "HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", health)
    assert url and int(url.group(1)) == args.port and url.group(2) == "/v2/health/live"
    assert health_status(url.group(2)) == 200


def test_kserve_manifest_is_an_inference_service_wired_to_the_real_endpoints():
    doc = yaml.safe_load(MANIFEST.read_text())
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    (container,) = doc["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"
    port = container["ports"][0]["containerPort"]
    ins = instructions()
    entry = exec_form(next(rest for word, rest in ins if word == "ENTRYPOINT"))
    args = build_parser().parse_args([*entry[1:], *container["args"]])
    assert args.port == port and args.log_format == "json" and args.access_log
    for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        assert container[probe]["httpGet"] == {"path": path, "port": port}
        assert health_status(path) == 200
    assert container["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["STORAGE_URI"]["value"].startswith("pvc://")
    assert container["args"][0].startswith("/mnt/models/")  # where KServe puts STORAGE_URI
    annotations = doc["metadata"]["annotations"]
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    assert shlex.quote(annotations["prometheus.kserve.io/port"]) == str(port)
