"""The Open Inference Protocol v2 (KServe v2 / Triton) codec, shared by every front and client.

Tensors (:mod:`._tensors`): JSON and Triton's binary tensor extension, straight to and from
numpy, strict about what a shape claims. Envelopes: a whole infer request in and a whole
response out (:mod:`._infer`, the serving side), a request out and a response or error in
(:mod:`._calls`, the calling side), with the request-level rules (model inputs and outputs, requested
outputs, binary choices, id, timeout). The server, the client, and later fronts (gRPC, the
Ray ingress) import this package; it imports nothing above ``spec`` and ``errors``.
"""

from ._calls import InferResponse, decode_response, encode_request, error_for_status
from ._infer import InferRequest, decode_request, encode_response
from ._tensors import HEADER_LENGTH, decode_tensor, dumps, encode_tensor, load_json, pack_bytes, unpack_bytes

__all__ = [
    "HEADER_LENGTH", "InferRequest", "InferResponse", "decode_request", "decode_response",
    "decode_tensor", "dumps", "encode_request", "encode_response", "encode_tensor",
    "error_for_status", "load_json", "pack_bytes", "unpack_bytes",
]
