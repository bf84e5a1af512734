"""FastAPI + uvicorn, one process, no batching: the floor.

POST /predict {"x": [64 floats]} -> {"y": [...]};  GET /health -> 200.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, PlainTextResponse  # noqa: E402

from common import make_model, parse_args  # noqa: E402

args = parse_args()
model = make_model(args.model, args.cache)
app = FastAPI()


@app.get("/health")
async def health():
    return PlainTextResponse("ok")


@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    x = np.asarray(body["x"], dtype=np.float32).reshape(1, -1)
    y = model(x)
    return JSONResponse({"y": y[0].tolist()})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
