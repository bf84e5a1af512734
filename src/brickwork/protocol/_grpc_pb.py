"""The v2 gRPC message classes, built from the committed descriptor of ``grpc_service.proto``
in a private descriptor pool: package ``inference`` is also what tritonclient registers in
protobuf's default pool, and the two must be able to live in one process. Needs ``protobuf``
(the ``grpc`` extra); imported only by the gRPC front."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool, message_factory

from ._grpc_descriptor import SERIALIZED

__all__ = [
    "SERVICE", "InferParameter", "InferTensorContents", "ModelInferRequest", "ModelInferResponse",
    "ModelMetadataRequest", "ModelMetadataResponse", "ModelReadyRequest", "ModelReadyResponse",
    "ModelStreamInferResponse", "ServerLiveRequest", "ServerLiveResponse", "ServerMetadataRequest",
    "ServerMetadataResponse", "ServerReadyRequest", "ServerReadyResponse",
]

SERVICE = "inference.GRPCInferenceService"

_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(SERIALIZED)


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName("inference." + name))


ServerLiveRequest = _message("ServerLiveRequest")
ServerLiveResponse = _message("ServerLiveResponse")
ServerReadyRequest = _message("ServerReadyRequest")
ServerReadyResponse = _message("ServerReadyResponse")
ModelReadyRequest = _message("ModelReadyRequest")
ModelReadyResponse = _message("ModelReadyResponse")
ServerMetadataRequest = _message("ServerMetadataRequest")
ServerMetadataResponse = _message("ServerMetadataResponse")
ModelMetadataRequest = _message("ModelMetadataRequest")
ModelMetadataResponse = _message("ModelMetadataResponse")
InferParameter = _message("InferParameter")
InferTensorContents = _message("InferTensorContents")
ModelInferRequest = _message("ModelInferRequest")
ModelInferResponse = _message("ModelInferResponse")
ModelStreamInferResponse = _message("ModelStreamInferResponse")
