"""One adapter per model kind. Frameworks are imported lazily inside each brick."""

from ._base import (
    BaseBrick,
    Brick,
    BrickSpec,
    brick_from_spec,
    import_object,
    kind_class,
    kind_module,
    known_kinds,
    register_kind,
    sample_inputs,
)
from .function import FunctionBrick, Tensor

__all__ = ["BaseBrick", "Brick", "BrickSpec", "FunctionBrick", "Tensor", "brick_from_spec", "import_object",
           "kind_class", "kind_module", "known_kinds", "register_kind", "sample_inputs"]
