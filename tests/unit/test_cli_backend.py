"""--backend and --ray-address, shared by serve, run and bench."""

from __future__ import annotations

import pytest

from brickwork.cli import build_parser
from brickwork.cli._backend import backend_of
from brickwork.errors import ConfigError


@pytest.mark.parametrize("verb", ["serve", "run", "bench"])
def test_backend_flags_on_every_verb_that_runs_pipelines(verb):
    args = build_parser().parse_args([verb, "p.yaml", "--backend", "ray", "--ray-address", "10.1.2.3:6379"])
    backend = backend_of(args)
    assert type(backend).__name__ == "RayBackend" and backend.address == "10.1.2.3:6379"
    assert backend_of(build_parser().parse_args([verb, "p.yaml"])) == "local"


def test_a_ray_address_without_the_ray_backend_is_refused():
    with pytest.raises(ConfigError, match="--ray-address needs --backend ray"):
        backend_of(build_parser().parse_args(["run", "p.yaml", "--ray-address", "auto"]))
