"""The pipeline-file reference (Markdown) and JSON Schema, generated from the tables the loader
checks against: ``_keys`` (file structure and combinators), the option dataclasses (stage
options, batching, breaker: their docstrings document each field) and each brick kind's
``config_keys``. ``brickwork schema`` prints them; docs/yaml.md and docs/pipeline.schema.json
are their checked-in output (a test fails when they are stale).
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from ..bricks import ConfigKey, config_keys, kind_class, known_kinds
from ..options import STAGE_KEYS, Autoscale, Batching, Breaker, FaultPolicy, RayPlacement, StageOptions
from ._keys import COMBINATORS, GRAPH_ENTRY_KEYS, LADDER_TAIL_KEYS, NODE_OWN_KEYS, TOP_KEYS

__all__ = ["documented_kinds", "json_schema", "json_schema_text", "reference_markdown"]

_SCHEMA_ID = "https://brickwork.dev/pipeline.schema.json"


def documented_kinds() -> list[str]:
    """Brick kinds with a key table (``fake``, the test kit's brick, has none)."""
    return sorted(k for k in known_kinds() if config_keys(kind_class(k)))


def field_docs(cls: type) -> dict[str, str]:
    """The ``name: text`` paragraphs of a dataclass's docstring, by field name."""
    names = {f.name for f in fields(cls)}
    docs: dict[str, str] = {}
    current = None
    for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
        m = re.match(r"^(\w+): (.*)$", line)
        if m and m.group(1) in names:
            current = m.group(1)
            docs[current] = m.group(2).strip()
        elif current and line.startswith("    "):
            docs[current] += " " + line.strip()
        else:
            current = None
    return docs


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _type_schema(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin in (typing.Union, types.UnionType):
        parts = [_type_schema(a) for a in typing.get_args(hint)]
        return parts[0] if len(parts) == 1 else {"anyOf": parts}
    if origin is tuple:
        args = typing.get_args(hint)
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is Mapping or origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(typing.get_args(hint)[1])}
    if isinstance(hint, type) and is_dataclass(hint):
        return {"$ref": f"#/$defs/{hint.__name__.lower()}"}
    simple = {int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
              bool: {"type": "boolean"}, type(None): {"type": "null"}}
    return dict(simple[hint])


def _dataclass_fields(cls: type, skip: tuple[str, ...] = ()) -> list[tuple[str, dict[str, Any], str, Any]]:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    return [(f.name, _type_schema(hints[f.name]), docs.get(f.name, ""), _default(f))
            for f in fields(cls) if f.name not in skip]


# the option dataclasses a stage option holds: $defs name -> (class, reference heading)
_OPTION_PARTS: dict[str, tuple[type, str]] = {
    "batching": (Batching, "`batching:`"),
    "breaker": (Breaker, "`breaker:`"),
    "autoscale": (Autoscale, "`replicas: {min, max, ...}` (autoscaling)"),
    "rayplacement": (RayPlacement, "`ray:` (placement on the ray backend)"),
}


def _stage_fields() -> list[tuple[str, dict[str, Any], str, Any]]:
    rows = (_dataclass_fields(StageOptions, skip=("policy", "autoscale"))
            + _dataclass_fields(FaultPolicy))
    # StageOptions.updated reads replicas: {min, max, ...} as autoscaling
    rows = [(n, {"anyOf": [{"type": "integer", "minimum": 1}, {"$ref": "#/$defs/autoscale"}]}, d, v)
            if n == "replicas" else (n, s, d, v) for n, s, d, v in rows]
    assert {r[0] for r in rows} == STAGE_KEYS  # the loader's list and this one are the same
    return rows


def _object(rows: Any, required: list[str] | None = None) -> dict[str, Any]:
    """An object schema of ConfigKeys and/or (name, schema, doc, default) dataclass rows."""
    props: dict[str, Any] = {}
    req = list(required or [])
    for row in rows:
        if isinstance(row, ConfigKey):
            props[row.name] = {**row.schema, "description": row.doc} if row.doc else dict(row.schema)
            if row.required:
                req.append(row.name)
        else:
            name, schema, doc, default = row
            props[name] = {**schema, "description": doc}
            if default is not MISSING and not is_dataclass(default) and not isinstance(default, tuple):
                props[name]["default"] = default
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if req:
        out["required"] = req
    return out


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of a pipeline file, for editors' completion and checks."""
    stage = _stage_fields()
    node_rows: list[Any] = [*stage, *NODE_OWN_KEYS]
    bricks = []
    for kind in documented_kinds():
        keys = config_keys(kind_class(kind))
        entry = _object([*keys, *node_rows])
        entry["title"] = f"{kind} brick"
        bricks.append(entry)
    steps: list[dict[str, Any]] = [
        {"type": "string", "description": "a brick or graph name, or names joined by '>>'"},
        {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"},
         "description": "a sequence"},
        _object([ConfigKey("parallel", {"type": "array", "minItems": 2,
                                        "items": {"$ref": "#/$defs/step"}},
                           "branches run concurrently on the same tensors", required=True)]),
        _object([ConfigKey("fallback", {"type": "array", "minItems": 1},
                           "[primary, rung..., {default, on, name}]", required=True)]),
    ]
    for name, keys in COMBINATORS.items():
        if keys:
            steps.append(_object([ConfigKey(name, _object(keys), "", required=True)]))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _SCHEMA_ID,
        "title": "brickwork pipeline file",
        **_object(TOP_KEYS),
        "$defs": {
            "stage_options": _object(stage),
            **{name: _object(_dataclass_fields(cls)) for name, (cls, _) in _OPTION_PARTS.items()},
            "tensor": _object([
                ConfigKey("name", {"type": "string"}, "", required=True),
                ConfigKey("datatype", {"type": "string"}, "a v2 datatype: FP32, INT64, BYTES, ..."),
                ConfigKey("dtype", {"type": "string"}, "alias of datatype"),
                ConfigKey("shape", {"type": "array", "items": {"type": "integer"}},
                          "-1 for a dynamic dimension, the batch axis first"),
            ]),
            "brick": {"anyOf": bricks},
            "graph_entry": _object(GRAPH_ENTRY_KEYS),
            "ladder_tail": _object(LADDER_TAIL_KEYS),
            "step": {"anyOf": steps},
        },
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, default=str) + "\n"


# -- Markdown ------------------------------------------------------------------------------
def _type_text(schema: Any) -> str:
    if not isinstance(schema, dict) or not schema:
        return "any"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" if v is not None else "null" for v in schema["enum"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1].replace("_", " ")
    if "anyOf" in schema and "description" in schema:  # a shared fragment that says its forms
        return str(schema["description"])
    if "anyOf" in schema:
        return " or ".join(_type_text(s) for s in schema["anyOf"])
    t = schema.get("type")
    if isinstance(t, list):
        return " or ".join(t)
    if t == "array":
        return f"list of {_type_text(schema.get('items', {}))}"
    if t == "object":
        return "mapping"
    return str(t or "any")


def _row(name: str, schema: Any, doc: str, default: Any = MISSING, required: bool = False) -> str:
    text = doc.replace("|", "\\|").replace("\n", " ")
    if required:
        text = "**required.** " + text
    if default is not MISSING and not is_dataclass(default) and default not in ((), None) \
            and "default" not in doc.lower():
        text += f" Default `{default}`."
    return f"| `{name}` | {_type_text(schema)} | {text} |"


def _table(rows: list[Any]) -> list[str]:
    out = ["| key | value | meaning |", "|---|---|---|"]
    for r in rows:
        if isinstance(r, ConfigKey):
            out.append(_row(r.name, r.schema, r.doc, required=r.required))
        else:
            out.append(_row(*r))
    return out


def reference_markdown() -> str:
    """docs/yaml.md: every key of a pipeline file."""
    lines = [
        "# Pipeline files: every key",
        "",
        "<!-- Generated by `brickwork schema > docs/yaml.md` from the tables the loader checks "
        "against; do not edit by hand (tests/unit/test_yaml_reference.py fails when stale). -->",
        "",
        "A pipeline file is a YAML mapping. Paths and `python:` modules resolve relative to the "
        "file. An unknown key is refused with the file, the line, the key and the known keys. "
        "Editors can check and complete files with the JSON Schema in "
        "[pipeline.schema.json](pipeline.schema.json) (`brickwork schema --json`); with the "
        "YAML language server, start a file with "
        "`# yaml-language-server: $schema=<path to>/pipeline.schema.json`.",
        "",
        "## Top level", "", *_table(list(TOP_KEYS)), "",
        "## A brick entry", "",
        "`bricks: {NAME: ENTRY}`. An entry holds exactly one kind key (below) with that kind's "
        "options, and any of the stage options and these keys:", "",
        *_table(list(NODE_OWN_KEYS)), "",
        "### Stage options", "",
        "Also allowed under `defaults:` (they apply to every brick that sets none). The fault "
        "policy's fields (`timeout_s` …) are given flat; see [faults.md](faults.md).", "",
        *_table(_stage_fields()), "",
        *(line for _, (cls, title) in _OPTION_PARTS.items()
          for line in (f"### {title}", "", *_table(_dataclass_fields(cls)), "")),
        "## Brick kinds", "",
        "The same keys are keyword arguments of the Python factories (`bw.onnx(path, "
        "providers=...)`, `bw.cast({...})` …); see [bricks.md](bricks.md).", "",
    ]
    for kind in documented_kinds():
        cls = kind_class(kind)
        lines += [f"### `{kind}:`", "", *_table(list(config_keys(cls))), ""]
    lines += [
        "## The graph expression", "",
        "`graph:` (and a `graphs:` entry's `graph:`, a combinator's steps) is one of:", "",
        "* a brick or graph name: `lr`",
        "* names joined by `>>`, run in order: `det >> crop >> rec`",
        "* a list of steps, run in order: `[det, {parallel: [a, b]}, rec]`",
        "* `{parallel: [step, step, ...]}`: branches run concurrently on the same tensors; "
        "their outputs merge by name",
        "* `{fallback: [primary, rung, ..., {default: {...}, on: any, name: ...}]}`: a ladder "
        "(the last item is optional)",
        "* one of the combinators below", "",
    ]
    for name, keys in COMBINATORS.items():
        if keys:
            lines += [f"### `{name}:`", "", *_table(list(keys)), ""]
    lines += ["### A ladder's last item", "", *_table(list(LADDER_TAIL_KEYS)), "",
              "## `graphs:` entries", "", *_table(list(GRAPH_ENTRY_KEYS)), "",
              "## A tensor (`inputs:` items)", "",
              "`{name: pixels, datatype: FP32, shape: [-1, 64]}`; `datatype` is a v2 name (BOOL, "
              "UINT8…UINT64, INT8…INT64, FP16, FP32, FP64, BF16, BYTES), `shape` has the batch "
              "axis first and -1 for dynamic dimensions.", ""]
    return "\n".join(lines)
