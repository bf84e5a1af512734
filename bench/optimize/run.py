"""README figures for ``brickwork optimize``: one run each, on copies of the examples.

    .venv/bin/python bench/optimize/run.py            # about 6 minutes on 2 shared cores

1. digits CNN (examples/digits_ensemble): calibration = 256 training images, eval = the 540
   held-out images with labels.
2. MiniLM (examples/text_router): calibration and eval = 256 sentences each
   (examples/text_router/optimize_data.py), no labels: agreement = cosine >= 0.99 with FP32.
3. ``brickwork bench`` on the text_router pipeline before and after the YAML patch.

Everything is written under bench/.cache/optimize/ (gitignored); the terminal output and the
JSON reports are copied to bench/optimize/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "bench" / ".cache" / "optimize"
OUT = Path(__file__).parent
sys.path.insert(0, str(ROOT))


def brickwork(*args: str, log: str) -> str:
    done = subprocess.run([sys.executable, "-m", "brickwork.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    text = f"$ brickwork {' '.join(args)}\n{done.stdout}"
    (OUT / log).write_text(text.replace(str(ROOT) + "/", ""), encoding="utf-8")
    print(text, flush=True)
    if done.returncode != 0:
        sys.exit(done.stderr)
    return done.stdout


def main() -> None:
    from examples.digits_ensemble import build as digits_build
    from examples.digits_ensemble.models import load_split
    from examples.text_router import build as text_build
    from examples.text_router import optimize_data

    shutil.rmtree(WORK, ignore_errors=True)
    digits, text = WORK / "digits_ensemble", WORK / "text_router"
    digits_build.build()
    text_build.build()
    shutil.copytree(ROOT / "examples" / "digits_ensemble", digits)
    shutil.copytree(ROOT / "examples" / "text_router", text)
    x_tr, x_te, _, y_te = load_split()
    np.savez(WORK / "digits-calib.npz", input=x_tr[:256])
    np.savez(WORK / "digits-eval.npz", input=x_te, label=y_te)
    calib, held_out = optimize_data.write(text / ".models")

    rel = lambda p: str(p.relative_to(ROOT))  # noqa: E731
    brickwork("optimize", rel(digits / "pipeline.yaml"), "--brick", "cnn", "--data", rel(WORK / "digits-calib.npz"),
              "--eval", rel(WORK / "digits-eval.npz"), "--no-progress", "--json", rel(OUT / "digits-cnn.json"),
              log="digits-cnn.txt")
    brickwork("optimize", rel(text / "pipeline.yaml"), "--brick", "minilm", "--data", rel(calib), "--eval",
              rel(held_out), "--no-progress", "--json", rel(OUT / "minilm.json"), log="minilm.txt")
    results = {}
    for label, yaml_file in (("before", "pipeline.yaml"), ("after", "pipeline.optimized.yaml")):
        if not (text / yaml_file).is_file():
            print(f"no {yaml_file}: optimize kept FP32", flush=True)
            break
        brickwork("bench", rel(text / yaml_file), "--requests", "1000", "--concurrency", "16", "--no-progress",
                  "--json", rel(WORK / f"bench-{label}.json"), log=f"bench-text-router-{label}.txt")
        results[label] = json.loads((WORK / f"bench-{label}.json").read_text())["throughput_req_s"]
    if len(results) == 2:
        print(f"text_router pipeline: {results['before']:.1f} -> {results['after']:.1f} req/s "
              f"({results['after'] / results['before']:.2f}x)")


if __name__ == "__main__":
    main()
