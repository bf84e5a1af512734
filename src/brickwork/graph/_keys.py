"""Every key a pipeline file may hold, in one place: the loader checks entries against these
tables, and ``brickwork schema`` generates the YAML reference (docs/yaml.md) and the JSON Schema
from them. Stage options come from the option dataclasses (:data:`brickwork.options.STAGE_KEYS`)
and each brick kind's keys from its class's ``config_keys`` table, so nothing here repeats them.
"""

from __future__ import annotations

from ..bricks import ConfigKey
from ..options import STAGE_KEYS

__all__ = ["COMBINATORS", "GRAPH_ENTRY_KEYS", "LADDER_TAIL_KEYS", "NODE_KEYS", "NODE_OWN_KEYS",
           "TOP_KEYS", "names"]

_STEP = {"$ref": "#/$defs/step"}
_NAMES = {"type": "array", "items": {"type": "string"}}

TOP_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("name", {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
              "the model name the server exposes; default \"pipeline\""),
    ConfigKey("version", {"type": ["string", "number"]}, "free text for people; not read"),
    ConfigKey("description", {"type": "string"},
              "what the pipeline does: the tool description in ``brickwork mcp`` and ``/v1/tools``"),
    ConfigKey("descriptions", {"type": "object", "additionalProperties": {"type": "string"}},
              "input or output tensor name -> text: the tool schema's property descriptions"),
    ConfigKey("defaults", {"$ref": "#/$defs/stage_options"},
              "stage options for every brick that sets none (its ``batching`` is the default "
              "batching of every stage)"),
    ConfigKey("inputs", {"type": "array", "items": {"$ref": "#/$defs/tensor"}},
              "declared pipeline inputs; default: inferred from the bricks that read them"),
    ConfigKey("outputs", _NAMES, "what the pipeline returns; default: what the last step publishes"),
    ConfigKey("bricks", {"type": "object", "minProperties": 1,
                         "additionalProperties": {"$ref": "#/$defs/brick"}},
              "brick name -> brick entry: one kind key, its options, stage options", required=True),
    ConfigKey("graphs", {"type": "object", "additionalProperties": {"$ref": "#/$defs/graph_entry"}},
              "named sub-graphs, usable like bricks"),
    ConfigKey("graph", _STEP, "the pipeline: a step expression", required=True),
    ConfigKey("example", {"type": "object"},
              "a sample request ({input: value}) for ``brickwork bench`` and ``run``"),
)

# Keys of a brick entry besides its kind's own keys and the stage options.
NODE_OWN_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("fallback", {"anyOf": [_STEP, {"type": "array"}]},
              "rungs tried when this brick fails, then optionally {default: {...}, on: any}; "
              "the ladder is named after the brick"),
    ConfigKey("rename", {"type": "object", "additionalProperties": False, "properties": {
        "inputs": {"type": "object", "additionalProperties": {"type": "string"}},
        "outputs": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "{inputs: {port: tensor read}, outputs: {port: tensor published}}"),
)
NODE_KEYS: frozenset[str] = STAGE_KEYS | {k.name for k in NODE_OWN_KEYS}

GRAPH_ENTRY_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("graph", _STEP, "the sub-graph's step expression", required=True),
    ConfigKey("outputs", _NAMES, "what it returns; default: what its last step publishes"),
)

LADDER_TAIL_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("default", {"type": "object"}, "the static answer when every rung failed"),
    ConfigKey("on", {"enum": ["machinery", "any"]},
              "what moves the ladder on: \"machinery\" (crash, timeout, overload, open circuit, "
              "upstream error; the default) or \"any\" (also when the model raised)"),
    ConfigKey("name", {"type": "string"}, "the ladder's name (the ``rung.<name>`` response "
              "parameter and the ``ladder=`` metric label); default: the primary's name"),
)

_NAME = ConfigKey("name", {"type": "string"}, "a name for errors, metrics and drawings")
# combinator -> its mapping's keys (parallel and fallback take a list)
COMBINATORS: dict[str, tuple[ConfigKey, ...]] = {
    "parallel": (),
    "fallback": (),
    "switch": (
        ConfigKey("on", {"type": "string"}, "the tensor whose per-item value picks the case",
                  required=True),
        ConfigKey("cases", {"type": "object", "additionalProperties": _STEP},
                  "value -> step", required=True),
        ConfigKey("default", _STEP, "the step for items matching no case; default: refuse them"),
        _NAME,
    ),
    "group": (
        ConfigKey("on", {"type": "string"}, "the tensor whose per-item value groups the items",
                  required=True),
        ConfigKey("step", _STEP, "run once per distinct value, on that value's items",
                  required=True),
        _NAME,
    ),
    "ensemble": (
        ConfigKey("members", {"type": "array", "minItems": 2, "items": _STEP},
                  "the steps that all run on the same inputs", required=True),
        ConfigKey("combiner", {"enum": ["majority", "weighted", "mean"]},
                  "how their outputs merge; default \"majority\""),
        ConfigKey("on", {"type": "string"}, "the member output combined; default \"label\" "
                  "(\"probabilities\" for mean)"),
        ConfigKey("output", {"type": "string"}, "the name it is published under; default: ``on``"),
        ConfigKey("weights", {"type": "array", "items": {"type": "number"}},
                  "one weight per member (combiner weighted)"),
        ConfigKey("label", {"type": "string"}, "mean only: also publish the argmax under this name"),
        ConfigKey("k", {"type": "integer", "minimum": 1},
                  "answer as soon as this many members answered; default: all of them"),
        ConfigKey("deadline_s", {"type": "number", "exclusiveMinimum": 0},
                  "answer at this time with whoever has answered (seconds); default: none"),
        ConfigKey("min_members", {"type": "integer", "minimum": 1},
                  "fewer answers by the deadline is a DeadlineExceeded (504); default 1"),
        _NAME,
    ),
}


def names(keys: tuple[ConfigKey, ...]) -> list[str]:
    return [k.name for k in keys]
