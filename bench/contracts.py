"""rapidocr vs the brickwork contracts pipeline, on the same pages, in one run.

    python bench/contracts.py [--repeat 2] [--concurrency 1 4]

Both sides run the same three PP-OCR ONNX models on the same sample pages (rapidocr 3.10's
own pipeline: ``RapidOCR()(image)`` per page, one page at a time — it has no request
batching — and also from several threads on the one engine). brickwork runs
``examples/contracts/pipeline.yaml`` (OCR plus fields and risk, so it does slightly more work)
with N pages in flight. Prints pages/s for each, and checks that every page's text is
rapidocr's. Each side is warmed up on one page first.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rate(fn: Any, pages: list[Any], concurrency: int) -> tuple[float, list[Any]]:
    t0 = time.perf_counter()
    if concurrency == 1:
        out = [fn(p) for p in pages]
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            out = list(pool.map(fn, pages))
    return len(pages) / (time.perf_counter() - t0), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="times each sample page is sent")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()

    from examples.contracts import build
    from examples.contracts.demo import stage_table
    from examples.contracts.pages import generate_pages
    from rapidocr import RapidOCR

    from brickwork.graph import load_pipeline

    build.build()
    pages = [p.image for p in generate_pages()] * args.repeat
    print(f"# {datetime.date.today()} {platform.machine()} {os.cpu_count()} CPUs, "
          f"{len(pages)} pages ({args.repeat} x 4 sample pages, 900x1100 and 1000x1300)")

    engine = RapidOCR(params={"Global.log_level": "warning"})
    engine(pages[0])
    rows = []
    reference = None
    for c in args.concurrency:
        rate, out = _rate(lambda img: engine(img), pages, c)
        reference = reference or [list(r.txts) for r in out]
        rows.append((f"rapidocr RapidOCR()(image), {c} thread(s)", rate))

    with load_pipeline(Path(build.__file__).parent / "pipeline.yaml") as pipe:
        pipe.infer({"image": pages[0][np.newaxis]})
        for c in args.concurrency:
            pipe.reset_stats()
            rate, out = _rate(lambda img: pipe.infer({"image": img[np.newaxis]}), pages, c)
            texts = [[line["text"] for line in json.loads(o["ocr_lines"][0])] for o in out]
            same = "same text as rapidocr" if texts == reference else "TEXT DIFFERS from rapidocr"
            rows.append((f"brickwork contracts pipeline, {c} in flight ({same})", rate))
            stats = pipe.stats()
    width = max(len(r[0]) for r in rows)
    for label, rate in rows:
        print(f"{label:{width}}  {rate:6.2f} pages/s")
    print(f"\nstages at {args.concurrency[-1]} in flight:\n{stage_table(stats)}")


if __name__ == "__main__":
    main()
