"""Train the fraud model and write it next to ``pipeline.yaml``, in ``.models/`` (gitignored).

    python -m examples.transactions.build [--force]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from examples.transactions import fraud

MODELS = Path(__file__).parent / ".models"


def build(*, force: bool = False) -> Path:
    return fraud.build(MODELS, force=force)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="retrain")
    print(build(force=parser.parse_args().force))


if __name__ == "__main__":
    main()
