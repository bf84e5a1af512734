"""LitServe with its dynamic batching.

POST /predict {"x": [64 floats]} -> {"y": [...]};  GET /health -> 200 once the worker is up.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import litserve as ls  # noqa: E402
import numpy as np  # noqa: E402

from common import make_model, parse_args  # noqa: E402

args = parse_args()


class Api(ls.LitAPI):
    def setup(self, device):
        self.model = make_model(args.model, args.cache)

    def decode_request(self, request):
        return np.asarray(request["x"], dtype=np.float32)

    def batch(self, inputs):
        return np.stack(inputs)

    def predict(self, x):
        return self.model(x)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output):
        return {"y": output.tolist()}


if __name__ == "__main__":
    api = Api(max_batch_size=args.max_batch, batch_timeout=args.max_delay_ms / 1000.0)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1)
    server.run(host="127.0.0.1", port=args.port, num_api_servers=1, generate_client_file=False,
               log_level="warning")
