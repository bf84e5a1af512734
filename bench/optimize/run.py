"""README figures for ``brickwork optimize``: one run each, on copies of the examples.

    .venv/bin/python bench/optimize/run.py            # about 6 minutes on 2 shared cores

Speedups are compared on CPU time (``--clock cpu``): the 2 cores are shared with other jobs
(load average 7-9 while these were made), so the wall clock mostly measured the neighbours;
both clocks are in the tables.

1. digits CNN (examples/digits_ensemble): calibration = 256 training images, eval = the 540
   held-out images with labels.
2. MiniLM (examples/text_router): calibration and eval = 256 sentences each
   (examples/text_router/optimize_data.py), no labels: agreement = cosine >= 0.99 with FP32.
3. ``brickwork bench`` on the text_router pipeline before and after the YAML patch, twice each,
   alternating (before, after, before, after), wall clock.
4. What the pipeline publishes, before vs after, on the 256 held-out sentences: the sentence
   embedding's cosine to FP32's (what the 0.99 goal is about) and lang/sentiment equality.
   ``run.py embeddings`` runs this step alone on the files an earlier run left.

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
SPEED = ("--clock", "cpu", "--measure-s", "6")
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
              "--eval", rel(WORK / "digits-eval.npz"), *SPEED, "--no-progress", "--json", rel(OUT / "digits-cnn.json"),
              log="digits-cnn.txt")
    brickwork("optimize", rel(text / "pipeline.yaml"), "--brick", "minilm", "--data", rel(calib), "--eval",
              rel(held_out), *SPEED, "--no-progress", "--json", rel(OUT / "minilm.json"), log="minilm.txt")
    if not (text / "pipeline.optimized.yaml").is_file():
        print("no pipeline.optimized.yaml: optimize kept FP32", flush=True)
        return
    results: dict[str, list[float]] = {"before": [], "after": []}
    for run in (1, 2):
        for label, yaml_file in (("before", "pipeline.yaml"), ("after", "pipeline.optimized.yaml")):
            brickwork("bench", rel(text / yaml_file), "--requests", "1000", "--concurrency", "16", "--no-progress",
                      "--json", rel(WORK / f"bench-{label}-{run}.json"), log=f"bench-text-router-{label}-{run}.txt")
            results[label].append(json.loads((WORK / f"bench-{label}-{run}.json").read_text())["throughput_req_s"])
    summary = (f"text_router pipeline, 1000 requests x 2 texts, 16 concurrent: before "
               f"{[round(r, 1) for r in results['before']]} req/s, after {[round(r, 1) for r in results['after']]} "
               f"req/s; ratio of sums {sum(results['after']) / sum(results['before']):.2f}x")
    (OUT / "bench-text-router-summary.txt").write_text(summary + "\n", encoding="utf-8")
    print(summary)
    embeddings()


def embeddings() -> None:
    from examples.text_router import optimize_data

    from brickwork.graph import load_pipeline

    text = WORK / "text_router"
    _, held_out = optimize_data.sentences()
    outs = []
    for yaml_file in ("pipeline.yaml", "pipeline.optimized.yaml"):
        with load_pipeline(text / yaml_file) as pipe:
            parts = [pipe.infer({"text": np.array(held_out[i:i + 32], dtype=object)}) for i in range(0, 256, 32)]
        outs.append({k: np.concatenate([p[k] for p in parts]) for k in ("embedding", "lang", "sentiment")})
    cos = (outs[0]["embedding"] * outs[1]["embedding"]).sum(axis=1)  # both are unit vectors
    line = (f"text_router outputs on {len(cos)} held-out sentences, FP32 vs int8 pipeline: embedding cosine "
            f"min {cos.min():.4f} mean {cos.mean():.4f}, {int((cos >= 0.99).sum())}/{len(cos)} >= 0.99; "
            f"lang equal {int((outs[0]['lang'] == outs[1]['lang']).sum())}/{len(cos)}, sentiment equal "
            f"{int((outs[0]['sentiment'] == outs[1]['sentiment']).sum())}/{len(cos)}")
    (OUT / "text-router-outputs.txt").write_text(line + "\n", encoding="utf-8")
    print(line)


if __name__ == "__main__":
    embeddings() if sys.argv[1:] == ["embeddings"] else main()
