"""``brickwork schema [--json]``: every pipeline-file key as Markdown (docs/yaml.md) or as a
JSON Schema (docs/pipeline.schema.json), generated from the tables the loader checks against."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("schema", help="print the pipeline-file reference (Markdown) or its JSON Schema")
    p.add_argument("--json", action="store_true", help="print the JSON Schema instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..graph import json_schema_text, reference_markdown

    print(json_schema_text() if args.json else reference_markdown(), end="")
    return 0
