#!/bin/bash
# A/B of the HTTP hot path of two brickwork source trees under wrk, in one run, alternating:
#   bench/server_ab.sh OLD_SRC NEW_SRC [ROUNDS]      e.g. a `git archive BASE src` and ./src
# Serves a one-brick pipeline (x*2, FP32[4], batched, inline) with `brickwork serve`, then for
# each tree: wrk -t1 -c32 for 8 s on infer (JSON POST) and on /v2/health/live, printing req/s
# and the server's CPU time per request (utime+stime from /proc/PID/stat, µs).
# Needs wrk and curl; PY (default .venv/bin/python) must have the server extra installed.
set -eu
OLD=$(realpath "$1"); NEW=$(realpath "$2"); ROUNDS=${3:-3}
PY=${PY:-$(realpath .venv/bin/python)}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cat >"$DIR/models.py" <<'PYEOF'
from typing import Annotated
import numpy as np
import brickwork as bw
Vec = Annotated[np.ndarray, bw.Tensor("FP32", (4,))]
def dbl(x: Vec) -> Vec:
    return x * 2
PYEOF
printf 'name: m\nbricks:\n  dbl: {python: "models:dbl", batch: true, blocking: false, worker: inline}\ngraph: dbl\n' >"$DIR/m.yaml"
cat >"$DIR/post.lua" <<'EOF2'
wrk.method = "POST"
wrk.body = '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}'
wrk.headers["Content-Type"] = "application/json"
EOF2
TICK_US=$((1000000 / $(getconf CLK_TCK)))
one() {  # SRC LABEL
  cd "$DIR"
  PYTHONPATH=$1 "$PY" -c "import sys; from brickwork.cli import main; sys.exit(main())" serve m.yaml --port 18777 >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 200); do curl -sf http://127.0.0.1:18777/v2/health/ready >/dev/null && break; sleep 0.1; done
  wrk -t1 -c32 -d3s -s post.lua http://127.0.0.1:18777/v2/models/m/infer >/dev/null
  for what in infer live; do
    if [ $what = infer ]; then args="-s post.lua http://127.0.0.1:18777/v2/models/m/infer"; else args="http://127.0.0.1:18777/v2/health/live"; fi
    c0=$(awk '{print $14+$15}' /proc/$PID/stat)
    out=$(wrk -t1 -c32 -d8s $args)
    c1=$(awk '{print $14+$15}' /proc/$PID/stat)
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$2 $what: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, $(( (c1 - c0) * TICK_US / n )) µs CPU/req $(echo "$out" | grep Non-2xx || true)"
  done
  kill $PID; wait $PID 2>/dev/null || true
}
for _ in $(seq "$ROUNDS"); do one "$OLD" old; one "$NEW" new; done
