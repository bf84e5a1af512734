#!/bin/bash
# The raw floor and two brickwork source trees on bench/peers' matmul model under wrk, in one
# run, alternating (raw, old, new per round):
#   bench/server_floor_ab.sh OLD_SRC NEW_SRC [ROUNDS]     e.g. a `git archive BASE src` and ./src
# Each server: 2 s of warm-up, then wrk -t1 -c32 for 6 s posting bench/peers' bodies (64 FP32
# as JSON); prints req/s and the server's user and system CPU per request (µs, /proc/PID/stat).
# With STRACE=1 it also counts the server's system calls per request (strace -c -f, 3 s of wrk).
# Needs wrk and curl, bench/peers/.venvs/bench (the raw floor's venv) and PY (default
# .venv/bin/python) with the server extra. Run from the repository root.
set -eu
OLD=$(realpath "$1"); NEW=$(realpath "$2"); ROUNDS=${3:-3}
PY=${PY:-$PWD/.venv/bin/python}
RAWPY=$PWD/bench/peers/.venvs/bench/bin/python  # not realpath: the venv is a symlink
CACHE=$(realpath bench/peers/.cache)
SERVERS=$(realpath bench/peers/servers)
LUA=$(realpath bench/peers/post.lua)
PORT=${PORT:-18795}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
"$RAWPY" - >"$D/bodies.txt" <<'PYEOF'
import json, numpy as np
rng = np.random.default_rng(42)
for _ in range(64):
    x = rng.standard_normal(64).astype(np.float32).tolist()
    print(json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": x}]},
                     separators=(",", ":")))
PYEOF
printf 'name: matmul\ndefaults:\n  batching: {max_batch_size: 32, max_delay_s: 0.001}\nbricks:\n  matmul: {python: "bw_models:matmul", batch: true, outputs: y}\ngraph: matmul\n' >"$D/m.yaml"
[ -f "$CACHE/W.npy" ] || { echo "no $CACHE/W.npy: run bench/peers/run.py once (it builds the models)"; exit 1; }
TICK=$(getconf CLK_TCK)
URL=http://127.0.0.1:$PORT/v2/models/matmul/infer
one() {  # LABEL CMD...
  local label=$1; shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 300); do curl -sf http://127.0.0.1:$PORT/v2/health/ready >/dev/null && break; sleep 0.1; done
  wrk -t1 -c32 -d2s -s "$LUA" "$URL" -- "$D/bodies.txt" >/dev/null
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
  local out n
  out=$(wrk -t1 -c32 -d6s -s "$LUA" "$URL" -- "$D/bodies.txt")
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  printf '%-10s %9s req/s  user %3d µs  sys %3d µs per request %s\n' "$label" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" $(( (u1 - u0) * 1000000 / TICK / n )) \
    $(( (s1 - s0) * 1000000 / TICK / n )) "$(echo "$out" | grep -E 'Non-2xx' | tr -s ' ' || true)"
  if [ "${STRACE:-0}" = 1 ]; then
    timeout 4 strace -c -f -p $pid -o "$D/strace.txt" >/dev/null 2>&1 &
    local st=$!
    sleep 0.3
    n=$(wrk -t1 -c32 -d3s -s "$LUA" "$URL" -- "$D/bodies.txt" | awk '/requests in/ {print $1}')
    wait $st || true
    awk -v n="$n" 'NR > 2 && $NF ~ /^[a-z_0-9]+$/ && $4 + 0 > 0 {printf "%s %.2f, ", $NF, $4 / n}' "$D/strace.txt"
    echo "system calls per request"
  fi
  kill $pid; wait $pid 2>/dev/null || true
}
for _ in $(seq "$ROUNDS"); do
  one raw "$RAWPY" "$SERVERS/raw_app.py" --model matmul --port $PORT --cache "$CACHE"
  for tree in old new; do
    src=$OLD; [ $tree = new ] && src=$NEW
    (cd "$D" && one "$tree" env PYTHONPATH="$src:$SERVERS" BENCH_CACHE="$CACHE" "$PY" -m brickwork.cli serve m.yaml --port $PORT)
  done
done
