"""The Open Inference Protocol v2 (KServe v2 / Triton) HTTP server. See docs/serving.md.

    import brickwork as bw
    from brickwork.server import serve

    serve(pipeline, port=8000)        # or: brickwork serve pipeline.yaml

Importing this package is cheap; uvicorn is imported when a server starts.
"""

from ._app import App
from ._config import ServerConfig
from ._run import serve
from ._testing import ServerThread

__all__ = ["App", "ServerConfig", "ServerThread", "serve"]
