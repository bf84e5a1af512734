"""brickwork's one exception tree.

    BrickworkError
    ├── BuildError                     a problem found before anything runs
    │   ├── SpecError                  a bad TensorSpec / dtype / signature
    │   ├── GraphError                 cycles, dangling inputs, duplicate or unknown names
    │   │   └── InterfaceMismatch      an edge whose two ends do not fit
    │   └── ConfigError                a malformed pipeline file or option
    ├── FederatedError                 a federated run cannot go on (no quorum, no client left)
    └── RequestError                   a problem with one request; carries `status` (HTTP)
        ├── InvalidInput        400    the caller sent something wrong
        ├── NotFound            404    unknown model / version
        ├── PayloadTooLarge     413    request body over the limit
        ├── Unauthorized        401    missing or wrong API key
        ├── ModelError          500    the model raised (original kept as __cause__)
        ├── UpstreamError       502    a remote model answered with an error
        ├── Overloaded          503    a queue is full / circuit is open
        ├── WorkerCrashed       503    a worker process died while holding the request
        └── DeadlineExceeded    504    the request's deadline passed

"The model raised" (`ModelError`) is kept apart from "the machinery broke"
(`is_machinery` true: `Overloaded`, `WorkerCrashed`, `DeadlineExceeded`, `UpstreamError`):
only the machinery kind triggers retries and fallbacks by default.

Every error pickles (its constructor arguments are passed to ``super().__init__``), because
errors cross process and Ray boundaries.
"""

from __future__ import annotations

__all__ = [
    "BrickworkError",
    "BuildError",
    "ConfigError",
    "DeadlineExceeded",
    "FederatedError",
    "GraphError",
    "InterfaceMismatch",
    "InvalidInput",
    "ModelError",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RequestError",
    "SpecError",
    "Unauthorized",
    "UpstreamError",
    "WorkerCrashed",
]


class BrickworkError(Exception):
    """Root of every error brickwork raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BuildError(BrickworkError):
    """Found while building or compiling a graph, before any request runs."""


class SpecError(BuildError):
    """A tensor spec, dtype or signature that cannot be used."""


class GraphError(BuildError):
    """The graph's shape is wrong: a cycle, a dangling input, a duplicate or unknown name."""


class InterfaceMismatch(GraphError):
    """Two connected ports do not fit and no safe adapter exists."""


class ConfigError(BuildError):
    """A pipeline file or option is malformed; the message names the file, field and fix."""


class FederatedError(BrickworkError):
    """A federated training run cannot go on: too few clients answered, or every client is gone."""


class RequestError(BrickworkError):
    """Raised while serving one request. ``status`` is the HTTP status it maps to."""

    status: int = 500
    is_machinery: bool = False


class InvalidInput(RequestError):
    status = 400


class Unauthorized(RequestError):
    status = 401


class NotFound(RequestError):
    status = 404


class PayloadTooLarge(RequestError):
    status = 413


class ModelError(RequestError):
    """The model itself raised; the original exception is the ``__cause__``."""

    status = 500


class UpstreamError(RequestError):
    """A remote model answered with an error or could not be reached."""

    status = 502
    is_machinery = True

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status

    def __reduce__(self) -> tuple[type, tuple[str, int | None]]:
        return (type(self), (self.message, self.upstream_status))


class Overloaded(RequestError):
    """A bounded queue is full or a circuit is open; retry after ``retry_after_s``."""

    status = 503
    is_machinery = True

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type, tuple[str, float]]:
        return (type(self), (self.message, self.retry_after_s))


class WorkerCrashed(RequestError):
    """A worker died (or was killed as hung) holding the request. ``poison``: the request took
    down a worker twice (with its batch, then alone), so neither the stage nor a fault policy
    retries it again; a fallback rung may still answer it. ``started`` false: the batch was
    still queued behind the one that crashed, so it never ran and counts as no attempt."""

    status = 503
    is_machinery = True

    def __init__(self, message: str, poison: bool = False, started: bool = True) -> None:
        super().__init__(message)
        self.poison = poison
        self.started = started

    def __reduce__(self) -> tuple[type, tuple[str, bool, bool]]:
        return (type(self), (self.message, self.poison, self.started))


class DeadlineExceeded(RequestError):
    status = 504
    is_machinery = True
