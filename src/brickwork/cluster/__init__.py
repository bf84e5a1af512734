"""The Ray backend (``backend="ray"``, the ``brickwork[ray]`` extra): the same plans, each
replica a Ray actor, on one machine or a cluster. Ray is imported only when a pipeline starts."""

from ._backend import RayBackend, connect, kept_remote, namespace_of
from ._tensors import RemoteTensor

__all__ = ["RayBackend", "RemoteTensor", "connect", "kept_remote", "namespace_of"]
