# brickwork: two commands on a fresh clone.
#   make demo   creates .venv, installs, runs the contracts pipeline on real OCR models
#   make test   creates .venv, installs every extra the suite uses (and Debian's chromium), runs the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
EXTRAS := onnx,sklearn,torch,hf,server,grpc,ray,examples,federated,accel,viz,otel,fusion,llm,dev

.PHONY: demo test lint bench bench-peers grpc-proto clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.contracts.demo

test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)  # for tests/e2e/test_export_web.py
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/engine.py

bench-peers: $(STAMP)
	command -v wrk >/dev/null 2>&1 || apt-get install -y wrk || sudo apt-get install -y wrk \
		|| echo "wrk is not installed: the bench runs its Python generator only"
	$(PYTHON) bench/peers/run.py --servers raw,fastapi,litserve,rayserve,pytriton,brickwork \
		--model matmul,onnx,pipeline --requests 3000 --warmup 200 --concurrency 32

# after an edit of src/brickwork/protocol/grpc_service.proto (needs grpcio-tools, in dev)
grpc-proto: $(STAMP)
	$(PY) tools/gen_grpc_descriptor.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
