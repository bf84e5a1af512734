"""Train the digit classifiers and write them next to ``pipeline.yaml``, in ``.models/``.

    python -m examples.digits_ensemble.build [--force] [--no-cnn]

Three scikit-learn members (logistic regression, random forest, MLP) exported with skl2onnx,
plus a small CNN exported from torch when torch is importable (``pipeline.yaml`` uses all four,
``pipeline_sklearn.yaml`` the three that need no torch). About 15 s on 2 cores; existing files
are reused unless ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from examples.digits_ensemble import models

MODELS = Path(__file__).parent / ".models"


def build(*, with_cnn: bool | None = None, force: bool = False) -> dict[str, Path]:
    return models.build(MODELS, with_cnn=with_cnn, force=force)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="retrain models that exist")
    parser.add_argument("--no-cnn", action="store_true", help="skip the torch CNN")
    args = parser.parse_args()
    for name, path in build(with_cnn=False if args.no_cnn else None, force=args.force).items():
        print(f"{name:7} {path}")


if __name__ == "__main__":
    main()
