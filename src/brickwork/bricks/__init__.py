"""One adapter per model kind. Frameworks are imported lazily inside each brick."""

from ._base import (
    BaseBrick,
    Brick,
    BrickSpec,
    ConfigKey,
    brick_from_spec,
    config_keys,
    import_object,
    kind_class,
    kind_module,
    known_kinds,
    register_kind,
    sample_inputs,
)
from .function import FunctionBrick, Tensor

__all__ = ["BaseBrick", "Brick", "BrickSpec", "ConfigKey", "FunctionBrick", "Tensor", "brick_from_spec",
           "config_keys", "import_object",
           "kind_class", "kind_module", "known_kinds", "register_kind", "sample_inputs"]
