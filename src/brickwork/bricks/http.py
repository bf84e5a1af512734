"""Models behind HTTP, as bricks.

Two kinds:

* ``v2`` — a model on another Open Inference Protocol v2 server (brickwork, Triton, KServe,
  MLServer). Its signature is read from the upstream's model metadata unless declared; the
  batch is sent as one binary-tensor request::

      remote: {v2: "http://10.0.0.5:8000", model: digits, call_timeout_s: 2.0}

* ``http`` — any JSON endpoint, with a declared signature and a declared mapping from input
  tensors into the request body and from the response body to output tensors::

      sentiment:
        http: https://api.example.com/v1/sentiment
        inputs:  [{name: text, datatype: BYTES, shape: [-1]}]
        outputs: [{name: score, datatype: FP32, shape: [-1]}]
        request: {document: {content: "{text}", lang: en}}    # "{input}" = that input's value
        response: {score: "result.score"}                     # output <- dotted path (indices ok)
        headers: {Authorization: "Bearer ${SENTIMENT_KEY}"}   # ${VAR}: from the environment
        batch: false      # false: one call per item (default); true: one call with lists

  Without ``request`` the body is ``{input: value, ...}``; without ``response`` each output is
  read from the top-level key of its name. ``{"http": URL, "model": M}`` is the same as ``v2``.

Options of both: ``call_timeout_s`` (one HTTP call, default 30 s; the stage's ``timeout_s`` is
the deadline of the whole stage), ``max_connections`` (pool size, default 32). Connections are
pooled per brick (HTTP keep-alive). Every failure — an error status, a timeout, an unreachable
host, a response that does not fit the mapping — raises :class:`~brickwork.UpstreamError` with
the upstream's status (None when there was no answer), which fallbacks and retries treat as
machinery failure. Bricks run on a worker thread (``blocking``), one call at a time per replica.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RequestError, UpstreamError
from ..spec import Signature, Tensors, TensorSpec, to_numpy_dtype
from ._base import BaseBrick, BrickSpec, ConfigKey

__all__ = ["HttpBrick", "RemoteV2Brick", "make_http_brick"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PLACEHOLDER = re.compile(r"^\{([^{}]+)\}$")


def make_http_brick(url: str, name: str | None = None, **config: Any) -> BaseBrick:
    """``model=`` given: a :class:`RemoteV2Brick`; otherwise a :class:`HttpBrick`."""
    if "model" in config:
        return RemoteV2Brick(url, name=name, **config)
    return HttpBrick(url, name=name, **config)


def _specs(value: Any, what: str, brick: str) -> list[TensorSpec] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = [{"name": k, **(v if isinstance(v, Mapping) else {"datatype": v})}
                 for k, v in value.items()]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"http brick {brick!r}: {what} must be a list of "
                          "{name, datatype, shape}, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, TensorSpec):
            out.append(v)
        elif isinstance(v, Mapping) and "name" in v:
            dtype = v.get("datatype", v.get("dtype"))
            if dtype is None:  # never guess: a wrong datatype would answer wrongly, silently
                raise ConfigError(f"http brick {brick!r}: {what} {v['name']!r} has no datatype; "
                                  f"declare it, e.g. {{name: {v['name']}, datatype: FP32, shape: [-1]}}")
            out.append(TensorSpec(v["name"], dtype, v.get("shape", (-1,))))
        else:
            raise ConfigError(f"http brick {brick!r}: each of {what} needs name and datatype, got {v!r}")
    return out


def _expand_env(value: str, brick: str) -> str:
    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        if var not in os.environ:
            raise ConfigError(f"http brick {brick!r}: environment variable {var} is not set")
        return os.environ[var]

    return _ENV.sub(sub, value)


def _check_url(url: Any, brick: str) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"http brick {brick!r}: url must start with http:// or https://, got {url!r}")
    return url


def _pop_common(config: dict[str, Any], brick: str) -> tuple[float | None, int]:
    timeout = config.pop("call_timeout_s", 30.0)
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ConfigError(f"http brick {brick!r}: call_timeout_s must be > 0 seconds, got {timeout!r}")
    conns = config.pop("max_connections", 32)
    if not isinstance(conns, int) or conns < 1:
        raise ConfigError(f"http brick {brick!r}: max_connections must be an int >= 1, got {conns!r}")
    return (float(timeout) if timeout is not None else None), conns


def _unknown(config: Mapping[str, Any], brick: str, known: list[str]) -> None:
    if config:
        raise ConfigError(f"http brick {brick!r}: unknown option(s) {sorted(config)}; options are {known}")


_URL = {"type": "string", "pattern": "^https?://"}
_DECLARED = {
    "description": "a list of {name, datatype, shape}, or a mapping name -> datatype",
    "anyOf": [
        {"type": "array", "items": {"type": "object", "required": ["name"]}},
        {"type": "object", "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
    ],
}
_COMMON = (
    ConfigKey("call_timeout_s", {"type": ["number", "null"], "exclusiveMinimum": 0},
              "seconds one HTTP call may take; null = no limit; default 30.0"),
    ConfigKey("max_connections", {"type": "integer", "minimum": 1},
              "connection pool size (keep-alive); default 32"),
)
_V2_KEYS = (
    ConfigKey("model", {"type": "string"}, "the upstream's model name", required=True),
    ConfigKey("version", {"type": "string"}, "the upstream model's version"),
    ConfigKey("inputs", _DECLARED, "declared inputs; default: read from the upstream's metadata "
              "(declaring inputs and outputs lets the brick start while the upstream is down)"),
    ConfigKey("outputs", _DECLARED, "declared outputs; default: read from the upstream's metadata"),
    ConfigKey("api_key", {"type": "string"}, "sent as ``Authorization: Bearer``; ${VAR} reads "
              "the environment"),
    ConfigKey("binary", {"type": "boolean"}, "binary tensor requests; default true"),
    *_COMMON,
)


class RemoteV2Brick(BaseBrick):
    """A model on another v2 server; see the module docstring."""

    kind = "v2"
    config_keys = (
        ConfigKey("v2", _URL, "the upstream v2 server's base URL", required=True), *_V2_KEYS,
    )
    blocking = True

    def __init__(self, url: str, *, model: str, name: str | None = None, version: str | None = None,
                 inputs: Any = None, outputs: Any = None, api_key: str | None = None,
                 binary: bool = True, call_timeout_s: float | None = 30.0,
                 max_connections: int = 32) -> None:
        brick_name = name or model
        self.url = _check_url(url, brick_name)
        if not isinstance(model, str) or not model:
            raise ConfigError(f"v2 brick {brick_name!r}: model must be the upstream's model name")
        self.model = model
        self.version = version
        self.api_key = api_key
        self.binary = binary
        self.call_timeout_s, self.max_connections = _pop_common(
            {"call_timeout_s": call_timeout_s, "max_connections": max_connections}, brick_name)
        ins, outs = _specs(inputs, "inputs", brick_name), _specs(outputs, "outputs", brick_name)
        self._declared = (ins, outs)
        super().__init__(brick_name, Signature(ins, outs) if ins is not None and outs is not None else None)
        self._client: Any = None

    def _where(self) -> str:
        return f"remote model {self.model!r} at {self.url}"

    def _open(self) -> Any:
        if self._client is None:
            from ..client import Client

            key = _expand_env(self.api_key, self.name) if self.api_key else None
            self._client = Client(self.url, api_key=key, timeout_s=self.call_timeout_s,
                                  binary=self.binary, max_connections=self.max_connections)
        return self._client

    def _load(self) -> None:
        client = self._open()
        if self._signature is None:
            try:
                meta = client.model_metadata(self.model, self.version)
            except RequestError as exc:
                ins, outs = self._declared
                need = " and ".join(k for k, v in (("inputs", ins), ("outputs", outs)) if v is None)
                raise UpstreamError(
                    f"{self._where()}: cannot read its metadata: {exc}. brickwork asks the "
                    f"upstream for the ports it did not declare ({need}); declare {need} on the "
                    "brick and it starts without asking, even while the upstream is down "
                    "(its calls then fail, or fall back, until it is up), e.g. "
                    "{v2: URL, model: NAME, inputs: [{name: x, datatype: FP32, shape: [-1, 4]}], "
                    "outputs: [{name: y, datatype: FP32, shape: [-1, 1]}]}",
                    getattr(exc, "response_status", None)) from exc
            sig = Signature.from_dict(meta)
            ins, outs = self._declared
            self._signature = Signature(ins or sig.inputs, outs or sig.outputs)

    @property
    def signature(self) -> Signature:
        if self._signature is None:
            self.load()
        assert self._signature is not None
        return self._signature

    def _call(self, inputs: Tensors) -> Tensors:
        names = self.signature.output_names
        try:
            out = self._open().infer(self.model, inputs, outputs=names, version=self.version)
        except RequestError as exc:
            # the client marks errors built from an HTTP answer with its status
            raise UpstreamError(f"{self._where()}: {exc}", getattr(exc, "response_status", None)) from exc
        missing = [n for n in names if n not in out]
        if missing:
            raise UpstreamError(f"{self._where()}: response has no output(s) {missing}", 200)
        return {n: out[n] for n in names}

    def warmup(self) -> None:
        """No request at start-up: the upstream's own warm-up is its business."""

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        super().close()

    def spec(self) -> BrickSpec:
        ins, outs = self._declared
        config: dict[str, Any] = {"v2": self.url, "model": self.model, "binary": self.binary,
                                  "call_timeout_s": self.call_timeout_s,
                                  "max_connections": self.max_connections}
        for key, value in (("version", self.version), ("api_key", self.api_key)):
            if value is not None:
                config[key] = value
        if ins is not None:
            config["inputs"] = [s.to_dict() for s in ins]
        if outs is not None:
            config["outputs"] = [s.to_dict() for s in outs]
        return BrickSpec(self.kind, self.name, config)

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> RemoteV2Brick:
        config = dict(config)
        url = config.pop("v2", None) or config.pop("http", None)
        known = [k.name for k in _V2_KEYS]
        kwargs = {k: config.pop(k) for k in known if k in config}
        _unknown(config, name, known)
        if "model" not in kwargs:
            raise ConfigError(f"v2 brick {name!r} needs model: <the upstream's model name>")
        return cls(url, name=name, **kwargs)


class HttpBrick(BaseBrick):
    """A plain JSON endpoint with a declared mapping; see the module docstring."""

    kind = "http"
    blocking = True
    config_keys = (
        ConfigKey("http", _URL, "the endpoint's URL (with ``model:``, a v2 server's base URL)",
                  required=True),
        ConfigKey("inputs", _DECLARED, "the declared inputs (required for a plain JSON endpoint)"),
        ConfigKey("outputs", _DECLARED, "the declared outputs (required for a plain JSON endpoint)"),
        ConfigKey("request", {}, "the request body template; \"{input}\" is that input's value; "
                  "default {input: value, ...}"),
        ConfigKey("response", {"type": "object", "additionalProperties": {"type": "string"}},
                  "output name -> dotted path in the response body; default: the top-level key"),
        ConfigKey("headers", {"type": "object", "additionalProperties": {"type": "string"}},
                  "request headers; ${VAR} reads the environment"),
        ConfigKey("method", {"type": "string"}, "the HTTP method; default POST"),
        ConfigKey("batch", {"type": "boolean"},
                  "one call with lists for the whole batch; default false (one call per item)"),
        *_COMMON,
        # {http: URL, model: M} is a v2 brick: its keys are accepted here too
        *(replace(k, required=False) for k in _V2_KEYS if k.name not in ("inputs", "outputs")
          and k not in _COMMON),
    )

    def __init__(self, url: str, *, inputs: Any, outputs: Any, name: str | None = None,
                 request: Any = None, response: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None, method: str = "POST",
                 batch: bool = False, call_timeout_s: float | None = 30.0,
                 max_connections: int = 32) -> None:
        brick_name = name or "http"
        self.url = _check_url(url, brick_name)
        ins, outs = _specs(inputs, "inputs", brick_name), _specs(outputs, "outputs", brick_name)
        if not ins or not outs:
            raise ConfigError(f"http brick {brick_name!r} needs inputs and outputs: a plain JSON "
                              "endpoint has no metadata to read them from")
        super().__init__(brick_name, Signature(ins, outs))
        in_names = {s.name for s in ins}
        self.request = request
        if request is not None:
            unknown = sorted(_placeholders(request) - in_names)
            if unknown:
                raise ConfigError(f"http brick {brick_name!r}: request template uses {unknown}, "
                                  f"which are not inputs {sorted(in_names)}")
        self.response = {s.name: s.name for s in outs} if response is None else dict(response)
        missing = sorted({s.name for s in outs} - set(self.response))
        if missing:
            raise ConfigError(f"http brick {brick_name!r}: response mapping has no path for {missing}")
        self._paths = {k: _path(v, brick_name) for k, v in self.response.items()}
        self.headers = dict(headers or {})
        self.method = method.upper()
        self.batch = batch
        self.call_timeout_s, self.max_connections = _pop_common(
            {"call_timeout_s": call_timeout_s, "max_connections": max_connections}, brick_name)
        self._http: Any = None

    def _load(self) -> None:
        import httpx

        headers = {k: _expand_env(str(v), self.name) for k, v in self.headers.items()}
        self._http = httpx.Client(headers=headers, timeout=self.call_timeout_s,
                                  limits=httpx.Limits(max_connections=self.max_connections,
                                                      max_keepalive_connections=self.max_connections))

    def _call(self, inputs: Tensors) -> Tensors:
        n = len(next(iter(inputs.values())))
        values = {k: [_plain(x) for x in v.tolist()] for k, v in inputs.items()}
        columns: dict[str, list[Any]] = {s.name: [] for s in self.signature.outputs}
        if self.batch:
            doc = self._post(self._body(values))
            for name, path in self._paths.items():
                got = _follow(doc, path, self.response[name], self)
                if not isinstance(got, list) or len(got) != n:
                    raise UpstreamError(f"http brick {self.name!r}: {self.response[name]!r} must be a "
                                        f"list of {n} values (one per item), got {got!r}"[:300], 200)
                columns[name] = got
        else:
            for i in range(n):
                doc = self._post(self._body({k: v[i] for k, v in values.items()}))
                for name, path in self._paths.items():
                    columns[name].append(_follow(doc, path, self.response[name], self))
        out: Tensors = {}
        for spec in self.signature.outputs:
            out[spec.name] = _array(columns[spec.name], spec, self.name)
        return out

    def _body(self, values: Mapping[str, Any]) -> Any:
        if self.request is None:
            return dict(values)
        return _fill(self.request, values)

    def _post(self, body: Any) -> Any:
        import httpx
        import orjson

        from .. import tracing

        if self._http is None:
            self.load()
        try:
            r = self._http.request(self.method, self.url, content=orjson.dumps(body),
                                   headers={"content-type": "application/json", **tracing.outgoing()})
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"http brick {self.name!r}: {self.url} gave no answer within "
                                f"{self.call_timeout_s} s") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"http brick {self.name!r}: cannot reach {self.url}: "
                                f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= r.status_code < 300:
            raise UpstreamError(f"http brick {self.name!r}: {self.url} answered HTTP {r.status_code}: "
                                f"{r.text[:300]}", r.status_code)
        try:
            return orjson.loads(r.content)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"http brick {self.name!r}: {self.url} answered with non-JSON: "
                                f"{r.text[:200]!r}", r.status_code) from None

    def warmup(self) -> None:
        """No request at start-up: a remote endpoint may bill or log every call."""

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        super().close()

    def spec(self) -> BrickSpec:
        config: dict[str, Any] = {
            "http": self.url, "inputs": [s.to_dict() for s in self.signature.inputs],
            "outputs": [s.to_dict() for s in self.signature.outputs], "response": self.response,
            "headers": self.headers, "method": self.method, "batch": self.batch,
            "call_timeout_s": self.call_timeout_s, "max_connections": self.max_connections,
        }
        if self.request is not None:
            config["request"] = self.request
        return BrickSpec(self.kind, self.name, config)

    @classmethod
    def from_config(cls, config: dict[str, Any], base_dir: Path, name: str) -> BaseBrick:
        config = dict(config)
        if "model" in config:
            return RemoteV2Brick.from_config(config, base_dir, name)
        url = config.pop("http", None)
        v2_only = {k.name for k in _V2_KEYS} - {k.name for k in _COMMON} - {"inputs", "outputs"}
        known = [k.name for k in cls.config_keys[1:] if k.name not in v2_only]
        kwargs = {k: config.pop(k) for k in known if k in config}
        _unknown(config, name, [*known, "model"])
        return cls(url, name=name, **kwargs)


# -- the declared mapping -----------------------------------------------------------------
def _placeholders(template: Any) -> set[str]:
    if isinstance(template, str):
        m = _PLACEHOLDER.match(template)
        return {m.group(1)} if m else set()
    if isinstance(template, Mapping):
        return set().union(*(_placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(_placeholders(v) for v in template)) if template else set()
    return set()


def _fill(template: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        m = _PLACEHOLDER.match(template)
        return values[m.group(1)] if m else template
    if isinstance(template, Mapping):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def _path(path: str, brick: str) -> list[str | int]:
    if not isinstance(path, str) or not path:
        raise ConfigError(f"http brick {brick!r}: a response path must be a string like 'result.score'")
    parts: list[str | int] = []
    for part in path.removeprefix("$.").split("."):
        parts.append(int(part) if part.lstrip("-").isdigit() else part)
    return parts


def _follow(doc: Any, path: list[str | int], text: str, brick: HttpBrick) -> Any:
    node = doc
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise UpstreamError(f"http brick {brick.name!r}: the response has no {text!r} "
                                f"(stopped at {part!r}): {str(doc)[:200]}", 200) from None
    return node


def _plain(x: Any) -> Any:
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    return x


def _array(values: list[Any], spec: TensorSpec, brick: str) -> np.ndarray:
    if spec.dtype == "BYTES":
        arr = np.empty(len(values), dtype=object)
        arr[:] = [v if isinstance(v, str | bytes) else str(v) for v in values]
        return arr
    try:
        return np.asarray(values, dtype=to_numpy_dtype(spec.dtype))
    except (TypeError, ValueError) as exc:
        raise UpstreamError(f"http brick {brick!r}: output {spec.name!r} is not {spec.dtype}: "
                            f"{str(values)[:200]}", 200) from exc
