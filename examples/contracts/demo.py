"""``make demo``: the contracts pipeline on the sample pages, end to end, on real models.

    python -m examples.contracts.demo [--concurrency 4]

Builds the models if they are missing (``examples/contracts/.models/``), loads
``pipeline.yaml``, sends every sample page as its own request (concurrently, so the engine
can batch line crops of different pages), prints each page's fields and risk decision, then
the per-stage timing table from ``pipeline.stats()``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

YAML = Path(__file__).parent / "pipeline.yaml"
FIELDS = ("contract_no", "supplier", "customer", "amount", "currency", "signed", "due", "iban", "email")


def stage_table(stats: Mapping[str, Any]) -> str:
    """One line per stage: calls, items, batching, queue and compute times, utilisation."""
    head = (f"{'stage':10} {'worker':7} {'requests':>8} {'items':>6} {'batches':>7} {'mean batch':>10} "
            f"{'queue p50 ms':>12} {'compute p50 ms':>14} {'compute total s':>15} {'util':>5}")
    rows = [head, "-" * len(head)]
    for name, s in stats["stages"].items():
        total = s["compute_s"]["mean"] * s["batches"]
        rows.append(
            f"{name:10} {s.get('worker', ''):7} {s['requests']:8d} {s['items']:6d} {s['batches']:7d} "
            f"{s['mean_batch_size']:10.1f} {s['queue_s']['p50'] * 1e3:12.1f} "
            f"{s['compute_s']['p50'] * 1e3:14.1f} {total:15.2f} {s['utilisation']:5.0%}"
        )
    rows.append(f"bottleneck: {stats['bottleneck']}   fallback rungs: {stats['fallbacks']}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4, help="pages in flight at once")
    args = parser.parse_args()

    from brickwork.graph import load_pipeline
    from examples.contracts import build
    from examples.contracts.pages import generate_pages

    t0 = time.perf_counter()
    build.build()
    pages = generate_pages()
    print(f"models ready in {build.MODELS} ({time.perf_counter() - t0:.1f} s); "
          f"{len(pages)} sample pages: {', '.join(p.name for p in pages)}")

    t0 = time.perf_counter()
    with load_pipeline(YAML) as pipe:
        print(f"pipeline {pipe.name!r} compiled and loaded in {time.perf_counter() - t0:.1f} s "
              f"({len(pipe.plan.stages)} stages)\n")
        pipe.reset_stats()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda p: pipe.infer({"image": p.image[np.newaxis]}), pages))
        wall = time.perf_counter() - t0
        for page, out in zip(pages, results, strict=True):
            ok = "all fields as printed" if _matches(out, page) else "FIELDS DIFFER from the printed page"
            print(f"== {page.name} ({page.image.shape[1]}x{page.image.shape[0]}): {ok}")
            for name in FIELDS:
                print(f"   {name:12} {out[name][0]}")
            print(f"   {'risk':12} {out['risk'][0]:.3f} -> {out['decision'][0]} "
                  f"(answered by: {out.rungs['risk']})\n")
        print(f"{len(pages)} pages in {wall:.2f} s ({len(pages) / wall:.2f} pages/s, "
              f"{args.concurrency} in flight)\n")
        print(stage_table(pipe.stats()))


def _matches(out: Mapping[str, Any], page: Any) -> bool:
    from examples.contracts.contracts_steps import page_fields

    return bool(page_fields(out, 0) == page.fields)


if __name__ == "__main__":
    main()
