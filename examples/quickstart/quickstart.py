import brickwork as bw
from steps import HERE, decision, features  # steps.py, beside this file: two plain functions

graph = (
    bw.function(features)                                 # text → FP32[4] per item
    >> bw.onnx(HERE / "scorer.onnx", name="scorer")       # FP32[N,4] → FP32[N,1]
    >> bw.function(decision)                              # float per item → label
)
with graph.compile(batching=bw.Batching(max_batch_size=32, max_delay_s=0.002)) as pipeline:
    print(pipeline.plan.describe())  # lists the adapters compile() inserted (squeeze, cast)
    out = pipeline.infer({"text": ["I love this, it is great!", "terrible and awful"]})
    print(out["decision"])           # ['positive' 'negative']
