"""PyTriton (Triton Inference Server on CPU) with Triton's dynamic batcher.

Speaks Open Inference Protocol v2: POST /v2/models/<model>/infer, input "x" [1,64] FP32,
output "y". Ready: GET /v2/models/<model>/ready.

For --model pipeline two PyTriton models are bound (`matmul`, `softmax`) and a Triton ensemble
`pipeline` (matmul -> softmax) is written as config.pbtxt beside them in PyTriton's local model
store before the server starts (ensembles are not in PyTriton's API); Triton loads all three at
start (explicit mode, load-model=*). Needs LD_LIBRARY_PATH=<python LIBDIR> (the Python
backend stub links libpython) - run.py sets it.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from pytriton.decorators import batch  # noqa: E402
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor  # noqa: E402
from pytriton.triton import Triton, TritonConfig, TritonLifecyclePolicy  # noqa: E402

from common import load_w, make_model, parse_args, softmax  # noqa: E402

args = parse_args()
http_port = args.port
grpc_port, metrics_port = (int(p) for p in args.extra_ports.split(",")[:2])
delay_us = int(args.max_delay_ms * 1000)


def batched(fn):
    @batch
    def infer(x):
        return {"y": np.ascontiguousarray(fn(x), dtype=np.float32)}

    return infer


def cfg():
    return ModelConfig(max_batch_size=args.max_batch,
                       batcher=DynamicBatcher(max_queue_delay_microseconds=delay_us))


ENSEMBLE = """name: "pipeline"
platform: "ensemble"
max_batch_size: {mbs}
input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 64 ] }} ]
output [ {{ name: "y" data_type: TYPE_FP32 dims: [ 64 ] }} ]
ensemble_scheduling {{
  step [
    {{ model_name: "matmul" model_version: -1
       input_map {{ key: "x" value: "x" }} output_map {{ key: "y" value: "z" }} }},
    {{ model_name: "softmax" model_version: -1
       input_map {{ key: "x" value: "z" }} output_map {{ key: "y" value: "y" }} }}
  ]
}}
"""


def main():
    config = TritonConfig(http_address="127.0.0.1", http_port=http_port, grpc_address="127.0.0.1",
                          grpc_port=grpc_port, metrics_port=metrics_port, metrics_address="127.0.0.1",
                          allow_metrics=False, log_verbose=0)
    workspace = os.path.join(args.workdir, "pytriton-ws") if args.workdir else None
    policy = TritonLifecyclePolicy(launch_triton_on_startup=True,
                                   local_model_store=args.model == "pipeline")
    triton = Triton(config=config, workspace=workspace, triton_lifecycle_policy=policy)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    x_in = [Tensor(name="x", dtype=np.float32, shape=(64,))]
    if args.model == "pipeline":
        w = load_w(args.cache)
        triton.bind("matmul", batched(lambda x: x @ w), x_in,
                    [Tensor(name="y", dtype=np.float32, shape=(64,))], config=cfg())
        triton.bind("softmax", batched(softmax), x_in,
                    [Tensor(name="y", dtype=np.float32, shape=(64,))], config=cfg())
        # Ensembles are not in PyTriton's API: with a local model store PyTriton writes the
        # bound models' configs into its workspace at bind(); the ensemble's config.pbtxt goes
        # beside them before the server starts, and Triton (load-model=*) loads all three.
        store = triton._workspace.model_store_path  # noqa: SLF001
        os.makedirs(store / "pipeline" / "1", exist_ok=True)
        (store / "pipeline" / "config.pbtxt").write_text(ENSEMBLE.format(mbs=args.max_batch))
    else:
        out_dim = 10 if args.model == "onnx" else 64
        triton.bind(args.model, batched(make_model(args.model, args.cache)), x_in,
                    [Tensor(name="y", dtype=np.float32, shape=(out_dim,))], config=cfg())
    try:
        triton.serve()
    except KeyboardInterrupt:
        pass
    finally:
        triton.stop()


if __name__ == "__main__":
    main()
