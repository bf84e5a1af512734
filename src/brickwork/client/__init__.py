"""A client for Open Inference Protocol v2 servers (brickwork, Triton, KServe, MLServer).

    from brickwork.client import Client

    with Client("http://127.0.0.1:8000") as c:
        out = c.infer("digits", {"pixels": x})      # binary tensors by default
        out["label"], out.rungs

The wire codec and the envelopes (``encode_request``/``decode_response``) are
:mod:`brickwork.protocol`, shared with the server, so both ends speak the same format.
:class:`Client` and :class:`AsyncClient` are two thin drivers of one core: every operation is
written once (see :mod:`brickwork.client._client`).
Needs the ``server`` extra (httpx, orjson).
"""

from ._client import AsyncClient, Client, InferResponse

__all__ = ["AsyncClient", "Client", "InferResponse"]
