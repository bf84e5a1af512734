"""Send the showcase pipeline's kind of traffic to a server for a while (for the dashboard's
screenshots and demos): python tools/load.py URL MODEL SECONDS [CONCURRENCY]."""

from __future__ import annotations

import sys
import threading
import time

import httpx

TEXTS = ["I love this, it is great!", "terrible and awful", "das ist gut", "bad bad worst", "ok then"]


def main() -> None:
    url, model, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    end = time.monotonic() + seconds
    counts = [0, 0]

    def worker(i: int) -> None:
        with httpx.Client(timeout=10) as c:
            n = 0
            while time.monotonic() < end:
                texts = [TEXTS[(i + n + k) % len(TEXTS)] for k in range(1 + n % 4)]
                body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
                r = c.post(f"{url}/v2/models/{model}/infer", json=body)
                counts[r.status_code != 200] += 1
                n += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"ok {counts[0]} failed {counts[1]}")


if __name__ == "__main__":
    main()
