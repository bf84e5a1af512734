"""The Open Inference Protocol v2 (KServe v2 / Triton) HTTP server, and with ``grpc_port`` its
gRPC service (``inference.GRPCInferenceService``). See docs/serving.md.

    import brickwork as bw
    from brickwork.server import serve

    serve(pipeline, port=8000)        # or: brickwork serve pipeline.yaml
    serve(pipeline, port=8000, grpc_port=8001)

Importing this package is cheap (httptools, orjson); no web framework is involved, and grpcio
is imported only when gRPC is on.
"""

from ._app import App
from ._config import ServerConfig
from ._log import configure as configure_logging
from ._mcp import serve_mcp_http, serve_mcp_stdio
from ._run import serve
from ._testing import ServerThread, serve_in_thread

__all__ = ["App", "ServerConfig", "ServerThread", "configure_logging", "serve", "serve_in_thread", "serve_mcp_http",
           "serve_mcp_stdio"]
