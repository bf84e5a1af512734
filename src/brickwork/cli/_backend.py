"""``--backend`` and ``--ray-address``, shared by the verbs that run pipelines."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_backend_args", "backend_of"]


def add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="local", choices=("local", "process", "ray"),
                   help="where the bricks run: local (each stage's own worker kind), process (every "
                        "stage in worker processes) or ray (every replica a Ray actor) (default: local)")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --backend ray: 'auto' or host:port joins a running Ray cluster "
                        "(default: start a private Ray instance on this machine, on 127.0.0.1)")


def backend_of(args: argparse.Namespace) -> Any:
    """The backend the flags ask for: a name, or a RayBackend bound to --ray-address."""
    if args.backend != "ray":
        if args.ray_address is not None:
            from ..errors import ConfigError

            raise ConfigError("--ray-address needs --backend ray")
        return args.backend
    from ..cluster import RayBackend

    return RayBackend(address=args.ray_address)
