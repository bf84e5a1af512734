"""Ray Serve with @serve.batch (HAProxy ingress when RAY_SERVE_ENABLE_HA_PROXY=1, set by run.py).

POST / {"x": [64 floats]} -> {"y": [...]}. Ready = the first POST answered 200.
For --model pipeline an ingress deployment calls two batched deployments through handles
(matmul -> softmax). Ray's temp dir lives in the bench folder (RAY_TMPDIR set by run.py).
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import ray  # noqa: E402
from ray import serve  # noqa: E402

from common import parse_args  # noqa: E402

args = parse_args()
MB = args.max_batch
WAIT = args.max_delay_ms / 1000.0
OPTS = dict(num_replicas=1, max_ongoing_requests=4 * MB, ray_actor_options={"num_cpus": 0})


@serve.deployment(**OPTS)
class Model:
    def __init__(self, kind, cache):
        sys.path.insert(0, HERE)
        from common import make_model

        self.model = make_model(kind, cache)

    @serve.batch(max_batch_size=MB, batch_wait_timeout_s=WAIT)
    async def infer(self, xs):
        y = self.model(np.stack(xs))
        return list(y)

    async def __call__(self, request):
        body = await request.json()
        y = await self.infer(np.asarray(body["x"], dtype=np.float32))
        return {"y": y.tolist()}


@serve.deployment(**OPTS)
class Stage:
    def __init__(self, kind, cache):
        sys.path.insert(0, HERE)
        from common import load_w, softmax

        if kind == "matmul":
            w = load_w(cache)
            self.fn = lambda x: x @ w
        else:
            self.fn = softmax

    @serve.batch(max_batch_size=MB, batch_wait_timeout_s=WAIT)
    async def __call__(self, xs):
        return list(self.fn(np.stack(xs)))


@serve.deployment(**OPTS)
class Pipeline:
    def __init__(self, first, second):
        self.first, self.second = first, second

    async def __call__(self, request):
        body = await request.json()
        x = np.asarray(body["x"], dtype=np.float32)
        z = await self.first.remote(x)
        y = await self.second.remote(z)
        return {"y": y.tolist()}


def main():
    stop = {"now": False}

    def on_term(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             _temp_dir=os.environ.get("RAY_TMPDIR"))
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    if args.model == "pipeline":
        app = Pipeline.bind(Stage.options(name="MatMul").bind("matmul", args.cache),
                            Stage.options(name="Softmax").bind("softmax", args.cache))
    else:
        app = Model.bind(args.model, args.cache)
    serve.run(app, name="bench", route_prefix="/")
    print("rayserve app deployed", flush=True)
    try:
        while not stop["now"]:
            time.sleep(0.2)
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
