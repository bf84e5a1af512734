"""Write the contracts pipeline's models next to ``pipeline.yaml``, in ``.models/`` (gitignored).

    python -m examples.contracts.build [--force]

* ``.models/ocr/``: rapidocr 3.10's det, cls and rec ONNX files, copied out of its wheel
  (nothing is downloaded), and ``rec_keys.txt``, the rec model's character list;
* ``.models/risk-v1.onnx``: the risk model, trained on synthetic contracts (a few seconds).

Existing files are reused unless ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from examples.contracts import ocr, risk_model

MODELS = Path(__file__).parent / ".models"


def build(root: Path = MODELS, *, force: bool = False) -> dict[str, Path]:
    paths = {k: v for k, v in ocr.copy_models(root / "ocr").items()}
    paths["risk"] = risk_model.build(root, force=force)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild models that exist")
    args = parser.parse_args()
    for kind, path in build(force=args.force).items():
        print(f"{kind:5} {path}")


if __name__ == "__main__":
    main()
